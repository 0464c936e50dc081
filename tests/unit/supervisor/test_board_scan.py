"""Which slots a whiteboard read covers (issue 16 item 1): up to the highest host id that can
be in use plus a margin, everything on a period, on a new lockspace member and when unsure."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from he_ha.supervisor.board import SCAN_MARGIN, BoardReader, ScanRange
from he_ha.whiteboard import SLOT_BYTES, SLOT_COUNT, WHITEBOARD_BYTES, DecodedBoard, decode_whiteboard, encode_host_slot
from tests.unit.whiteboard.samples import host_slot

OWN = 1


class FakeBoard:
    """A whiteboard in memory; records the slot count of every read."""

    own_host_id = OWN

    def __init__(self) -> None:
        self.data = bytearray(WHITEBOARD_BYTES)
        self.reads: list[int] = []

    def write(self, host_id: int, **changes: object) -> None:
        self.data[host_id * SLOT_BYTES : (host_id + 1) * SLOT_BYTES] = encode_host_slot(host_slot(host_id, **changes))

    async def read_all(self, slots: int = SLOT_COUNT) -> DecodedBoard:
        self.reads.append(slots)
        view = decode_whiteboard(self.data, slots * SLOT_BYTES)
        return view if slots == SLOT_COUNT else replace(view, scanned_slots=slots)


def read(reader: BoardReader) -> DecodedBoard:
    return asyncio.run(reader.read()).raw


def test_the_first_read_is_full_then_reads_stop_above_the_hosts_in_use() -> None:
    board = FakeBoard()
    for host_id in (1, 2, 3):
        board.write(host_id)
    reader = BoardReader(board)  # type: ignore[arg-type]
    reader.note_lockspace([1, 2, 3])
    assert read(reader).hosts.keys() == {1, 2, 3}
    assert board.reads == [SLOT_COUNT]
    view = read(reader)
    assert view.hosts.keys() == {1, 2, 3}
    assert board.reads[-1] == 3 + SCAN_MARGIN + 1
    assert board.reads[-1] * SLOT_BYTES <= 64 * 1024  # issue 16: 3 hosts ≤ 64 KiB per tick
    assert view.scanned_slots == board.reads[-1]


def test_a_host_that_publishes_has_joined_the_lockspace_first_so_it_is_never_missed() -> None:
    """The safety argument of board.py's module doc: publishing needs the host id held in the
    lockspace, so a slot far above the range is preceded by its id in sanlock's view."""
    board = FakeBoard()
    board.write(1)
    board.write(2)
    reader = BoardReader(board)  # type: ignore[arg-type]
    reader.note_lockspace([1, 2])
    read(reader)  # full
    read(reader)
    assert board.reads[-1] < 250
    reader.note_lockspace([1, 2, 250])  # host 250 joined: only then may it write its slot
    board.write(250)
    assert read(reader).hosts.keys() == {1, 2, 250}
    assert board.reads[-1] == SLOT_COUNT  # a new member: a full scan
    assert read(reader).hosts.keys() == {1, 2, 250}
    assert board.reads[-1] == 250 + SCAN_MARGIN + 1  # and from then on in range


def test_a_member_seen_in_range_needs_no_full_scan_but_an_unknown_view_does() -> None:
    board = FakeBoard()
    reader = BoardReader(board)  # type: ignore[arg-type]
    reader.note_lockspace([1])
    read(reader)
    read(reader)
    assert board.reads == [SLOT_COUNT, 1 + SCAN_MARGIN + 1]
    reader.note_lockspace(None)  # sanlock did not answer: nothing bounds the hosts
    read(reader)
    assert board.reads[-1] == SLOT_COUNT


def test_slots_in_use_at_the_last_full_scan_stay_in_range_even_if_sanlock_forgot_them() -> None:
    """Leftover or unusable slots, and hosts sanlock no longer lists, keep being read: the
    broker socket's get_stats serves every non-empty slot, as the full picture would."""
    board = FakeBoard()
    board.write(1)
    board.write(40)
    board.data[60 * SLOT_BYTES : 60 * SLOT_BYTES + 7] = b"garbage"
    reader = BoardReader(board)  # type: ignore[arg-type]
    reader.note_lockspace([1])
    full = read(reader)
    partial = read(reader)
    assert board.reads[-1] == 60 + SCAN_MARGIN + 1
    assert partial.slot_bytes == full.slot_bytes and partial.errors.keys() == {60}


def test_a_full_scan_runs_on_the_period() -> None:
    scan = ScanRange(OWN, period=60.0, margin=4)
    scan.note_lockspace([1, 2])
    assert scan.next_slots(100.0) == SLOT_COUNT
    empty = decode_whiteboard(bytes(0))
    scan.done(empty, 100.0)
    assert scan.next_slots(130.0) == 2 + 4 + 1
    assert scan.next_slots(159.9) == 2 + 4 + 1
    assert scan.next_slots(160.0) == SLOT_COUNT
    scan.done(empty, 160.0)
    assert scan.next_slots(161.0) == 2 + 4 + 1
    assert (scan.full_scans, scan.partial_scans) == (2, 0)


def test_the_range_never_drops_below_our_own_slot_nor_exceeds_the_volume() -> None:
    scan = ScanRange(1990, margin=20)
    scan.note_lockspace([3])
    scan.done(decode_whiteboard(bytes(0)), 0.0)
    assert scan.next_slots(1.0) == SLOT_COUNT
    low = ScanRange(30, margin=2)
    low.note_lockspace([3])
    low.done(decode_whiteboard(bytes(0)), 0.0)
    assert low.next_slots(1.0) == 33
