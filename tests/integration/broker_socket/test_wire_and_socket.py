"""The broker socket's HTTP, its socket file and who may change things (SO_PEERCRED of child
processes that dropped to other uids before connecting)."""

from __future__ import annotations

import asyncio
import base64
import grp
import os
import pwd
import socket
import stat
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest

from he_ha.broker_socket import BrokerServer, BrokerServerError
from he_ha.whiteboard import encode_host_slot
from tests.integration.broker_socket.conftest import Broker, FakeBackend
from tests.integration.broker_socket.test_methods import board_with
from tests.support.broker_client import UnixHTTPConnection, call_as, global_block
from tests.unit.whiteboard.samples import host_slot

pytestmark = pytest.mark.root

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup").gr_gid


def kvm_gid() -> int | None:
    try:
        return grp.getgrnam("kvm").gr_gid
    except KeyError:
        return None


def post(path: Path, url: str, body: bytes, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request; the Host header is the base16 socket path, as the original client sends."""
    connection = UnixHTTPConnection(base64.b16encode(str(path).encode()).decode(), timeout=20)
    try:
        connection.request(method, url, body=body, headers={"Content-Type": "text/xml"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


async def raw(broker: Broker, url: str, body: bytes, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(post, broker.path, url, body, method)


def fault_of(body: bytes) -> tuple[int, str]:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(body)
    return caught.value.faultCode, caught.value.faultString


async def test_both_rpc_paths_one_call_per_connection(broker: Broker) -> None:
    request = xmlrpc.client.dumps((), "is_host_alive").encode()
    for url in ("/RPC2", "/"):
        status, headers, body = await raw(broker, url, request)
        assert status == 200 and headers["content-type"].startswith("text/xml")
        assert headers["connection"] == "close"
        assert xmlrpc.client.loads(body) == (([],), None)


async def test_http_errors_outside_xmlrpc(broker: Broker) -> None:
    request = xmlrpc.client.dumps((), "is_host_alive").encode()
    assert (await raw(broker, "/other", request))[0] == 404
    assert (await raw(broker, "/RPC2", b"", method="GET"))[0] == 405
    assert (await raw(broker, "/RPC2", b"x" * (broker.server.max_body + 1)))[0] == 413


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<methodCall><methodName>get_stats", "not an XML-RPC request: ExpatError"),
        (b"not xml at all", "not an XML-RPC request: ExpatError"),
        (xmlrpc.client.dumps(("ok",), methodresponse=True).encode(), "no methodName (a methodResponse?)"),
    ],
)
async def test_a_request_that_does_not_parse_is_a_fault(broker: Broker, body: bytes, message: str) -> None:
    status, _, answer = await raw(broker, "/RPC2", body)
    assert status == 200
    code, text = fault_of(answer)
    assert code == xmlrpc.client.PARSE_ERROR and message in text


async def test_a_backend_bug_is_a_fault_not_a_dropped_connection(broker: Broker) -> None:
    def broken() -> list[int]:
        raise RuntimeError("boom")

    broker.backend.live_host_ids = broken  # type: ignore[method-assign]
    fault = await broker.fault("is_host_alive")
    assert (fault.faultCode, fault.faultString) == (xmlrpc.client.INTERNAL_ERROR, "is_host_alive: RuntimeError: boom")


async def test_the_socket_file_is_what_vdsm_expects(socket_dir: Path) -> None:
    """Mode 0666 (VDSM connects as vdsm:kvm), group kvm where it exists, its directory made
    0755 whatever the umask; removed on stop."""
    path = socket_dir / "ovirt-hosted-engine-ha" / "broker.socket"
    server = BrokerServer(FakeBackend(), path)
    old = os.umask(0o077)
    try:
        await server.start()
    finally:
        os.umask(old)
    try:
        info = path.lstat()
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o666
        assert info.st_gid == (kvm_gid() if kvm_gid() is not None else os.getgid())
        assert info.st_uid == 0  # no vdsm user on this machine: root's
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
        assert [p.name for p in path.parent.iterdir()] == ["broker.socket"]  # no temporary left
    finally:
        await server.stop()
    assert not path.exists()


async def test_a_stale_socket_is_replaced_a_live_one_refused(socket_dir: Path) -> None:
    path = socket_dir / "broker.socket"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # what a crashed broker leaves behind
    dead.close()
    server = BrokerServer(FakeBackend(), path)
    await server.start()
    try:
        with pytest.raises(BrokerServerError, match="another process is serving this socket"):
            await BrokerServer(FakeBackend(), path).start()
        assert path.exists()
    finally:
        await server.stop()
    path.write_text("")
    with pytest.raises(BrokerServerError, match="exists and is not a socket"):
        await BrokerServer(FakeBackend(), path).start()


async def test_anyone_reads_only_root_vdsm_and_kvm_change(broker: Broker) -> None:
    stored = encode_host_slot(host_slot(1))
    broker.backend.board = board_with({1: stored})

    def as_(uid: int, gid: int, method: str, *params: object) -> dict[str, Any]:
        return call_as(broker.path, uid, gid, method, *params)

    nobody = await asyncio.to_thread(as_, NOBODY.pw_uid, NOGROUP, "get_stats")
    assert nobody == {"result": {"1": base64.b64encode(stored).decode()}}
    requirement = "root or membership in group 'kvm'" if kvm_gid() is not None else "root"
    for method, params in (("put_stats", (0, global_block(True))), ("reset_lockspace", ())):
        refused = await asyncio.to_thread(as_, NOBODY.pw_uid, NOGROUP, method, *params)
        code, text = refused["fault"]
        assert code == xmlrpc.client.APPLICATION_ERROR
        assert text.startswith(f"permission denied: {method}: uid {NOBODY.pw_uid} (gid {NOGROUP}, pid ")
        assert text.endswith(f") may not change anything here: requires {requirement}")
    assert broker.backend.global_writes == [] and broker.backend.resets == 0
    gid = kvm_gid()
    if gid is not None:  # VDSM's group
        assert await asyncio.to_thread(as_, NOBODY.pw_uid, gid, "put_stats", 0, global_block(True)) == {"result": "ok"}
        assert broker.backend.global_writes == [True]
