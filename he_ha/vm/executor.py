"""A small, bounded thread pool for blocking libvirt calls, each with a deadline.

A libvirt call cannot be interrupted: when libvirtd or QEMU hangs, the thread stays inside
libvirt until it answers. So a missed deadline raises HypervisorTimeout at once (the loop
goes on) and the call is remembered as *stuck*. While any stuck call remains, new calls are
refused at once with HypervisorBusy instead of queueing behind it; and the pool never grows
beyond ``max_threads``, so a hung hypervisor cannot pile up threads.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import structlog

from he_ha.vm.errors import HypervisorBusy, HypervisorTimeout

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass
class _Call:
    operation: str
    started: float
    timed_out: bool = False


@dataclass(frozen=True)
class StuckCall:
    """A call that missed its deadline and has not returned yet."""

    operation: str
    age: float


class LibvirtExecutor:
    def __init__(self, max_threads: int = 4, name: str = "libvirt") -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {max_threads}")
        self._max_threads = max_threads
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix=name)
        # Touched from worker threads (done callbacks) and the loop: guarded by a lock.
        self._lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count()

    def stuck_calls(self) -> list[StuckCall]:
        now = time.monotonic()
        with self._lock:
            return [StuckCall(c.operation, now - c.started) for c in self._calls.values() if c.timed_out]

    def in_flight(self) -> int:
        with self._lock:
            return len(self._calls)

    async def run(self, operation: str, fn: Callable[[], T], deadline: float, *, allow_while_stuck: bool = False) -> T:
        """Run ``fn`` in a pool thread; raise HypervisorTimeout after ``deadline`` seconds.

        ``allow_while_stuck`` lets one call through despite a stuck call (used to abort a
        migration whose own call timed out); the thread bound still holds.
        """
        call_id = self._admit(operation, allow_while_stuck)
        try:
            future: Future[T] = self._pool.submit(fn)
        except RuntimeError as exc:  # the pool was shut down
            self._forget(call_id)
            raise HypervisorBusy(operation, f"executor closed ({exc})") from None
        future.add_done_callback(lambda _: self._forget(call_id))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), deadline)
        except TimeoutError:
            with self._lock:
                call = self._calls.get(call_id)
                if call is not None:
                    call.timed_out = True
            log.warning("libvirt call missed its deadline", operation=operation, deadline=deadline)
            raise HypervisorTimeout(operation, deadline) from None

    def _admit(self, operation: str, allow_while_stuck: bool) -> int:
        now = time.monotonic()
        with self._lock:
            stuck = [c for c in self._calls.values() if c.timed_out]
            if stuck and not allow_while_stuck:
                oldest = min(stuck, key=lambda c: c.started)
                raise HypervisorBusy(
                    operation, f"earlier call {oldest.operation!r} stuck in libvirt for {now - oldest.started:.1f} s"
                )
            if len(self._calls) >= self._max_threads:
                raise HypervisorBusy(operation, f"all {self._max_threads} libvirt threads are busy")
            call_id = next(self._ids)
            self._calls[call_id] = _Call(operation, now)
            return call_id

    def _forget(self, call_id: int) -> None:
        with self._lock:
            call = self._calls.pop(call_id, None)
        if call is not None and call.timed_out:
            log.info("stuck libvirt call returned", operation=call.operation, after=time.monotonic() - call.started)

    def shutdown(self) -> None:
        """Stop accepting calls; stuck threads are left to finish on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
