"""Blocking work off the event loop, under a deadline: one worker thread, or a subprocess.

``OffLoop`` owns a single daemon thread. A call that misses its deadline is abandoned by
the caller but keeps its thread; until it returns, further calls fail at once with
``WorkerBusy`` instead of piling up threads behind a hung hypervisor or NFS server. The
thread is a daemon so a call stuck forever cannot hold up process exit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from he_ha.monitors.framework import MonitorError

T = TypeVar("T")


class DeadlineExceeded(MonitorError):
    """A blocking call or command did not finish within its deadline."""


class WorkerBusy(MonitorError):
    """The worker thread is still stuck in an earlier call that missed its deadline."""


_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class OffLoop:
    """A single daemon worker thread for one kind of blocking call (libvirt, O_DIRECT I/O).

    Concurrent callers (e.g. two monitors sharing a libvirt connection) take turns; each
    caller's ``timeout`` covers its wait for the turn and its own call.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._turn = asyncio.Lock()
        self._running: asyncio.Future[Any] | None = None
        self._abandoned_at: float | None = None
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A call is running in the thread (possibly one abandoned after its deadline)."""
        return self._running is not None

    async def call(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn()`` in the worker thread; raise DeadlineExceeded after ``timeout`` s,
        WorkerBusy at once while an earlier call that missed its deadline still runs."""
        self._refuse_if_stuck()
        future: asyncio.Future[T] | None = None
        try:
            async with asyncio.timeout(timeout), self._turn:
                self._refuse_if_stuck()
                future = self._submit(fn)
                # shield: the deadline abandons the wait, not the job, which keeps
                # running in the thread until it returns.
                return await asyncio.shield(future)
        except TimeoutError:
            raise DeadlineExceeded(f"{self.name}: no answer within {timeout:g} s") from None
        finally:
            # Our deadline or the caller's cancellation left the job running: refuse
            # further calls until it returns instead of queueing them behind it.
            if future is not None and not future.done():
                self._abandoned_at = time.monotonic()

    def _refuse_if_stuck(self) -> None:
        if self._abandoned_at is not None:
            stuck = time.monotonic() - self._abandoned_at
            raise WorkerBusy(f"{self.name}: an earlier call is still running, {stuck:.1f} s past its deadline")

    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"offloop-{self.name}", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._running = future
        future.add_done_callback(self._finished)
        self._jobs.put((fn, loop, future))
        return future

    def _finished(self, _future: asyncio.Future[Any]) -> None:
        self._running = None
        self._abandoned_at = None

    def close(self) -> None:
        """Let the thread exit after its current job (if any)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, loop, future = job
            try:
                result, error = fn(), None
            except BaseException as exc:  # handed to the awaiting coroutine, which re-raises it
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                return  # the loop is closed: nobody is waiting for this result any more


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


async def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run a command without a shell; kill it and raise DeadlineExceeded after ``timeout`` s."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise MonitorError(f"cannot run {argv[0]}: {exc.strerror}") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"{argv[0]} did not finish within {timeout:g} s") from None
    finally:
        if process.returncode is None:  # deadline or cancellation: never leave it running
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return CommandResult(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
