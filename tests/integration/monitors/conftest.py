"""Real components for the monitor tests: an aiohttp health page, libvirt's test driver,
network namespaces with bridges, a DNS responder."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest
from aiohttp import web

from tests.integration.monitors.dns_responder import DnsResponder
from tests.integration.monitors.netns import ip

ENGINE_UUID = "6a3c9a1e-0b7e-4d3f-9a51-2f0c3d4e5f60"
ENGINE_NAME = "HostedEngine"

_NODE_XML = f"""<node>
  <domain type='test'>
    <name>{ENGINE_NAME}</name>
    <uuid>{ENGINE_UUID}</uuid>
    <memory unit='MiB'>1024</memory>
    <vcpu>2</vcpu>
    <os><type>hvm</type></os>
  </domain>
</node>
"""


@pytest.fixture
def engine_conn(tmp_path: Path) -> Iterator[libvirt.virConnect]:
    """A private fake hypervisor (libvirt test driver) whose engine domain is running."""
    node = tmp_path / "node.xml"
    node.write_text(_NODE_XML)
    conn = libvirt.open(f"test://{node}")
    try:
        yield conn
    finally:
        conn.close()


@dataclass
class HealthPage:
    """The engine's health servlet. ``mode``: up | error | db-down | hang | flap."""

    mode: str = "up"
    url: str = ""
    requests: int = 0
    answers: list[str] = field(default_factory=list)

    async def handle(self, _request: web.Request) -> web.Response:
        self.requests += 1
        mode = self.mode
        if mode == "flap":
            mode = "up" if self.requests % 2 else "error"
        self.answers.append(mode)
        if mode == "up":
            return web.Response(text="DB Up!Welcome to Health Status!")
        if mode == "db-down":
            return web.Response(text="DB Down!")
        if mode == "hang":
            await asyncio.sleep(3600)
        return web.Response(status=500, text="DB Up? no: internal error")


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
