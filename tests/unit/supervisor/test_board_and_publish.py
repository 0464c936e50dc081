"""Whiteboard bytes → the FSM's view, peer-change signatures, and our slot ← the FSM's record."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

from he_ha.fsm import EngineHealth, PeerFault, PeerRecord, PublishedRecord, ScoreBreakdown
from he_ha.fsm.score import Penalty
from he_ha.supervisor.board import BoardRead, fsm_view, peer_signature
from he_ha.supervisor.publish import EXTRA_BYTES, SlotContext, build_slot, parse_extra
from he_ha.whiteboard import (
    SLOT_BYTES,
    GlobalBlock,
    HostSlot,
    decode_host_slot,
    decode_whiteboard,
    encode_global_block,
    encode_host_slot,
)
from tests.unit.whiteboard.samples import UP_STATUS, host_slot

OWN = 1


def board(*slots: HostSlot, global_block: bytes | None = None, raw: dict[int, bytes] | None = None) -> BoardRead:
    buffer = bytearray(SLOT_BYTES * 8)
    if global_block is not None:
        buffer[0:SLOT_BYTES] = global_block
    for slot in slots:
        buffer[slot.host_id * SLOT_BYTES : (slot.host_id + 1) * SLOT_BYTES] = encode_host_slot(slot)
    for host_id, data in (raw or {}).items():
        buffer[host_id * SLOT_BYTES : host_id * SLOT_BYTES + len(data)] = data
    return BoardRead(decode_whiteboard(bytes(buffer)), read_at=500.0, duration=0.01)


def newer_version_slot(host_id: int, host_ts: int = 100) -> bytes:
    """A header of parse version 2 with a correct crc: written by a newer agent."""
    fields = ["2", "1", str(host_ts), str(host_id), "3400", UP_STATUS, "future", "0", "0", "00000000", "1", "100"]
    fields[9] = f"{zlib.crc32('|'.join(fields).encode()):08x}"
    return "|".join(fields).encode()


def test_fsm_view_has_every_peer_but_us_and_the_global_flag() -> None:
    read = board(
        host_slot(OWN),
        host_slot(2, engine_status=UP_STATUS, score=3000),
        host_slot(4, maintenance=True),
        global_block=encode_global_block(GlobalBlock(maintenance=True)),
        raw={3: newer_version_slot(3), 5: b"garbage|not|a|slot"},
    )
    view = fsm_view(read, OWN)
    assert view.read_at == 500.0 and view.global_maintenance is True
    assert [p.host_id for p in view.peers] == [2, 3, 4, 5]
    two, three, four, five = view.peers
    assert isinstance(two, PeerRecord) and two.score == 3000 and two.engine_status == EngineHealth("up", "good", "Up")
    assert isinstance(four, PeerRecord) and four.maintenance
    assert isinstance(three, PeerFault) and three.kind == "too_new"
    assert isinstance(five, PeerFault) and five.kind == "corrupt"


def test_a_publishing_newer_version_peer_changes_its_fingerprint_and_a_still_one_does_not() -> None:
    """Liveness of a slot we cannot parse comes from its bytes (B13 needs a live too-new peer)."""

    def fault(host_ts: int) -> PeerFault:
        (peer,) = fsm_view(board(raw={3: newer_version_slot(3, host_ts)}), OWN).peers
        assert isinstance(peer, PeerFault) and peer.kind == "too_new"
        return peer

    assert fault(100).fingerprint != fault(110).fingerprint
    assert fault(100).fingerprint == fault(100).fingerprint


def test_global_flag_absent_is_off_and_unreadable_is_unknown() -> None:
    assert fsm_view(board(host_slot(2)), OWN).global_maintenance is False
    assert fsm_view(board(host_slot(2), global_block=b"maintenance=perhaps"), OWN).global_maintenance is None


def test_engine_status_that_is_not_json_ranks_unknown() -> None:
    (peer,) = fsm_view(board(host_slot(2, engine_status="not json")), OWN).peers
    assert isinstance(peer, PeerRecord) and peer.engine_status.vm == "unknown"


def test_peer_signature_ignores_timestamps_but_not_decisions() -> None:
    base = peer_signature(board(host_slot(OWN), host_slot(2)).raw, OWN)
    assert peer_signature(board(host_slot(OWN, host_ts=9), host_slot(2, host_ts=999)).raw, OWN) == base
    assert peer_signature(board(host_slot(OWN, score=0), host_slot(2)).raw, OWN) == base  # ours is no peer
    for changed in ({"score": 1}, {"engine_status": UP_STATUS}, {"maintenance": True}, {"stopped": True}):
        assert peer_signature(board(host_slot(OWN), host_slot(2, **changed)).raw, OWN) != base, changed
    assert peer_signature(board(host_slot(OWN), host_slot(2), host_slot(3)).raw, OWN) != base
    flagged = board(host_slot(OWN), host_slot(2), global_block=encode_global_block(GlobalBlock(maintenance=True)))
    assert peer_signature(flagged.raw, OWN) != base


RECORD = PublishedRecord(
    host_ts=1234,
    state="EngineUpBadHealth",
    score=2800,
    engine_status=EngineHealth("up", "bad", "Up", "failed liveliness check"),
    maintenance=False,
    stopped=False,
    timeout_at=1500.0,
)
SCORE = ScoreBreakdown(3400, (Penalty("bridge", 600, "management bridge down"),), None, 2800)
CTX = SlotContext(OWN, "host1.example.com", True, conf_loaded_at=1200.7, conf_loaded_epoch=1_700_000_000.0)


def test_our_slot_round_trips_through_the_codec_with_a_breakdown_line() -> None:
    slot = build_slot(RECORD, SCORE, CTX, now_epoch=1_700_000_000.0)
    decoded = decode_host_slot(OWN, encode_host_slot(slot))
    assert decoded == slot
    assert (decoded.host_ts, decoded.score, decoded.local_conf_timestamp) == (1234, 2800, 1200)
    assert json.loads(decoded.engine_status) == {
        "vm": "up",
        "health": "bad",
        "detail": "Up",
        "reason": "failed liveliness check",
    }
    lines = decoded.extra.splitlines()
    assert "state=EngineUpBadHealth" in lines and "host-id=1" in lines and "score=2800" in lines
    # B12: the timer is shown as a wall-clock date, not 1970.
    timeout_line = next(line for line in lines if line.startswith("timeout="))
    assert "1970" not in timeout_line and "2023" in timeout_line
    extra = parse_extra(decoded.extra, decoded.score)
    assert extra.state == "EngineUpBadHealth"
    assert extra.breakdown is not None and extra.breakdown.total == 2800
    assert [(p.name, p.amount) for p in extra.breakdown.penalties] == [("bridge", 600)]


def test_our_slot_publishes_the_priority_in_the_extra_text_only() -> None:
    """Issue 14: one ``priority=<n>`` line before the breakdown; the header (what the original's
    agents parse, spec §2.3/§2.9) is byte for byte what it was without it."""
    slot = build_slot(replace(RECORD, priority=-7), SCORE, CTX, now_epoch=1_700_000_000.0)
    plain = build_slot(RECORD, SCORE, CTX, now_epoch=1_700_000_000.0)
    assert encode_host_slot(slot)[:512] == encode_host_slot(plain)[:512]
    lines = slot.extra.splitlines()
    assert lines[-2:] == ["priority=-7", lines[-1]] and lines[-1].startswith("score_breakdown=")
    assert "priority=0" in plain.extra.splitlines()
    decoded = decode_host_slot(OWN, encode_host_slot(slot))
    assert decoded is not None and decoded.priority == -7
    assert _original_parse(encode_host_slot(slot)) == _original_parse(encode_host_slot(plain)) | {"extra": slot.extra}


def _original_parse(data: bytes) -> dict[str, object]:
    """The original's reader (spec §2.7, §2.9): the header's fields, the rest as raw ``extra``."""
    text = data.decode("utf-8")
    fields = text[:512].rstrip("\0").split("|")
    parsed: dict[str, object] = {
        "host-ts": int(fields[2]),
        "score": int(fields[4]),
        "engine-status": fields[5],
        "hostname": fields[6],
        "maintenance": int(fields[7]) > 0,
        "stopped": int(fields[8]) > 0,
        "crc32": fields[9],
        "conf_on_shared_storage": int(fields[10]) > 0,
        "local_conf_timestamp": int(fields[11]),
    }
    extra = text[512:].rstrip("\0")
    if extra:
        parsed["extra"] = extra
    return parsed


def test_fsm_view_reads_peer_priorities_absent_or_odd_is_the_default() -> None:
    extra = "metadata_parse_version=1\nstate=EngineDown\n"
    slots = (
        host_slot(2, extra=extra + "priority=12\n"),
        host_slot(3, extra=extra),  # an original agent: no priority line
        host_slot(4, extra=extra + "priority=high\n"),
        host_slot(5, extra=extra + "priority=5000\n"),
        host_slot(6, extra="priority=-3\nstate=EngineDown\n"),
        host_slot(7, extra=extra + "no_priority=9\n"),
    )
    view = fsm_view(board(*slots), OWN)
    assert [(p.host_id, p.priority) for p in view.peers if isinstance(p, PeerRecord)] == [
        (2, 12),
        (3, 0),
        (4, 0),
        (5, 0),
        (6, -3),
        (7, 0),
    ]


def test_long_reasons_never_overflow_the_slot() -> None:
    penalties = tuple(Penalty(f"p{i}", 1, "x" * 500) for i in range(30))
    slot = build_slot(RECORD, ScoreBreakdown(3400, penalties, "y" * 500, 0), CTX, now_epoch=1_700_000_000.0)
    assert len(slot.extra.encode()) <= EXTRA_BYTES
    assert len(encode_host_slot(slot)) == SLOT_BYTES


def test_peer_extra_without_breakdown_or_with_garbage() -> None:
    assert parse_extra("state=EngineDown\n", 3400).breakdown is None
    assert parse_extra("state=EngineDown\nscore_breakdown={bad\n", 3400) == parse_extra("state=EngineDown\n", 3400)
    assert parse_extra("", None).state is None


def test_stopped_record_publishes_stopped_and_score_zero() -> None:
    stopped = replace(RECORD, state="AgentStopped", score=0, stopped=True, timeout_at=None)
    slot = build_slot(stopped, replace(SCORE, override="agent stopped", total=0), CTX, now_epoch=1.7e9)
    assert slot.stopped and slot.score == 0 and "stopped=True" in slot.extra and "timeout=" not in slot.extra
