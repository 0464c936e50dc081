"""Tick after an event only once the engine-health reading reflects it.

A VM lifecycle event or an action's result wakes the ticker, but the state machine must see
the VM as it is after that event (docs/fsm.md: engine health is read after the action whose
result is reported). So the event pokes the engine-health monitor and waits here for a
reading whose probe *started* after the event; then the ticker is woken with the event as
its cause. If no such reading arrives within ``fallback`` seconds (a health page hanging
for its 20 s timeout), the ticker is woken anyway: the tick then decides on older data and
the action result stays held back (observe.py) until a fresh reading exists.
"""

from __future__ import annotations

import asyncio

from he_ha.supervisor.env import MonitorReadings
from he_ha.supervisor.ticker import Ticker, Wake

MONITOR = "engine-health"


class FreshHealthGate:
    def __init__(self, snapshot: MonitorReadings, ticker: Ticker, *, fallback: float = 2.0) -> None:
        self._snapshot = snapshot
        self._ticker = ticker
        self._fallback = fallback
        self._pending: list[Wake] = []

    def request(self, cause: str, detail: str, at: float) -> None:
        """Wake the ticker once a reading started at or after ``at`` (monotonic) exists."""
        wake = Wake(cause, detail, at)
        if self._fresh_since(at):
            self._ticker.wake(cause, detail, at)
            return
        self._pending.append(wake)
        asyncio.get_running_loop().call_later(self._fallback, self._give_up, wake)

    async def run(self) -> None:
        version = self._snapshot.version
        while True:
            version = await self._snapshot.wait_for_update(version)
            ready = [w for w in self._pending if self._fresh_since(w.at)]
            for wake in ready:
                self._pending.remove(wake)
                self._ticker.wake(wake.cause, wake.detail, wake.at)

    def _fresh_since(self, at: float) -> bool:
        reading = self._snapshot.get(MONITOR)
        return reading is not None and reading.taken_at - reading.duration >= at

    def _give_up(self, wake: Wake) -> None:
        if wake in self._pending:
            self._pending.remove(wake)
            self._ticker.wake(wake.cause, f"{wake.detail} (no fresh engine-health reading yet)", wake.at)
