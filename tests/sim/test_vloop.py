"""The simulator's event loop: virtual time, same-time order, eager tasks, simulated processes."""

from __future__ import annotations

import asyncio
import time

from he_ha.sim.vloop import VirtualLoop


def _run(loop: VirtualLoop, coro: object, until: float) -> asyncio.Future[object]:
    task = loop.spawn("test", coro)  # type: ignore[arg-type]
    loop.run_until(until)
    return task


def test_an_hour_of_sleep_passes_in_no_time() -> None:
    loop = VirtualLoop()
    started = time.monotonic()
    task = _run(loop, asyncio.sleep(3600, result="woke"), 7200)
    assert task.result() == "woke"
    assert loop.time() == 7200 and time.monotonic() - started < 1


def test_a_deadline_fires_in_virtual_time() -> None:
    async def wait() -> float:
        try:
            await asyncio.wait_for(asyncio.Event().wait(), 5)
        except TimeoutError:
            return asyncio.get_running_loop().time()
        return -1.0

    loop = VirtualLoop()
    assert _run(loop, wait(), 100).result() == 5.0


def test_timers_due_together_run_in_scheduling_order() -> None:
    loop = VirtualLoop()
    seen: list[int] = []
    for i in range(20):
        loop.call_at(10.0 + 1e-9 * (i % 2), seen.append, i)  # float noise below the 1 us grid
    loop.run_until(10)
    assert seen == list(range(20))


def test_the_clock_stops_at_until_and_resumes_from_there() -> None:
    loop = VirtualLoop()
    seen: list[float] = []
    loop.call_at(30, lambda: seen.append(loop.time()))
    loop.run_until(20)
    assert seen == [] and loop.time() == 20
    loop.run_until(40)
    assert seen == [30] and loop.time() == 40


def test_a_task_that_never_waits_is_done_at_once() -> None:
    async def answer() -> int:
        return 42

    async def caller() -> bool:
        task = asyncio.ensure_future(answer())
        return task.done() and task.result() == 42

    loop = VirtualLoop()
    assert _run(loop, caller(), 0).result() is True


def test_killing_a_process_ends_every_task_it_started() -> None:
    loop = VirtualLoop()
    finished: list[str] = []

    async def child(name: str) -> None:
        await asyncio.sleep(100)
        finished.append(name)

    async def parent() -> None:
        started = asyncio.ensure_future(child("grandchild-owner"))
        await asyncio.sleep(100)
        assert not started.done()
        finished.append("parent")

    loop.spawn("victim", parent())
    loop.spawn("bystander", child("bystander"))
    loop.run_until(50)
    loop.kill("victim")
    loop.run_until(200)
    assert finished == ["bystander"]
