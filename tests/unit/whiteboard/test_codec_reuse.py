"""decode_whiteboard(previous=...): unchanged slots take their outcome from the previous view,
and the result is the one a decode from scratch gives (issue 16 item 1)."""

from __future__ import annotations

import zlib

from he_ha.whiteboard import (
    SLOT_BYTES,
    DecodedBoard,
    GlobalBlock,
    decode_whiteboard,
    encode_global_block,
    encode_host_slot,
)
from tests.unit.whiteboard.samples import host_slot


def outcome(view: DecodedBoard) -> tuple[object, ...]:
    errors = {index: (type(err).__name__, str(err)) for index, err in view.errors.items()}
    global_error = None if view.global_error is None else (type(view.global_error).__name__, str(view.global_error))
    return (view.global_block, global_error, dict(view.hosts), errors, dict(view.fingerprints), dict(view.slot_bytes))


def put(buffer: bytearray, index: int, data: bytes) -> None:
    buffer[index * SLOT_BYTES : (index + 1) * SLOT_BYTES] = data.ljust(SLOT_BYTES, b"\0")


def test_reusing_the_previous_view_gives_what_a_fresh_decode_gives() -> None:
    buffer = bytearray(SLOT_BYTES * 12)
    put(buffer, 0, encode_global_block(GlobalBlock(maintenance=False)))
    for host_id in (1, 2, 3, 4):
        put(buffer, host_id, encode_host_slot(host_slot(host_id)))
    put(buffer, 5, b"garbage|not|a|slot")
    put(buffer, 6, encode_host_slot(host_slot(7)))  # misplaced: wrong host id
    put(buffer, 8, b"\0leftover")
    first = decode_whiteboard(bytes(buffer))
    assert outcome(decode_whiteboard(bytes(buffer), previous=first)) == outcome(first)

    put(buffer, 0, encode_global_block(GlobalBlock(maintenance=True)))
    put(buffer, 2, encode_host_slot(host_slot(2, host_ts=999, score=0)))  # republished
    put(buffer, 3, b"")  # cleared
    put(buffer, 5, encode_host_slot(host_slot(5)))  # repaired
    put(buffer, 4, b"now|garbage")  # broken
    put(buffer, 10, encode_host_slot(host_slot(10)))  # new
    second = decode_whiteboard(bytes(buffer), previous=first)
    assert outcome(second) == outcome(decode_whiteboard(bytes(buffer)))
    assert second.hosts[1] is first.hosts[1]  # unchanged: not decoded again
    assert second.global_block == GlobalBlock(maintenance=True)
    assert second.hosts.keys() == {1, 2, 5, 10} and second.errors.keys() == {4, 6, 8}
    assert second.fingerprints[4] == f"{zlib.crc32(bytes(buffer[4 * SLOT_BYTES : 5 * SLOT_BYTES])):08x}"
