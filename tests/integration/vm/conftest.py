from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from he_ha.vm import Backoff, Deadlines, LibvirtConnection, VmController
from he_ha.vm.domain_xml import DomainId
from tests.integration.vm.helpers import ENGINE_NAME, ENGINE_UUID, PrivateLibvirtd, domain_xml, write_node

# Short deadlines keep the failure paths fast; generous enough for a loaded 2-core box.
TEST_DEADLINES = Deadlines(open=5.0, query=2.0, start=5.0, shutdown_request=2.0, destroy=5.0, migrate=5.0, close=2.0)
ENGINE = DomainId(ENGINE_NAME, ENGINE_UUID)


def make_connection(uri: str, **kwargs: object) -> LibvirtConnection:
    kwargs.setdefault("deadlines", TEST_DEADLINES)
    kwargs.setdefault("backoff", Backoff(initial=0.05, maximum=0.5))
    return LibvirtConnection(uri, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def node_uri(tmp_path: Path) -> str:
    """A fake host whose only domain is the engine VM, defined and running."""
    return write_node(tmp_path, domain_xml())


@pytest.fixture
def empty_node_uri(tmp_path: Path) -> str:
    """A fake host with no domain at all."""
    return write_node(tmp_path)


@pytest.fixture
async def connection(node_uri: str) -> AsyncIterator[LibvirtConnection]:
    conn = make_connection(node_uri)
    await conn.start()
    yield conn
    await conn.close()


@pytest.fixture
async def empty_connection(empty_node_uri: str) -> AsyncIterator[LibvirtConnection]:
    conn = make_connection(empty_node_uri)
    await conn.start()
    yield conn
    await conn.close()


@pytest.fixture
def vm(connection: LibvirtConnection) -> VmController:
    return VmController(connection, ENGINE, poll_interval=0.02)


@pytest.fixture
def empty_vm(empty_connection: LibvirtConnection) -> VmController:
    return VmController(empty_connection, ENGINE, poll_interval=0.02)


@pytest.fixture
def libvirtd(tmp_path: Path) -> Iterator[PrivateLibvirtd]:
    if shutil.which("libvirtd") is None:
        pytest.fail("libvirtd not installed: install the Debian package libvirt-daemon")
    with PrivateLibvirtd(tmp_path) as daemon:
        yield daemon
