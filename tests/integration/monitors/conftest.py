"""Real components for the monitor tests: an aiohttp health page, libvirt's test driver,
network namespaces with bridges, a DNS responder."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest
from aiohttp import web

from tests.integration.monitors.dns_responder import DnsResponder
from tests.integration.monitors.engine_vm import NODE_XML
from tests.integration.monitors.health_page import HealthPage
from tests.integration.monitors.netns import ip


@pytest.fixture
def engine_conn(tmp_path: Path) -> Iterator[libvirt.virConnect]:
    """A private fake hypervisor (libvirt test driver) whose engine domain is running."""
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML)
    conn = libvirt.open(f"test://{node}")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
async def health_page() -> AsyncIterator[HealthPage]:
    page = HealthPage()
    app = web.Application()
    app.router.add_get("/ovirt-engine/services/health", page.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    page.url = f"http://127.0.0.1:{port}/ovirt-engine/services/health"
    try:
        yield page
    finally:
        await runner.cleanup()


@pytest.fixture
async def dns_server() -> AsyncIterator[tuple[DnsResponder, int]]:
    responder = DnsResponder()
    port = await responder.start()
    try:
        yield responder, port
    finally:
        await responder.stop()


_netns_ids = itertools.count()


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace (root), deleted with everything in it even on failure."""
    name = f"hh-mon-{os.getpid()}-{next(_netns_ids)}"
    ip("netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True, timeout=10)
