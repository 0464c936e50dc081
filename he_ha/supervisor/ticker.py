"""When to tick: on the period, on the FSM's ``tick_after``, and at once when woken.

Wake-ups (a VM lifecycle event, an action result, an admin request, a changed peer slot,
a lost lease holder) are coalesced: however many arrive before or during a tick, they cause
one more tick, which receives all of them as its causes. The stop event is checked before
every tick, and the tick itself checks it again right before the FSM step (defect B18).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from he_ha.supervisor.env import SYSTEM_CLOCK, Clock


@dataclass(frozen=True)
class Wake:
    cause: str  # periodic | tick-after | vm-event | action-result | admin | peer-change | lease-lost | ...
    detail: str
    at: float  # monotonic time of the triggering event

    def to_json(self) -> dict[str, object]:
        return {"cause": self.cause, "detail": self.detail, "at": self.at}


TickFn = Callable[[tuple[Wake, ...]], Awaitable[float]]


class Ticker:
    def __init__(self, tick: TickFn, *, period: float, clock: Clock = SYSTEM_CLOCK) -> None:
        if not period > 0:
            raise ValueError(f"tick period must be > 0, got {period!r}")
        self._tick = tick
        self._period = period
        self._clock = clock
        self._wakes: list[Wake] = []
        self._event = asyncio.Event()
        self.ticks = 0

    @property
    def pending(self) -> tuple[Wake, ...]:
        """Wake-ups that the next tick will receive."""
        return tuple(self._wakes)

    def wake(self, cause: str, detail: str = "", at: float | None = None) -> None:
        """Tick as soon as possible (never waits; call on the loop's thread)."""
        self._wakes.append(Wake(cause, detail, self._clock.monotonic() if at is None else at))
        self._event.set()

    async def run(self, stopping: asyncio.Event) -> None:
        due = self._clock.monotonic()  # the first tick at once
        due_cause = "start"
        stop_wait = asyncio.ensure_future(stopping.wait())
        try:
            while not stopping.is_set():
                timeout = max(0.0, due - self._clock.monotonic())
                woken = asyncio.ensure_future(self._event.wait())
                await asyncio.wait({woken, stop_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if stopping.is_set():
                    return
                self._event.clear()
                causes = tuple(self._wakes) or (Wake(due_cause, "", due),)
                self._wakes.clear()
                self.ticks += 1
                tick_after = await self._tick(causes)
                due = self._clock.monotonic() + min(tick_after, self._period)
                due_cause = "tick-after" if tick_after < self._period else "periodic"
        finally:
            stop_wait.cancel()
