"""The API additions for the hosted-engine shim: ``vm_conf`` on POST /v1/vm/start (an
alternative vm.conf the peer must be able to read itself) and POST /v1/vm/console-password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from he_ha.admin.contract import CommandResult
from tests.integration.admin.conftest import Admin
from tests.integration.admin.doubles import ControllerTestDouble
from tests.integration.admin.peer import request_as
from tests.integration.admin.test_credentials import NOBODY, NOGROUP, serve
from tests.integration.admin.test_routes import error_of


async def test_vm_start_passes_the_alternative_vm_conf(admin: Admin, socket_dir: Path) -> None:
    alternative = socket_dir / "recovery-vm.conf"
    alternative.write_text("vmId=x\n")
    async with admin.session.post("/v1/vm/start", json={"vm_conf": str(alternative)}) as response:
        assert response.status == 200
    async with admin.session.post("/v1/vm/start", json={"paused": True, "vm_conf": str(alternative)}) as response:
        assert response.status == 200
    assert admin.controller.calls == [("vm_start", (False, alternative)), ("vm_start", (True, alternative))]


@pytest.mark.parametrize(
    ("vm_conf", "text"),
    [
        ("vm.conf", "must be an absolute path"),
        ("", "must be an absolute path"),
        (7, "valid string"),
        ("/x" * 3000, "at most 4096 characters"),
        ("/etc/\0x", "must not contain NUL bytes"),
    ],
)
async def test_vm_conf_must_be_an_absolute_path(admin: Admin, vm_conf: object, text: str) -> None:
    async with admin.session.post("/v1/vm/start", json={"vm_conf": vm_conf}) as response:
        body = await error_of(response, 400)
    assert body["field"] == "vm_conf" and text in body["message"]
    assert admin.controller.calls == []


@pytest.mark.parametrize(("name", "text"), [("missing.conf", "No such file or directory"), (".", "not a regular file")])
async def test_vm_conf_that_is_no_file_is_400(admin: Admin, socket_dir: Path, name: str, text: str) -> None:
    async with admin.session.post("/v1/vm/start", json={"vm_conf": str(socket_dir / name)}) as response:
        body = await error_of(response, 400)
    assert body["field"] == "vm_conf" and text in body["message"]
    assert admin.controller.calls == []


@pytest.mark.root
async def test_peer_may_not_have_the_daemon_read_a_file_it_cannot_read(socket_dir: Path) -> None:
    """A group member must not get a root-only file parsed (and quoted in errors) for it."""
    controller = ControllerTestDouble()
    secret = socket_dir / "root-only.conf"
    secret.write_text("vmId=secret\n")
    secret.chmod(0o600)
    readable = socket_dir / "shared.conf"
    readable.write_text("vmId=x\n")
    readable.chmod(0o644)
    own = socket_dir / "nobodys.conf"
    own.write_text("vmId=x\n")
    own.chmod(0o400)
    os.chown(own, NOBODY.pw_uid, NOGROUP)
    server = await serve(controller, socket_dir / "admin.sock", group="nogroup")
    try:
        refused = await request_as(
            socket_dir / "admin.sock", NOBODY.pw_uid, NOGROUP, "POST", "/v1/vm/start", {"vm_conf": str(secret)}
        )
        allowed = await request_as(
            socket_dir / "admin.sock", NOBODY.pw_uid, NOGROUP, "POST", "/v1/vm/start", {"vm_conf": str(readable)}
        )
        owned = await request_as(
            socket_dir / "admin.sock", NOBODY.pw_uid, NOGROUP, "POST", "/v1/vm/start", {"vm_conf": str(own)}
        )
        by_root = await request_as(socket_dir / "admin.sock", 0, 0, "POST", "/v1/vm/start", {"vm_conf": str(secret)})
    finally:
        await server.stop()
    assert refused.status == 403 and refused.body is not None
    assert refused.body["field"] == "vm_conf"
    assert f"uid {NOBODY.pw_uid} may not read {secret} (-rw-------" in refused.body["message"]
    assert (allowed.status, owned.status, by_root.status) == (200, 200, 200)
    assert controller.calls == [
        ("vm_start", (False, readable)),
        ("vm_start", (False, own)),
        ("vm_start", (False, secret)),
    ]


async def test_console_password_passes_password_and_ttl(admin: Admin) -> None:
    admin.controller.result = CommandResult(ok=True, message="set", detail={"address": "192.0.2.7", "port": 5900})
    async with admin.session.post("/v1/vm/console-password", json={"password": "s3cret"}) as response:
        assert response.status == 200
        assert (await response.json())["detail"] == {"address": "192.0.2.7", "port": 5900}
    async with admin.session.post("/v1/vm/console-password", json={"password": "x", "ttl": 30}) as response:
        assert response.status == 200
    assert admin.controller.calls == [("console_password", ("s3cret", 120)), ("console_password", ("x", 30))]


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({}, "password", "missing required field 'password'"),
        ({"password": ""}, "password", "at least 1 character"),
        ({"password": 1234}, "password", "valid string"),
        ({"password": "x", "ttl": 0}, "ttl", "greater than or equal to 1"),
        ({"password": "x", "ttl": 86401}, "ttl", "less than or equal to 86400"),
        ({"password": "x", "ttl": "120"}, "ttl", "valid integer"),
        ({"password": "x", "port": 5900}, "port", "known fields: 'password', 'ttl'"),
    ],
)
async def test_console_password_fields(admin: Admin, payload: dict, field: str, text: str) -> None:
    async with admin.session.post("/v1/vm/console-password", json=payload) as response:
        body = await error_of(response, 400)
    assert body["field"] == field and text in body["message"]
    assert admin.controller.calls == []


@pytest.mark.root
async def test_console_password_checks_credentials(socket_dir: Path) -> None:
    controller = ControllerTestDouble()
    server = await serve(controller, socket_dir / "admin.sock", group="disk")
    try:
        result = await request_as(
            socket_dir / "admin.sock", NOBODY.pw_uid, NOGROUP, "POST", "/v1/vm/console-password", {"password": "x"}
        )
    finally:
        await server.stop()
    assert result.status == 403 and controller.calls == []
