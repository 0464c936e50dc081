"""Wake the ticker when a peer's slot changes, between the periodic ticks.

Why a poll: the whiteboard is a plain file on shared storage; there is no notification when
another host writes it. Every ``interval`` seconds the whiteboard is read (the same read the
next tick reuses) and compared with the previous one, ignoring the timestamps every live
host changes at each publish. A peer taking the VM, going into maintenance, stopping or
changing its score, and the global maintenance flag, trigger a tick at once instead of up to
a tick period later. 2 s keeps the reaction well under the 10 s period; the cost is one
O_DIRECT read per interval per host: the slots that can hold a host (48 KiB for 3 hosts,
about 1 ms), all 8 MB (~10 ms, mostly device time) every 60 s (board.ScanRange).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from he_ha.supervisor.board import BoardReader, peer_signature
from he_ha.whiteboard import WhiteboardError

log = structlog.get_logger(__name__)


class PeerWatch:
    def __init__(self, reader: BoardReader, own_id: int, interval: float, on_change: Callable[[str], None]) -> None:
        if not interval > 0:
            raise ValueError(f"peer poll interval must be > 0, got {interval!r}")
        self._reader = reader
        self._own_id = own_id
        self._interval = interval
        self._on_change = on_change
        self._last: tuple[object, ...] | None = None
        self.polls = 0

    def note(self, signature: tuple[object, ...]) -> None:
        """A tick read the board: what it saw is the baseline (no wake for it)."""
        self._last = signature

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                read = await self._reader.read(max_age=self._interval / 2)
            except WhiteboardError:
                continue  # the tick reports storage errors; the poll just tries again
            self.polls += 1
            signature = peer_signature(read.raw, self._own_id)
            if self._last is not None and signature != self._last:
                self._on_change(_describe(self._last, signature))
            self._last = signature


def _describe(before: tuple[object, ...], after: tuple[object, ...]) -> str:
    parts = ("peer slots", "unreadable slots", "global maintenance")
    return ", ".join(name for name, old, new in zip(parts, before, after, strict=True) if old != new) + " changed"
