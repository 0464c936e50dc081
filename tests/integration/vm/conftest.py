from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from he_ha.devcluster.libvirtd import PrivateLibvirtd
from he_ha.vm import LibvirtConnection, VmController
from tests.integration.vm.helpers import ENGINE, domain_xml, started_connection, write_node


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
    async with started_connection(node_uri) as conn:
        yield conn


@pytest.fixture
async def empty_connection(empty_node_uri: str) -> AsyncIterator[LibvirtConnection]:
    async with started_connection(empty_node_uri) as conn:
        yield conn


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
