"""Async access to the shared metadata whiteboard: read every slot, write only our own.

A ``Whiteboard`` is bound to one host id at construction. Its public methods can write that
host's slot (``publish``, ``clear_own_slot``) and, only through the explicitly named
``admin_write_global``, slot 0; there is no way to address another host's slot.

Every call runs on a dedicated daemon thread (one ``he_ha.offloop.Lane`` for reads, one for
writes) under a deadline. A missed deadline raises ``WhiteboardTimeout`` while the thread may
stay blocked in the kernel; until it returns, further calls of that kind fail at once with
``StorageStalled`` instead of piling up more stuck threads. Each call's outcome is kept in
``last_read`` / ``last_write`` for the storage monitor.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from typing import Any, Literal, TypeVar

import structlog

from he_ha.config import MAX_HOST_ID
from he_ha.durations import DurationHistogram
from he_ha.offloop import CallTimeout, Lane, LaneStuck
from he_ha.whiteboard.codec import (
    SLOT_BYTES,
    SLOT_COUNT,
    WHITEBOARD_BYTES,
    DecodedBoard,
    GlobalBlock,
    HostSlot,
    decode_whiteboard,
    encode_global_block,
    encode_host_slot,
)
from he_ha.whiteboard.direct_io import read_direct, write_direct
from he_ha.whiteboard.whiteboard_errors import EncodeError, StorageStalled, WhiteboardError, WhiteboardTimeout

log = structlog.get_logger(__name__)

T = TypeVar("T")
Op = Literal["read", "write"]
# A read larger than this (the periodic full scan fills the whole 8 MiB buffer) gives the
# buffer's pages back after decoding: idle RSS then holds only what partial reads touch
# (issue 16 item 3: 7.8 MiB of the supervisor's 82 MiB).
KEEP_RESIDENT = 64 * SLOT_BYTES


@dataclass(frozen=True, slots=True)
class IoStats:
    """Outcome of one whiteboard call."""

    op: Op
    started_at: float  # wall-clock epoch seconds when the call began
    duration: float  # seconds until it returned, failed or gave up
    error: WhiteboardError | None  # None on success

    @property
    def ok(self) -> bool:
        return self.error is None


class Whiteboard:
    """The metadata volume at ``path`` (a file or block device) as seen by host ``own_host_id``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        own_host_id: int,
        *,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
    ) -> None:
        if not 1 <= own_host_id <= MAX_HOST_ID:
            raise ValueError(f"own host id {own_host_id} is outside 1..{MAX_HOST_ID}")
        if read_timeout <= 0 or write_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got read {read_timeout}, write {write_timeout}")
        self._path = os.fspath(path)
        self._own = own_host_id
        self._timeouts: dict[Op, float] = {"read": read_timeout, "write": write_timeout}
        # One thread per kind: concurrent callers of a kind take turns within their deadline,
        # and a stuck read never holds up a write (or the other way round).
        self._lanes: dict[Op, Lane] = {op: Lane(f"whiteboard-{op}-{own_host_id}") for op in ("read", "write")}
        self._closed = False
        self._read_buffer: mmap.mmap | None = None  # page-aligned, reused: only the read lane touches it
        self._last_view: DecodedBoard | None = None  # unchanged slots are not decoded again
        self.last_read: IoStats | None = None
        self.last_write: IoStats | None = None
        self.bytes_read = 0  # by every read so far (the bench's bytes per tick)
        # Every call's duration, failed ones included (a stall shows as its deadline).
        self.durations: dict[Op, DurationHistogram] = {"read": DurationHistogram(), "write": DurationHistogram()}

    @property
    def path(self) -> str:
        return self._path

    @property
    def own_host_id(self) -> int:
        return self._own

    def stalled_for(self) -> float | None:
        """Seconds the oldest unfinished read or write has been blocked; None if none is."""
        stuck = [since for lane in self._lanes.values() if (since := lane.busy_for()) is not None]
        return max(stuck, default=None)

    async def read_all(self, slots: int = SLOT_COUNT) -> DecodedBoard:
        """Read slots 0..2000 with O_DIRECT (a short volume reads as zero) and decode them.

        ``slots`` < 2001 reads and decodes only slots 0..slots-1 (``scanned_slots`` of the
        view says so): one O_DIRECT read of slots*4096 bytes from offset 0, so the length and
        offset stay multiples of 4096, aligned for 512- and 4096-byte sectors alike.
        """
        if not 1 <= slots <= SLOT_COUNT:
            raise ValueError(f"slot count {slots} is outside 1..{SLOT_COUNT}")
        return await self._call("read", self._read_and_decode, slots)

    async def publish(self, slot: HostSlot) -> None:
        """Write our own slot: exactly 4096 bytes at own_host_id*4096, O_DIRECT|O_DSYNC."""
        if slot.host_id != self._own:
            raise EncodeError(f"refusing to publish a slot for host {slot.host_id}: this host is {self._own}")
        await self._write(encode_host_slot(slot), global_block=False)

    async def clear_own_slot(self) -> None:
        """Zero our own slot, so peers see no host there (clean-metadata)."""
        await self._write(bytes(SLOT_BYTES), global_block=False)

    async def admin_write_global(self, block: GlobalBlock) -> None:
        """Write slot 0 (global maintenance). Only for an explicit administrator action."""
        log.info("whiteboard_global_write", path=self._path, maintenance=block.maintenance, by_host=self._own)
        await self._write(encode_global_block(block), global_block=True)

    def close(self) -> None:
        """Stop the worker threads. A thread stuck in the kernel is abandoned (it is a daemon)."""
        self._closed = True
        for lane in self._lanes.values():
            lane.close()
        if self._read_buffer is not None and self._lanes["read"].busy_for() is None:
            self._read_buffer.close()
            self._read_buffer = None

    async def __aenter__(self) -> Whiteboard:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------

    async def _write(self, data: bytes, *, global_block: bool) -> None:
        offset = 0 if global_block else self._own * SLOT_BYTES
        await self._call("write", write_direct, self._path, offset, data)

    def _read_and_decode(self, slots: int) -> DecodedBoard:
        """Runs on the read lane's thread (decoding 2000 slots is CPU work, keep it off the loop)."""
        if self._read_buffer is None:
            self._read_buffer = mmap.mmap(-1, WHITEBOARD_BYTES)
        length = read_direct(self._path, self._read_buffer, slots * SLOT_BYTES)
        self.bytes_read += length
        view = decode_whiteboard(self._read_buffer, length, previous=self._last_view)
        if length > KEEP_RESIDENT:  # decoded into copies: the buffer's pages can go
            self._read_buffer.madvise(mmap.MADV_REMOVE, 0, len(self._read_buffer))
        if slots != SLOT_COUNT:
            view = replace(view, scanned_slots=slots)
        self._last_view = view
        return view

    async def _call(self, op: Op, call: Callable[..., T], *args: Any) -> T:
        started_at, start = time.time(), time.monotonic()
        try:
            result = await self._run(op, call, *args)
        except WhiteboardError as exc:
            self._record(IoStats(op, started_at, time.monotonic() - start, exc))
            raise
        self._record(IoStats(op, started_at, time.monotonic() - start, None))
        return result

    async def _run(self, op: Op, call: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"whiteboard {self._path} is closed")
        timeout = self._timeouts[op]
        try:
            return await self._lanes[op].run(op, partial(call, *args), timeout)
        except CallTimeout:
            raise WhiteboardTimeout(self._path, op, f"no answer within {timeout:g} s") from None
        except LaneStuck as exc:
            started = exc.oldest.age
            raise StorageStalled(
                self._path, op, f"storage still stalled: the previous {op} started {started:.1f} s ago has not returned"
            ) from None

    def _record(self, stats: IoStats) -> None:
        self.durations[stats.op].observe(stats.duration)
        if stats.op == "read":
            self.last_read = stats
        else:
            self.last_write = stats
        if stats.error is not None:
            log.warning(
                "whiteboard_io_failed",
                op=stats.op,
                path=self._path,
                duration=round(stats.duration, 3),
                error=str(stats.error),
            )
