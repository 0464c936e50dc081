"""The socket file's life cycle: mode, group, stale and live sockets, clean removal."""

from __future__ import annotations

import asyncio
import grp
import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from he_ha.admin.server import AdminServer, AdminServerError
from tests.integration.admin.conftest import client
from tests.integration.admin.doubles import ControllerTestDouble


async def get_status(path: Path) -> int:
    async with client(path) as session, session.get("/v1/status") as response:
        return response.status


@asynccontextmanager
async def serving(path: Path, **options: Any) -> AsyncIterator[AdminServer]:
    server = AdminServer(ControllerTestDouble(), path, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize(("mode", "group"), [(0o660, "nogroup"), (0o600, None), (0o666, "disk")])
async def test_mode_and_group_applied(socket_dir: Path, mode: int, group: str | None) -> None:
    path = socket_dir / "admin.sock"
    async with serving(path, group=group, mode=mode):
        info = path.lstat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == mode
        assert info.st_gid == (grp.getgrnam(group).gr_gid if group else os.getgid())
        assert await get_status(path) == 200
        assert [p.name for p in socket_dir.iterdir()] == ["admin.sock"]  # no temporary left
    assert not path.exists()


async def test_parent_directory_created(socket_dir: Path) -> None:
    path = socket_dir / "run" / "he-ha" / "admin.sock"
    async with serving(path):
        assert await get_status(path) == 200


async def test_unknown_group_is_refused_before_anything_is_created(socket_dir: Path) -> None:
    path = socket_dir / "sub" / "admin.sock"
    server = AdminServer(ControllerTestDouble(), path, group="no-such-group-he-ha")
    with pytest.raises(AdminServerError, match="unknown group 'no-such-group-he-ha'"):
        await server.start()
    assert not (socket_dir / "sub").exists()


async def test_stale_socket_is_replaced(socket_dir: Path) -> None:
    path = socket_dir / "admin.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # bound, never listening, then closed: what a crashed daemon leaves
    dead.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_unix_connection(str(path))
    async with serving(path):
        assert await get_status(path) == 200


async def test_live_socket_is_refused_and_left_alone(socket_dir: Path) -> None:
    path = socket_dir / "admin.sock"
    async with serving(path):
        identity = path.lstat().st_ino
        with pytest.raises(AdminServerError, match="another process is serving this socket"):
            await AdminServer(ControllerTestDouble(), path).start()
        assert path.lstat().st_ino == identity
        assert await get_status(path) == 200


async def test_a_file_that_is_not_a_socket_is_never_removed(socket_dir: Path) -> None:
    path = socket_dir / "admin.sock"
    path.write_text("precious")
    with pytest.raises(AdminServerError, match="exists and is not a socket"):
        await AdminServer(ControllerTestDouble(), path).start()
    assert path.read_text() == "precious"


async def test_stop_leaves_a_successors_socket_alone(socket_dir: Path) -> None:
    path = socket_dir / "admin.sock"
    server = AdminServer(ControllerTestDouble(), path)
    await server.start()
    path.unlink()  # e.g. an operator cleaned up, and a successor bound the path
    successor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    successor.bind(str(path))
    try:
        await server.stop()
        assert stat.S_ISSOCK(path.lstat().st_mode)
    finally:
        successor.close()


async def test_restart_on_the_same_path(socket_dir: Path) -> None:
    path = socket_dir / "admin.sock"
    for _ in range(2):
        async with serving(path):
            assert await get_status(path) == 200
        assert not path.exists()


async def test_path_too_long_is_refused(socket_dir: Path) -> None:
    with pytest.raises(AdminServerError, match="too long for a unix socket"):
        await AdminServer(ControllerTestDouble(), socket_dir / ("x" * 120)).start()


@pytest.mark.parametrize(("kwargs", "text"), [({"mode": 0o1777}, "permission mode"), ({"deadline": 0}, "deadline")])
def test_bad_arguments(socket_dir: Path, kwargs: dict, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        AdminServer(ControllerTestDouble(), socket_dir / "a.sock", **kwargs)
