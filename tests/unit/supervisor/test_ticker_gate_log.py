"""When ticks happen (period, tick_after, coalesced wake-ups, stop), the fresh-health gate,
and the decision log (ring and file)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from he_ha.monitors import Reading, ReadingsSnapshot
from he_ha.supervisor.decisions import DecisionLog
from he_ha.supervisor.health_gate import FreshHealthGate
from he_ha.supervisor.ticker import Ticker, Wake


class Recorder:
    def __init__(self, tick_after: float = 10.0, hold: asyncio.Event | None = None) -> None:
        self.calls: list[tuple[Wake, ...]] = []
        self.tick_after = tick_after
        self.hold = hold
        self.ticked = asyncio.Event()

    async def __call__(self, causes: tuple[Wake, ...]) -> float:
        self.calls.append(causes)
        self.ticked.set()
        if self.hold is not None:
            await self.hold.wait()
        return self.tick_after

    async def next(self) -> tuple[Wake, ...]:
        await asyncio.wait_for(self.ticked.wait(), 5)
        self.ticked.clear()
        return self.calls[-1]


async def test_first_tick_at_once_then_wakes_are_ticks_with_their_causes() -> None:
    recorder = Recorder()
    ticker = Ticker(recorder, period=60)
    stopping = asyncio.Event()
    task = asyncio.create_task(ticker.run(stopping))
    assert [w.cause for w in await recorder.next()] == ["start"]
    ticker.wake("vm-event", "destroyed", at=12.5)
    assert await recorder.next() == (Wake("vm-event", "destroyed", 12.5),)
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert ticker.ticks == 2


async def test_wakes_during_a_tick_coalesce_into_one_more_tick() -> None:
    hold = asyncio.Event()
    recorder = Recorder(hold=hold)
    ticker = Ticker(recorder, period=60)
    stopping = asyncio.Event()
    task = asyncio.create_task(ticker.run(stopping))
    await recorder.next()  # the first tick is running (held)
    for detail in ("a", "b", "c"):
        ticker.wake("peer-change", detail)
    hold.set()
    causes = await recorder.next()
    assert [w.detail for w in causes] == ["a", "b", "c"]
    await asyncio.sleep(0.05)
    assert len(recorder.calls) == 2  # three wakes, one tick
    stopping.set()
    await asyncio.wait_for(task, 5)


async def test_tick_after_schedules_the_next_tick_and_stop_ends_the_loop() -> None:
    recorder = Recorder(tick_after=0.0)  # NOWAIT: tick again at once
    ticker = Ticker(recorder, period=60)
    stopping = asyncio.Event()
    task = asyncio.create_task(ticker.run(stopping))
    await recorder.next()
    causes = await recorder.next()
    assert [w.cause for w in causes] == ["tick-after"]
    recorder.tick_after = 60.0
    stopping.set()
    await asyncio.wait_for(task, 5)  # does not wait out the 60 s period
    count = len(recorder.calls)
    ticker.wake("admin")
    await asyncio.sleep(0.05)
    assert len(recorder.calls) == count  # stopped: no tick after the stop flag


async def test_no_tick_starts_once_stop_is_set() -> None:
    recorder = Recorder()
    stopping = asyncio.Event()
    stopping.set()
    await Ticker(recorder, period=1).run(stopping)
    assert recorder.calls == []


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tick period must be > 0"):
        Ticker(Recorder(), period=0)


def health_reading(taken_at: float, duration: float = 0.01) -> Reading[object]:
    return Reading("engine-health", object(), taken_at, duration)


async def test_gate_wakes_only_once_a_reading_started_after_the_event() -> None:
    snapshot = ReadingsSnapshot()
    recorder = Recorder()
    ticker = Ticker(recorder, period=60)
    gate = FreshHealthGate(snapshot, ticker, fallback=30)
    runner = asyncio.create_task(gate.run())
    event_at = time.monotonic()
    gate.request("vm-event", "destroyed", event_at)
    snapshot.publish(health_reading(event_at + 0.005, duration=0.01))  # started before the event
    await asyncio.sleep(0.02)
    assert ticker.pending == ()
    snapshot.publish(health_reading(event_at + 0.05, duration=0.01))
    await asyncio.sleep(0.02)
    assert ticker.pending == (Wake("vm-event", "destroyed", event_at),)
    runner.cancel()


async def test_gate_falls_back_to_a_plain_wake() -> None:
    ticker = Ticker(Recorder(), period=60)
    gate = FreshHealthGate(ReadingsSnapshot(), ticker, fallback=0.05)
    gate.request("action-result", "#3 ok", time.monotonic())
    await asyncio.sleep(0.2)
    (wake,) = ticker.pending
    assert wake.cause == "action-result" and "no fresh engine-health reading" in wake.detail


def test_decision_ring_keeps_the_newest(tmp_path: Path) -> None:
    log = DecisionLog(None, ring=3)
    for n in range(5):
        log.add({"n": n})
    assert log.newest(2) == [{"n": 3}, {"n": 4}]
    assert log.newest(10) == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert log.newest(0) == []
    with pytest.raises(ValueError, match="at least 1"):
        DecisionLog(None, ring=0)


def test_decision_file_gets_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "decisions.jsonl"
    log = DecisionLog(path, ring=2)
    for n in range(5):
        log.add({"n": n, "text": "ä"})
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["n"] for line in lines] == [0, 1, 2, 3, 4]
