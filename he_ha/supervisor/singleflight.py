"""At most one outstanding call per key, awaited with a short deadline per caller.

A sanlock query stuck on dead storage keeps a lease-worker thread busy until storage
answers. If every tick started a new query after the previous one timed out, the worker's
threads would all end up stuck and even the VM lease's acquire would queue behind them. So a
tick that finds the previous query of the same kind still running waits for that one (up to
its own deadline) instead of starting another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    async def run(self, key: str, call: Callable[[], Coroutine[Any, Any, T]], wait: float) -> T:
        """The result of the running (or a new) ``call`` for ``key``; TimeoutError after
        ``wait`` seconds, leaving the call running for the next caller."""
        task = self._tasks.get(key)
        if task is None or task.done():
            # A coroutine: create_task directly, without ensure_future's type checks (4 queries a tick).
            task = asyncio.get_running_loop().create_task(call())
            self._tasks[key] = task
            if task.done():  # answered at once (the simulator's eager tasks): no deadline to wait on
                return task.result()  # (which retrieves a failure: no _retrieve needed)
            task.add_done_callback(_retrieve)
        result: T = await asyncio.wait_for(asyncio.shield(task), wait)
        return result

    def running(self) -> list[str]:
        return [key for key, task in self._tasks.items() if not task.done()]

    async def cancel(self) -> None:
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a failure seen: a caller that gave up waiting must not leave it 'never retrieved'."""
    if not task.cancelled():
        task.exception()
