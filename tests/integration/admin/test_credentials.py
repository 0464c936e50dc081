"""Mutating calls are checked against the peer's real credentials (SO_PEERCRED): requests
come from child processes that dropped to unprivileged uids before connecting."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from he_ha.admin.contract import MaintenanceMode
from he_ha.admin.server import AdminServer
from tests.integration.admin.doubles import ControllerTestDouble
from tests.integration.admin.peer import PeerResult, request_as

pytestmark = pytest.mark.root

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup").gr_gid
UNLISTED_GID = 54321  # in no database: only the uid's own groups can grant access


@pytest.fixture
def controller() -> ControllerTestDouble:
    return ControllerTestDouble()


async def serve(controller: ControllerTestDouble, path: Path, group: str | None, mode: int = 0o666) -> AdminServer:
    server = AdminServer(controller, path, group=group, mode=mode)
    await server.start()
    return server


async def ask_once(
    controller: ControllerTestDouble,
    socket_dir: Path,
    group: str | None,
    uid: int,
    gid: int,
    route: str,
    **options: Any,
) -> PeerResult:
    """Serve with ``group``, send one POST ``route`` as uid/gid, stop."""
    server = await serve(controller, socket_dir / "admin.sock", group=group, **options)
    try:
        return await request_as(socket_dir / "admin.sock", uid, gid, "POST", route, {})
    finally:
        await server.stop()


@pytest.fixture
def nobody_group() -> Iterator[str]:
    """A real group in /etc/group whose only member is 'nobody' (a supplementary group of
    nobody's, never its primary one), removed afterwards."""
    name = f"hehatest{os.getpid()}"
    subprocess.run(["groupadd", "--users", "nobody", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["groupdel", name], check=True, capture_output=True)


@pytest.fixture
async def open_server(controller: ControllerTestDouble, socket_dir: Path) -> AsyncIterator[Path]:
    server = await serve(controller, socket_dir / "admin.sock", group="disk")
    try:
        yield socket_dir / "admin.sock"
    finally:
        await server.stop()


async def test_unprivileged_peer_is_refused_with_403_naming_its_uid(
    open_server: Path, controller: ControllerTestDouble
) -> None:
    result = await request_as(open_server, NOBODY.pw_uid, NOGROUP, "POST", "/v1/maintenance", {"mode": "global"})
    assert result.status == 403
    assert result.body is not None and result.body["error"] == "forbidden"
    assert f"uid {NOBODY.pw_uid}" in result.body["message"]
    assert "root or membership in group 'disk'" in result.body["message"]
    assert controller.calls == []


@pytest.mark.parametrize("route", ["/v1/vm/start", "/v1/vm/shutdown", "/v1/vm/poweroff"])
async def test_every_mutating_route_checks(open_server: Path, controller: ControllerTestDouble, route: str) -> None:
    result = await request_as(open_server, NOBODY.pw_uid, NOGROUP, "POST", route, {})
    assert result.status == 403
    assert controller.calls == []


async def test_credentials_are_checked_before_the_body(open_server: Path) -> None:
    result = await request_as(open_server, NOBODY.pw_uid, NOGROUP, "POST", "/v1/maintenance", {"mode": "bogus"})
    assert result.status == 403


async def test_unprivileged_peer_may_read(open_server: Path) -> None:
    result = await request_as(open_server, NOBODY.pw_uid, NOGROUP, "GET", "/v1/status")
    assert result.status == 200 and result.body is not None and result.body["host_id"] == 1


async def test_root_is_allowed(open_server: Path, controller: ControllerTestDouble) -> None:
    result = await request_as(open_server, 0, 0, "POST", "/v1/maintenance", {"mode": "local"})
    assert result.status == 200
    assert controller.calls == [("set_maintenance", MaintenanceMode.LOCAL)]


async def test_without_a_group_only_root(controller: ControllerTestDouble, socket_dir: Path) -> None:
    result = await ask_once(controller, socket_dir, None, NOBODY.pw_uid, NOGROUP, "/v1/vm/poweroff")
    assert result.status == 403 and result.body is not None
    assert "requires root" in result.body["message"]


async def test_peer_gid_in_the_group_is_allowed(controller: ControllerTestDouble, socket_dir: Path) -> None:
    result = await ask_once(controller, socket_dir, "nogroup", NOBODY.pw_uid, NOGROUP, "/v1/vm/shutdown")
    assert result.status == 200
    assert controller.calls == [("vm_shutdown", None)]


async def test_primary_group_from_the_user_database_is_allowed(
    controller: ControllerTestDouble, socket_dir: Path
) -> None:
    # The peer runs with a gid of no group; nobody's primary group in passwd is nogroup.
    result = await ask_once(controller, socket_dir, "nogroup", NOBODY.pw_uid, UNLISTED_GID, "/v1/vm/poweroff")
    assert result.status == 200


async def test_supplementary_group_membership_is_allowed(
    controller: ControllerTestDouble, socket_dir: Path, nobody_group: str
) -> None:
    server = await serve(controller, socket_dir / "admin.sock", group=nobody_group)
    try:
        member = await request_as(
            socket_dir / "admin.sock", NOBODY.pw_uid, UNLISTED_GID, "POST", "/v1/vm/start", {"paused": True}
        )
        # A uid without a passwd entry belongs to no group, whatever it claims.
        stranger = await request_as(socket_dir / "admin.sock", 4242, UNLISTED_GID, "POST", "/v1/vm/start", {})
    finally:
        await server.stop()
    assert member.status == 200
    assert stranger.status == 403
    assert controller.calls == [("vm_start", True)]


async def test_socket_mode_keeps_others_out_entirely(controller: ControllerTestDouble, socket_dir: Path) -> None:
    server = await serve(controller, socket_dir / "admin.sock", group="disk", mode=0o660)
    try:
        result = await request_as(socket_dir / "admin.sock", NOBODY.pw_uid, NOGROUP, "GET", "/v1/status")
    finally:
        await server.stop()
    assert result.status is None and result.connect_error == "Permission denied"
