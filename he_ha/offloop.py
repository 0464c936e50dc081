"""Blocking calls on dedicated daemon threads, each under a deadline, refused while one is stuck.

A call into the kernel or a daemon (an O_DIRECT read of hung NFS, a libvirt call to a frozen
libvirtd) cannot be interrupted. A ``Lane`` runs such calls on threads of its own and gives
each call a deadline. A call whose caller stopped waiting for it while it still runs is
*stuck*; until it returns, new calls are refused at once (``LaneStuck``) instead of queueing
behind it or piling up more threads that would get stuck too.

Why not ``loop.run_in_executor`` or a ThreadPoolExecutor: a stuck call there takes a worker
other code needs, nothing tells "stuck" from "busy", new work queues behind the stuck call,
and the pool's non-daemon threads are joined at interpreter exit, so one call stuck forever
would keep the process from exiting. A lane's threads are daemons.

The errors here are generic; each user turns them into its own typed errors (the
whiteboard's StorageTimeout/StorageStalled, the monitors' DeadlineExceeded/WorkerBusy, the
VM layer's HypervisorTimeout/HypervisorBusy).
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StuckCall:
    """A call whose caller stopped waiting for it and that has not returned yet."""

    operation: str
    age: float  # seconds since it started
    overdue: float  # seconds since its caller stopped waiting (its deadline, or a cancellation)


class LaneError(Exception):
    """The lane refused a call or stopped waiting for it."""

    def __init__(self, lane: str, operation: str, problem: str) -> None:
        self.lane = lane
        self.operation = operation
        super().__init__(f"{lane}: {operation}: {problem}")


class CallTimeout(LaneError):
    """The deadline passed (waiting for a turn or for the call); the call may still be running."""

    def __init__(self, lane: str, operation: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(lane, operation, f"no answer within {timeout:g} s")


class LaneStuck(LaneError):
    """Refused at once: an earlier call was given up on and has not returned."""

    def __init__(self, lane: str, operation: str, oldest: StuckCall) -> None:
        self.oldest = oldest
        super().__init__(lane, operation, f"refused: earlier call {oldest.operation!r} stuck for {oldest.age:.1f} s")


class LaneFull(LaneError):
    """Refused at once: every thread of the lane is running a call."""

    def __init__(self, lane: str, operation: str, threads: int) -> None:
        self.threads = threads
        super().__init__(lane, operation, f"refused: all {threads} threads are busy")


@dataclass(eq=False)
class _Job:
    operation: str
    fn: Callable[[], Any]
    started: float  # time.monotonic()
    future: Future[Any] = field(default_factory=Future)
    given_up_at: float | None = None  # set when its caller stopped waiting: from then on it is stuck


class _Worker:
    """One daemon thread with its inbox; ``retired`` makes it exit after its current job."""

    def __init__(self, lane: Lane, thread_name: str) -> None:
        self.inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.retired = False
        threading.Thread(target=lane._work, args=(self,), name=thread_name, daemon=True).start()


class Lane:
    """Runs blocking calls on at most ``threads`` daemon threads, started on first need.

    ``name`` names the threads: ``name`` itself for a one-thread lane, ``name_0``,
    ``name_1``, ... otherwise. When every thread is taken, a caller waits for its turn
    within its deadline (``wait_for_turn=True``) or is refused at once with ``LaneFull``.
    A caller that stops waiting at its deadline leaves its call stuck. So does a caller
    that is cancelled, unless ``cancel_leaves_stuck=False``: a pool whose other threads
    go on working need not refuse everything because one caller left.

    In a lane that waits for turns and treats cancellation as stuck, ``LaneFull`` cannot
    happen without ``allow_while_stuck``: a caller only gives up its turn once its call
    returned or became stuck, and the next caller is then refused with ``LaneStuck``.
    """

    def __init__(
        self, name: str, *, threads: int = 1, wait_for_turn: bool = True, cancel_leaves_stuck: bool = True
    ) -> None:
        if threads < 1:
            raise ValueError(f"lane {name}: threads must be >= 1, got {threads}")
        self.name = name
        self.threads = threads
        self._turns: AbstractAsyncContextManager[Any] = asyncio.Semaphore(threads) if wait_for_turn else nullcontext()
        self._cancel_leaves_stuck = cancel_leaves_stuck
        self._lock = threading.Lock()  # the worker threads update the bookkeeping below too
        self._running: dict[_Job, _Worker] = {}  # a job stays here until it returned, even if given up on
        self._idle: list[_Worker] = []
        self._numbers = itertools.count()

    async def run(self, operation: str, fn: Callable[[], T], timeout: float, *, allow_while_stuck: bool = False) -> T:
        """Run ``fn()`` on a lane thread; return its result or raise its exception.

        ``timeout`` (seconds) covers the wait for a turn and the call. Raises CallTimeout
        when it passes (a call already running goes on and is stuck), LaneStuck at once
        while an earlier call is stuck (unless ``allow_while_stuck``, e.g. to abort the
        stuck operation), LaneFull at once when no thread is free and the lane does not
        wait for turns. ``operation`` names the call in errors, ``stuck()`` and logs.
        """
        if not timeout > 0:
            raise ValueError(f"lane {self.name}: {operation}: timeout must be > 0 seconds, got {timeout!r}")
        if not allow_while_stuck:
            with self._lock:
                self._refuse_if_stuck(operation)  # at once, not after waiting for a turn
        deadline = asyncio.timeout(timeout)
        job: _Job | None = None
        try:
            async with deadline, self._turns:
                job = self._start(operation, fn, allow_while_stuck)
                result: T = await asyncio.wrap_future(job.future)
                return result
        except TimeoutError:
            if not deadline.expired():
                raise  # the call's own TimeoutError, not our deadline
            raise CallTimeout(self.name, operation, timeout) from None
        finally:
            # Runs before a caller waiting for the turn we just gave back gets to look.
            if job is not None and not job.future.done() and (deadline.expired() or self._cancel_leaves_stuck):
                self._give_up(job)

    def busy_for(self) -> float | None:
        """Seconds the oldest unfinished call (stuck or not) has been running; None if none."""
        with self._lock:
            now = time.monotonic()
            return max((now - job.started for job in self._running), default=None)

    def stuck(self) -> list[StuckCall]:
        """The calls given up on that have not returned, oldest first."""
        with self._lock:
            return self._stuck()

    def in_flight(self) -> int:
        """Calls running in the lane's threads, stuck ones included."""
        with self._lock:
            return len(self._running)

    def close(self) -> None:
        """Let the threads exit: idle ones now, busy ones when their call returns (a stuck
        call stays with its daemon thread). A later call starts a new thread; an owner that
        must refuse calls after closing says so itself."""
        with self._lock:
            idle, self._idle = self._idle, []
            for worker in self._running.values():
                worker.retired = True
        for worker in idle:
            worker.inbox.put(None)

    # --- internals (the bookkeeping is guarded by self._lock) --------------------------------

    def _stuck(self) -> list[StuckCall]:
        now = time.monotonic()
        calls = [
            StuckCall(job.operation, now - job.started, now - job.given_up_at)
            for job in self._running
            if job.given_up_at is not None
        ]
        return sorted(calls, key=lambda call: call.age, reverse=True)

    def _refuse_if_stuck(self, operation: str) -> None:
        stuck = self._stuck()
        if stuck:
            raise LaneStuck(self.name, operation, stuck[0])

    def _start(self, operation: str, fn: Callable[[], Any], allow_while_stuck: bool) -> _Job:
        with self._lock:
            if not allow_while_stuck:
                self._refuse_if_stuck(operation)
            if len(self._running) >= self.threads:
                raise LaneFull(self.name, operation, self.threads)
            job = _Job(operation, fn, time.monotonic())
            # Busy threads (retired ones included) equal len(self._running) < threads, so a
            # new thread keeps the lane within its bound.
            worker = self._idle.pop() if self._idle else self._new_worker()
            self._running[job] = worker
        worker.inbox.put(job)
        return job

    def _new_worker(self) -> _Worker:
        thread_name = self.name if self.threads == 1 else f"{self.name}_{next(self._numbers)}"
        return _Worker(self, thread_name)

    def _give_up(self, job: _Job) -> None:
        with self._lock:
            if job in self._running:  # not returned in the meantime
                job.given_up_at = time.monotonic()

    def _work(self, worker: _Worker) -> None:
        """A worker thread: run jobs until retired."""
        while (job := worker.inbox.get()) is not None:
            result: Any = None
            error: BaseException | None = None
            # False when its caller left before the job began: then it never runs.
            ran = job.future.set_running_or_notify_cancel()
            if ran:
                try:
                    result = job.fn()
                except BaseException as exc:  # handed to the waiting coroutine, not lost
                    error = exc
            # Free the thread before answering, so a caller woken by the answer finds it free.
            with self._lock:
                del self._running[job]
                retired = worker.retired
                if not retired:
                    self._idle.append(worker)
            if ran:
                if job.given_up_at is not None:
                    after = round(time.monotonic() - job.started, 3)
                    log.info("stuck call returned", lane=self.name, operation=job.operation, after=after)
                if error is None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(error)
            if retired:
                return
