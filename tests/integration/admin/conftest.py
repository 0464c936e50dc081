from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from he_ha.admin.server import AdminServer
from tests.integration.admin.doubles import ControllerTestDouble

BASE = "http://he-ha"  # the host part is ignored on a unix socket


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short, world-traversable directory: pytest's tmp_path is mode 0700 (an unprivileged
    child could not reach a socket in it) and can exceed the 107-byte unix path limit."""
    path = Path(tempfile.mkdtemp(prefix="he-ha-admin-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Admin:
    server: AdminServer
    controller: ControllerTestDouble
    session: aiohttp.ClientSession
    path: Path


def client(path: Path) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=BASE, connector=aiohttp.UnixConnector(path=str(path)))


@pytest.fixture
async def admin(socket_dir: Path) -> AsyncIterator[Admin]:
    controller = ControllerTestDouble()
    path = socket_dir / "admin.sock"
    server = AdminServer(controller, path, mode=0o666, deadline=1.0)
    await server.start()
    session = client(path)
    try:
        yield Admin(server, controller, session, path)
    finally:
        await session.close()
        controller.release.set()
        await server.stop()
