"""Whiteboard I/O on a real file with O_DIRECT: exact offsets, own slot only, typed errors."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from he_ha.whiteboard import (
    SLOT_BYTES,
    WHITEBOARD_BYTES,
    CorruptSlot,
    EncodeError,
    GlobalBlock,
    SlotOfAnotherHost,
    StorageError,
    Whiteboard,
    encode_global_block,
    encode_host_slot,
)
from tests.integration.whiteboard.helpers import read_raw_slot, write_raw_slot
from tests.unit.whiteboard.samples import host_slot


async def test_publish_writes_exactly_our_slot(volume: Path) -> None:
    neighbours = {2: encode_host_slot(host_slot(2)), 4: encode_host_slot(host_slot(4))}
    for index, data in neighbours.items():
        write_raw_slot(volume, index, data)
    mine = host_slot(3, hostname="hôte-3.example", extra="state=EngineUp\n")
    async with Whiteboard(volume, 3) as board:
        await board.publish(mine)
    assert read_raw_slot(volume, 3) == encode_host_slot(mine)
    for index, data in neighbours.items():
        assert read_raw_slot(volume, index) == data
    assert os.path.getsize(volume) == WHITEBOARD_BYTES


async def test_read_all_sees_every_host_and_the_global_block(volume: Path) -> None:
    write_raw_slot(volume, 0, encode_global_block(GlobalBlock(maintenance=True)))
    for host_id in (1, 250, 2000):
        write_raw_slot(volume, host_id, encode_host_slot(host_slot(host_id, hostname=f"ホスト{host_id}")))
    write_raw_slot(volume, 7, encode_host_slot(host_slot(8)))  # a misplaced block
    damaged = bytearray(encode_host_slot(host_slot(9)))
    damaged[20] ^= 0x01
    write_raw_slot(volume, 9, bytes(damaged))
    async with Whiteboard(volume, 1) as board:
        view = await board.read_all()
        stats = board.last_read
    assert view.global_block == GlobalBlock(maintenance=True)
    assert view.hosts == {h: host_slot(h, hostname=f"ホスト{h}") for h in (1, 250, 2000)}
    assert isinstance(view.errors[7], SlotOfAnotherHost) and isinstance(view.errors[9], CorruptSlot)
    assert stats is not None and stats.ok and stats.op == "read" and stats.duration > 0


async def test_a_partial_read_covers_only_the_first_slots_with_aligned_o_direct_io(volume: Path) -> None:
    """read_all(slots): one O_DIRECT read of slots*4096 bytes from offset 0 (issue 16 item 1)."""
    for host_id in (1, 3, 12, 13):
        write_raw_slot(volume, host_id, encode_host_slot(host_slot(host_id)))
    async with Whiteboard(volume, 1) as board:
        view = await board.read_all(13)
        assert board.bytes_read == 13 * SLOT_BYTES
        full = await board.read_all()
        assert board.bytes_read == 13 * SLOT_BYTES + WHITEBOARD_BYTES
        with pytest.raises(ValueError):
            await board.read_all(0)
    assert view.hosts.keys() == {1, 3, 12} and view.scanned_slots == 13
    assert full.hosts.keys() == {1, 3, 12, 13} and full.scanned_slots == 2001
    assert view.highest_used == 12 and full.highest_used == 13


async def test_round_trip_between_two_hosts(volume: Path) -> None:
    async with Whiteboard(volume, 1) as one, Whiteboard(volume, 2) as two:
        await one.publish(host_slot(1, score=3400))
        await two.publish(host_slot(2, score=2400))
        await two.admin_write_global(GlobalBlock(maintenance=True))
        seen_by_one = await one.read_all()
        await one.admin_write_global(GlobalBlock(maintenance=False))
        await two.clear_own_slot()
        seen_by_two = await two.read_all()
    assert seen_by_one.hosts == {1: host_slot(1, score=3400), 2: host_slot(2, score=2400)}
    assert seen_by_one.global_block == GlobalBlock(maintenance=True)
    assert seen_by_two.hosts == {1: host_slot(1, score=3400)}
    assert seen_by_two.global_block == GlobalBlock(maintenance=False)
    assert read_raw_slot(volume, 2) == bytes(SLOT_BYTES)
    assert read_raw_slot(volume, 0) == b"maintenance=0".ljust(SLOT_BYTES, b"\0")


async def test_publishing_another_hosts_slot_is_refused(volume: Path) -> None:
    async with Whiteboard(volume, 3) as board:
        with pytest.raises(EncodeError, match="refusing to publish a slot for host 4: this host is 3"):
            await board.publish(host_slot(4))
    assert read_raw_slot(volume, 4) == bytes(SLOT_BYTES)


async def test_short_file_reads_as_zero(direct_dir: Path) -> None:
    path = direct_dir / "short"
    path.write_bytes(encode_global_block(GlobalBlock(True)) + encode_host_slot(host_slot(1))[:1000])
    async with Whiteboard(path, 1) as board:
        view = await board.read_all()
        await board.publish(host_slot(1))  # writing at 4096 extends the file to 8192
        after = await board.read_all()
    assert view.global_block == GlobalBlock(True) and view.hosts == {1: host_slot(1)}
    assert after.hosts == {1: host_slot(1)} and os.path.getsize(path) == 2 * SLOT_BYTES


async def test_missing_volume_is_a_storage_error_recorded_in_stats(direct_dir: Path) -> None:
    async with Whiteboard(direct_dir / "absent", 1) as board:
        with pytest.raises(StorageError, match=r"read of .*absent: open failed: No such file") as read_error:
            await board.read_all()
        with pytest.raises(StorageError, match=r"write of .*absent: open failed: No such file"):
            await board.publish(host_slot(1))
        assert board.last_read is not None and board.last_read.error is read_error.value
        assert board.last_write is not None and not board.last_write.ok
    assert read_error.value.errno == 2


async def test_concurrent_callers_wait_for_each_other(volume: Path) -> None:
    async with Whiteboard(volume, 5) as board:
        await board.publish(host_slot(5))
        views = await asyncio.gather(*(board.read_all() for _ in range(4)))
    assert all(view.hosts == {5: host_slot(5)} for view in views)


def test_constructor_validates_its_arguments(volume: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("own host id 0 is outside 1..2000")):
        Whiteboard(volume, 0)
    with pytest.raises(ValueError, match="timeouts must be positive"):
        Whiteboard(volume, 1, read_timeout=0)
