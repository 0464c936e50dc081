"""The worker line protocol and the parsing of sanlock records."""

from __future__ import annotations

from pathlib import Path

import pytest

from he_ha.lease import LeaseProtocolError
from he_ha.lease import lease_model as model
from he_ha.lease.lease_protocol import Failure, Reply, Request, decode_reply, decode_request, encode


def test_request_round_trip() -> None:
    request = Request(7, "acquire", {"lockspace": "hosted-engine", "offset": 1048576, "holder_pid": None})
    line = encode(request)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_request(line) == request


@pytest.mark.parametrize(
    "reply",
    [
        Reply(1, result=None),
        Reply(2, result=[{"host_id": 1, "flags": 3}]),
        Reply(3, failure=Failure("sanlock", -243, "Lease is held by another host")),
        Reply(4, failure=Failure("sanlock", 2, "No such file or directory", daemon_up=False)),
        Reply(5, failure=Failure("os", 2, "No such file or directory")),
    ],
)
def test_reply_round_trip(reply: Reply) -> None:
    assert decode_reply(encode(reply)) == reply


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b"not json\n", "not a JSON line"),
        (b"[1,2]\n", "without an integer id"),
        (b'{"id": "1", "result": 1}\n', "without an integer id"),
        (b'{"id": 1}\n', "neither result nor error"),
        (b'{"id": 1, "error": "boom"}\n', "malformed error"),
        (b'{"id": 1, "error": {"kind": "os", "errno": "2", "message": "m"}}\n', "non-integer errno"),
    ],
)
def test_bad_replies_are_named(line: bytes, match: str) -> None:
    with pytest.raises(LeaseProtocolError, match=match):
        decode_reply(line)


def test_bad_request_is_named() -> None:
    with pytest.raises(LeaseProtocolError, match="lacks op or args"):
        decode_request(b'{"id": 3, "op": "acquire"}\n')


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        (1, model.HostStatus.UNKNOWN),
        (2, model.HostStatus.FREE),
        (3, model.HostStatus.LIVE),
        (4, model.HostStatus.FAIL),
        (5, model.HostStatus.DEAD),
    ],
)
def test_host_flags_map_to_status(flags: int, status: model.HostStatus) -> None:
    record = {"host_id": 2, "generation": 3, "timestamp": 400, "io_timeout": 1, "flags": flags}
    assert model.host_info(record) == model.HostInfo(2, status, 3, 400, 1)


def test_unknown_host_flag_and_missing_field_are_protocol_errors() -> None:
    with pytest.raises(LeaseProtocolError, match="unknown sanlock host status flag 9"):
        model.host_info({"host_id": 2, "generation": 3, "timestamp": 400, "io_timeout": 1, "flags": 9})
    with pytest.raises(LeaseProtocolError, match="'generation'"):
        model.lease_owner({"host_id": 2, "timestamp": 400})
    with pytest.raises(LeaseProtocolError, match="'host_id'"):
        model.lease_owner({"host_id": True, "generation": 1, "timestamp": 400})


def test_held_resource_and_volume_records() -> None:
    record = {"lockspace": "hosted-engine", "resource": "vm", "flags": 1, "version": 4, "disks": [["/v", 1048576]]}
    assert model.held_resource(record) == model.HeldResource("hosted-engine", "vm", 4, ((Path("/v"), 1048576),))
    info = model.volume_info(Path("/v"), {"size": 10, "block": True, "sector_size": 4096})
    assert info == model.VolumeInfo(Path("/v"), 10, True, 4096)


@pytest.mark.parametrize(
    ("inq", "adding", "state"),
    [
        (True, False, model.LockspaceState.JOINED),
        (False, False, model.LockspaceState.NOT_JOINED),
        (None, True, model.LockspaceState.JOINING),
        (None, False, model.LockspaceState.LEAVING),
    ],
)
def test_lockspace_state(inq: bool | None, adding: bool, state: model.LockspaceState) -> None:
    assert model.lockspace_state(inq, adding) is state
