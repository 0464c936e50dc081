"""Storage monitor: whiteboard I/O latency and errors, through a probe the storage layer supplies.

The original's ``storage-domain`` monitor was valid iff VDSM said the domain was valid
and its read delay was at most 10 s (spec §5.7). Here the storage layer hands in an async
``probe`` (e.g. read this host's slot with O_DIRECT); this monitor times it under a
deadline. ``valid`` = the probe succeeded within ``max_delay``. A probe that fails or
misses the deadline gives an error reading (its ``duration`` is the time it took to fail).
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from he_ha.monitors.commands import OffLoop
from he_ha.monitors.framework import Monitor, MonitorError, require_positive

StorageProbe = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class StorageStatus:
    valid: bool  # the probe succeeded and took at most max_delay
    latency: float  # seconds the probe took


class StorageMonitor(Monitor[StorageStatus]):
    """``probe``: async callable doing one read (and/or write) of the whiteboard; it
    should bound its own threads (see ``OffLoop``). ``interval`` 10 s, ``timeout`` 30 s,
    ``max_delay`` 10 s (the original's STORAGE_DELAY)."""

    name = "storage"

    def __init__(
        self,
        probe: StorageProbe,
        *,
        interval: float = 10.0,
        timeout: float = 30.0,
        max_delay: float = 10.0,
    ) -> None:
        require_positive("StorageMonitor", max_delay=max_delay)
        super().__init__(interval=interval, deadline=timeout)
        self._probe = probe
        self.max_delay = max_delay

    async def probe(self) -> StorageStatus:
        started = time.monotonic()
        try:
            await self._probe()
        except OSError as exc:
            raise MonitorError(f"storage I/O failed: {exc}") from None
        latency = time.monotonic() - started
        return StorageStatus(valid=latency <= self.max_delay, latency=latency)


def direct_read_probe(path: Path, *, size: int = 4096, offset: int = 0, timeout: float = 30.0) -> StorageProbe:
    """A probe reading ``size`` bytes at ``offset`` of ``path`` with O_DIRECT in its own
    worker thread (a hung read blocks that one thread; later probes fail at once)."""
    if size <= 0 or size % 512 or offset % 512:
        raise ValueError(f"O_DIRECT needs size and offset in whole 512-byte sectors, got {size}, {offset}")
    worker = OffLoop(f"direct-read-{path.name}")

    def read() -> None:
        buffer = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT requires
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                got = os.preadv(fd, [buffer], offset)
            finally:
                os.close(fd)
        finally:
            buffer.close()
        if got != size:
            raise MonitorError(f"{path}: short read, {got} of {size} bytes at {offset}")

    async def probe() -> None:
        await worker.call(read, timeout)

    return probe
