"""An asyncio event loop on a virtual clock, for the simulator.

``time()`` is the simulated time. When nothing is ready to run, the loop does not sleep: it
jumps to the next timer (a supervisor's tick, a sleep standing for a sanlock or libvirt call,
a scripted world event), so ``asyncio.sleep``, ``wait_for`` deadlines and the Ticker's periods
inside the daemon's own code pass in virtual time, as fast as the CPU allows. There is no
I/O, no thread and no executor: a run is fully deterministic.

Timers due at the same time run in the order they were scheduled (asyncio's heap alone
would not promise that), and due times are kept on a 1 µs grid, so that the float error of
clocks with large offsets (each host's monotonic clock is the virtual time plus its own
offset) can never reorder two events meant for the same instant.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
import types
import weakref
from asyncio.format_helpers import _format_callback_source
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context, ContextVar, copy_context
from typing import Any

# The simulated process a task belongs to (a host's supervisor): tasks inherit it from the
# task or callback that created them, so ``kill`` ends a process with every task it started.
PROCESS: ContextVar[object | None] = ContextVar("sim_process", default=None)

GRID = 6  # decimal places of due times: 1 µs


class _Soon(asyncio.Handle):
    """A ready callback: asyncio's Handle, made without its debug-mode checks (the loop is
    never in debug mode; the simulator makes some 20 of these per tick)."""

    __slots__ = ()

    # Handle's own attributes, which typeshed does not declare:
    _callback: Callable[..., object] | None
    _context: Context

    def __init__(
        self, callback: Callable[..., object], args: tuple[Any, ...], loop: VirtualLoop, context: Context | None
    ) -> None:
        self._context = copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None


class _Timer(asyncio.TimerHandle):
    """A timer; the heap orders (due time, scheduling sequence) tuples, not the handles."""

    __slots__ = ()

    # Handle's and TimerHandle's own attributes, which typeshed does not declare:
    _callback: Callable[..., object] | None
    _context: Context
    _when: float
    _scheduled: bool

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: VirtualLoop,
        context: Context | None,
    ) -> None:
        _Soon.__init__(self, callback, args, loop, context)  # type: ignore[arg-type]  # the same slots
        self._when = when
        self._scheduled = True


class _Finished(asyncio.Future[Any]):
    """What an eagerly started task that never had to wait is: already done."""

    _name = "eager"

    def get_name(self) -> str:
        return self._name

    def set_name(self, name: object) -> None:
        self._name = str(name)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Hand a coroutine that was started eagerly over to a Task, at the await it reached."""
    while True:
        try:
            value = yield yielded
        except GeneratorExit:  # closed (garbage-collected unfinished): close the coroutine too
            coro.close()
            raise
        except BaseException as exc:  # the Task's cancellation or its future's exception, passed on
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value


def _registered(loop: VirtualLoop, task: asyncio.Task[Any], context: Context) -> asyncio.Task[Any]:
    process = context.get(PROCESS)
    if process is not None:
        loop.tasks_of(process).add(task)
    return task


class VirtualLoop(asyncio.BaseEventLoop):
    # BaseEventLoop's own attributes, which typeshed does not declare; ``_scheduled`` is a
    # heap of (due time, sequence, timer): tuples compare in C, handles would in Python.
    _scheduled: list[tuple[float, int, _Timer]]
    _ready: collections.deque[asyncio.Handle]
    _timer_cancelled_count: int
    _stopping: bool
    _closed: bool
    _thread_id: int | None

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.until = 0.0
        self._seq = 0
        self._processes: dict[object, weakref.WeakSet[asyncio.Task[Any]]] = {}

    def tasks_of(self, process: object) -> weakref.WeakSet[asyncio.Task[Any]]:
        tasks = self._processes.get(process)
        if tasks is None:
            tasks = self._processes[process] = weakref.WeakSet()
        return tasks

    def spawn(self, process: object, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Start ``coro`` as the first task of ``process``."""
        context = copy_context()
        context.run(PROCESS.set, process)
        return self.create_task(coro, context=context)

    def kill(self, process: object) -> None:
        """The process dies: every task it started is cancelled where it waits."""
        for task in list(self._processes.pop(process, ())):
            task.cancel()

    def time(self) -> float:
        return self.now

    # call_soon, create_task, call_later and call_at do what BaseEventLoop's do, minus its debug-mode
    # checks and indirections: they run some 30 times per simulated tick.

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = _Soon(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def create_task(  # type: ignore[override]
        self, coro: Coroutine[Any, Any, Any], *, name: object = None, context: Context | None = None
    ) -> asyncio.Future[Any]:
        """Run a new task's first step at once, as Python 3.12's eager tasks do: in the
        simulator almost every await (a query, a read, a publish) completes without waiting,
        so most tasks finish right here instead of costing loop rounds. A task that must wait
        becomes a Task from the await it reached on, registered with its process."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if context is None:
            context = copy_context()
        if self._thread_id is None:  # created from outside (not running): it starts when the loop runs
            task: asyncio.Future[Any] = _registered(self, asyncio.Task(coro, loop=self, context=context), context)
        else:
            try:
                yielded = context.run(coro.send, None)
            except StopIteration as stop:
                task = _Finished(loop=self)
                task.set_result(stop.value)
            except BaseException as exc:  # kept in the future, as a Task keeps it
                task = _Finished(loop=self)
                task.set_exception(exc)
            else:
                task = _registered(self, asyncio.Task(_resume(coro, yielded), loop=self, context=context), context)
        if name is not None:
            task.set_name(name)  # type: ignore[attr-defined]
        return task

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.TimerHandle:
        return self.call_at(self.now + delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.TimerHandle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        when = round(when, GRID)
        timer = _Timer(when, callback, args, self, context)
        heapq.heappush(self._scheduled, (when, self._seq, timer))
        self._seq += 1
        return timer

    def run_until(self, until: float) -> None:
        """Run every callback due at or before ``until``; the clock then reads ``until``."""
        self.until = until
        self.run_forever()

    def _run_once(self) -> None:
        """One round, as BaseEventLoop's, minus the selector: when nothing is ready, the clock
        moves to the next timer due at or before ``until``; with none, the loop stops there."""
        scheduled = self._scheduled
        if self._timer_cancelled_count > len(scheduled) // 2 > 50:
            live = [entry for entry in scheduled if not entry[2]._cancelled]
            for _, _, timer in scheduled:
                timer._scheduled = False
            for _, _, timer in live:
                timer._scheduled = True
            heapq.heapify(live)
            scheduled[:] = live
            self._timer_cancelled_count = 0
        while scheduled and scheduled[0][2]._cancelled:
            self._timer_cancelled_count -= 1
            heapq.heappop(scheduled)[2]._scheduled = False
        ready = self._ready
        if not ready and not self._stopping:
            due = scheduled[0][0] if scheduled else math.inf
            if due > self.until:
                self.now = max(self.now, self.until)
                self.stop()
                return
            self.now = due
        now = self.now
        while scheduled and scheduled[0][0] <= now:
            timer = heapq.heappop(scheduled)[2]
            timer._scheduled = False
            ready.append(timer)
        for _ in range(len(ready)):
            handle: Any = ready.popleft()
            if handle._cancelled:
                continue
            try:  # Handle._run, inlined
                handle._context.run(handle._callback, *handle._args)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.call_exception_handler(
                    {
                        "message": f"Exception in callback {_format_callback_source(handle._callback, handle._args)}",
                        "exception": exc,
                        "handle": handle,
                    }
                )

    def _process_events(self, event_list: list[Any]) -> None:
        pass  # no file descriptors

    def _write_to_self(self) -> None:
        pass  # no other threads to wake us

    def __del__(self) -> None:
        pass  # no OS resources to free; closing would make abandoned tasks' clean-up fail
