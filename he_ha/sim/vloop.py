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
import heapq
import math
from collections.abc import Callable
from contextvars import Context
from typing import Any

GRID = 6  # decimal places of due times: 1 µs


class _Timer(asyncio.TimerHandle):
    __slots__ = ("_seq",)

    _seq: int

    def __lt__(self, other: object) -> bool:
        assert isinstance(other, _Timer)
        return (self._when, self._seq) < (other._when, other._seq)


class _IdleSelector:
    """Stands in for the selector: "waiting" means moving the clock to the next timer."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout == 0:
            return []  # callbacks are ready: no time passes
        loop = self._loop
        due = loop._scheduled[0]._when if loop._scheduled else math.inf  # type: ignore[attr-defined]
        if due > loop.until:
            loop.now = max(loop.now, loop.until)
            loop.stop()
        else:
            loop.now = due
        return []

    def close(self) -> None:
        pass


class VirtualLoop(asyncio.BaseEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.until = 0.0
        self._seq = 0
        self._selector = _IdleSelector(self)

    def time(self) -> float:
        return self.now

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.TimerHandle:
        self._check_closed()  # type: ignore[attr-defined]
        timer = _Timer(round(when, GRID), callback, args, self, context)
        timer._seq = self._seq
        self._seq += 1
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def run_until(self, until: float) -> None:
        """Run every callback due at or before ``until``; the clock then reads ``until``."""
        self.until = until
        self.run_forever()

    def _process_events(self, event_list: list[Any]) -> None:
        pass  # no file descriptors

    def _write_to_self(self) -> None:
        pass  # no other threads to wake us

    def __del__(self) -> None:
        pass  # no OS resources to free; closing would make abandoned tasks' clean-up fail
