"""A one-thread lane for blocking storage calls that can hang forever (hung NFS, dead SAN).

Why not ``loop.run_in_executor`` or a ThreadPoolExecutor:
- a thread stuck in a hung read must not take a worker other code needs, so each kind of
  call gets its own thread;
- callers must be able to see "still stuck" and refuse new work instead of queueing it
  behind the stuck call or spawning more threads that would get stuck too;
- ThreadPoolExecutor joins its workers at interpreter exit, so one stuck read would keep the
  process from exiting; this lane's thread is a daemon.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class IoLane:
    """Runs submitted calls one at a time on a single daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._current: Future[Any] | None = None
        self._current_since = 0.0
        self._closed = False

    def busy_for(self) -> float | None:
        """Seconds the last submitted call has been running or queued; None when it finished."""
        if self._current is None or self._current.done():
            return None
        return time.monotonic() - self._current_since

    def submit(self, call: Callable[..., Any], *args: Any) -> Future[Any]:
        """Hand ``call(*args)`` to the thread. The lane must be idle (see ``busy_for``)."""
        if self._closed:
            raise RuntimeError(f"I/O lane {self._name} is closed")
        if self.busy_for() is not None:
            raise RuntimeError(f"I/O lane {self._name} is still running the previous call")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        future: Future[Any] = Future()
        self._current, self._current_since = future, time.monotonic()
        self._jobs.put((future, call, args))
        return future

    def close(self) -> None:
        """Stop the thread after its current call; a call stuck in the kernel stays abandoned."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, call, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutine, not lost
                future.set_exception(exc)
            else:
                future.set_result(result)
