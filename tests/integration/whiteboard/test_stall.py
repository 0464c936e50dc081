"""Hung storage, simulated by a FUSE file whose I/O blocks: the loop keeps running, the call
times out with a typed error, stuck threads do not pile up, and I/O recovers after resume."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from he_ha.whiteboard import StorageStalled, Whiteboard, WhiteboardTimeout, encode_host_slot
from tests.integration.whiteboard.helpers import needs_root, read_raw_slot, write_raw_slot
from tests.support.stallfs import StallFS
from tests.unit.whiteboard.samples import host_slot

pytestmark = [pytest.mark.root, needs_root, pytest.mark.timeout(60)]

DEADLINE = 0.5
TICK = 0.01
MAX_LAG = 0.05


@pytest.fixture
def stallfs(volume: Path, tmp_path: Path) -> Iterator[StallFS]:
    with StallFS(tmp_path / "mnt", volume) as fs:  # resumes before unmounting, even on failure
        yield fs


@dataclass
class Ticks:
    count: int = 0
    max_lag: float = 0.0


@asynccontextmanager
async def ticking() -> AsyncIterator[Ticks]:
    """An unrelated coroutine due every 10 ms, recording how late it ever ran."""
    ticks = Ticks()
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        due = loop.time()
        while True:
            due += TICK
            await asyncio.sleep(due - loop.time())
            ticks.max_lag = max(ticks.max_lag, loop.time() - due)
            ticks.count += 1

    task = asyncio.create_task(tick())
    try:
        yield ticks
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def open_flags(path: Path) -> list[int]:
    """The open flags of every descriptor this process holds on ``path`` (from /proc)."""
    flags = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # closed while listing
            continue
        if target == str(path):
            with open(f"/proc/self/fdinfo/{fd}") as info:
                flags.append(int(next(line for line in info if line.startswith("flags:")).split()[1], 8))
    return flags


async def until_unstuck(board: Whiteboard) -> None:
    async with asyncio.timeout(10):
        while board.stalled_for() is not None:
            await asyncio.sleep(0.01)


def lane_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("whiteboard-"))


async def test_stalled_read_times_out_while_the_loop_keeps_ticking(stallfs: StallFS, volume: Path) -> None:
    write_raw_slot(volume, 1, encode_host_slot(host_slot(1)))
    async with Whiteboard(stallfs.path, 2, read_timeout=DEADLINE) as board:
        assert (await board.read_all()).hosts == {1: host_slot(1)}
        threads_before = lane_threads()
        stallfs.stall()
        async with ticking() as ticks:
            with pytest.raises(WhiteboardTimeout, match=rf"read of {stallfs.path}: no answer within {DEADLINE} s"):
                await board.read_all()
            assert await asyncio.to_thread(stallfs.blocked) == 1  # the read thread is still stuck
            assert [f & os.O_DIRECT for f in open_flags(stallfs.path)] == [os.O_DIRECT]
            stuck_for = board.stalled_for()
            assert stuck_for is not None and stuck_for >= DEADLINE

            with pytest.raises(StorageStalled, match="storage still stalled: the previous read started"):
                await board.read_all()
            assert board.last_read is not None and isinstance(board.last_read.error, StorageStalled)
            assert board.last_read.duration < DEADLINE  # refused at once, not after another deadline
            assert await asyncio.to_thread(stallfs.blocked) == 1  # and no second stuck read
            assert lane_threads() == threads_before
        assert ticks.count >= DEADLINE / TICK / 2
        assert ticks.max_lag < MAX_LAG, f"event loop blocked for {ticks.max_lag * 1000:.0f} ms"

        stallfs.resume()
        await until_unstuck(board)
        assert (await board.read_all()).hosts == {1: host_slot(1)}
        assert board.last_read is not None and board.last_read.ok


async def test_stalled_write_times_out_and_lands_after_resume(stallfs: StallFS, volume: Path) -> None:
    async with Whiteboard(stallfs.path, 2, write_timeout=DEADLINE) as board:
        stallfs.stall()
        async with ticking() as ticks:
            with pytest.raises(WhiteboardTimeout, match=rf"write of {stallfs.path}: no answer within {DEADLINE} s"):
                await board.publish(host_slot(2, score=1))
            assert [f & (os.O_DIRECT | os.O_DSYNC) for f in open_flags(stallfs.path)] == [os.O_DIRECT | os.O_DSYNC]
            with pytest.raises(StorageStalled, match="the previous write started"):
                await board.publish(host_slot(2, score=2))
        assert ticks.max_lag < MAX_LAG, f"event loop blocked for {ticks.max_lag * 1000:.0f} ms"
        assert board.last_write is not None and isinstance(board.last_write.error, StorageStalled)

        stallfs.resume()
        await until_unstuck(board)
        # The timed-out write was not cancelled in the kernel: it completes once storage answers.
        assert read_raw_slot(volume, 2) == encode_host_slot(host_slot(2, score=1))
        await board.publish(host_slot(2, score=3))
        assert (await board.read_all()).hosts == {2: host_slot(2, score=3)}


async def test_teardown_releases_a_read_still_stuck(volume: Path, tmp_path: Path) -> None:
    board = Whiteboard(tmp_path / "mnt" / "metadata", 2, read_timeout=DEADLINE)
    with StallFS(tmp_path / "mnt", volume) as fs:
        fs.stall()
        with pytest.raises(WhiteboardTimeout):
            await board.read_all()
    # Leaving the block resumed the file before unmounting, so the stuck thread returned.
    await until_unstuck(board)
    board.close()
    assert not os.path.ismount(tmp_path / "mnt")
