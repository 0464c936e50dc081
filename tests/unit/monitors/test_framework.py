"""The monitor runner and snapshot: error readings, deadlines, isolation, pokes."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from he_ha.monitors.framework import (
    LOG_EVERY,
    Monitor,
    MonitorError,
    MonitorRunner,
    Reading,
    ReadingsSnapshot,
    require_positive,
)


class Scripted(Monitor[int]):
    """Each probe takes the next action from a script: an int, an exception, or "hang"."""

    def __init__(self, name: str, script: list[object], *, interval: float = 0.01, deadline: float = 0.2) -> None:
        super().__init__(interval=interval, deadline=deadline)
        self.name = name
        self.script = list(script)
        self.calls = 0

    async def probe(self) -> int:
        self.calls += 1
        step = self.script.pop(0) if self.script else 0
        if isinstance(step, BaseException):
            raise step
        if step == "hang":
            await asyncio.sleep(3600)
        assert isinstance(step, int)
        return step


async def collect(runner: MonitorRunner, name: str, count: int) -> list[Reading[int]]:
    readings: list[Reading[int]] = []
    version = 0
    while len(readings) < count:
        version = await asyncio.wait_for(runner.snapshot.wait_for_update(version), 5)
        reading = runner.snapshot.get(name)
        if reading is not None and (not readings or reading is not readings[-1]):
            readings.append(reading)
    return readings


async def test_unexpected_exception_is_an_error_reading_not_a_healthy_value() -> None:
    monitor = Scripted("m", [1, RuntimeError("boom"), 2])
    with structlog.testing.capture_logs() as logs:
        async with MonitorRunner([monitor]) as runner:
            readings = await collect(runner, "m", 3)
    assert {
        "event": "monitor probe raised",
        "monitor": "m",
        "log_level": "error",
        "exc_info": True,
        "in_a_row": 1,
    } in logs
    assert {"event": "monitor probe recovered", "monitor": "m", "log_level": "info", "after_errors": 1} in logs
    assert [r.value for r in readings] == [1, None, 2]
    assert readings[1].error == "unexpected RuntimeError: boom" and not readings[1].ok
    assert [r.consecutive_errors for r in readings] == [0, 1, 0]


async def test_expected_failure_and_timeout_count_consecutively() -> None:
    monitor = Scripted("m", [MonitorError("gateway unreachable"), "hang", 5], deadline=0.1)
    async with MonitorRunner([monitor]) as runner:
        readings = await collect(runner, "m", 3)
    assert [r.error for r in readings] == ["gateway unreachable", "probe timed out after 0.1 s", None]
    assert [r.consecutive_errors for r in readings] == [1, 2, 0]
    assert readings[1].duration >= 0.1
    assert readings[2].value == 5


async def test_a_long_outage_is_logged_once_per_log_every_failures() -> None:
    monitor = Scripted("m", [MonitorError("down")] * (LOG_EVERY + 1))
    with structlog.testing.capture_logs() as logs:
        async with MonitorRunner([monitor]) as runner:
            await collect(runner, "m", LOG_EVERY + 1)
    assert [entry["in_a_row"] for entry in logs if entry["event"] == "monitor probe failed"] == [1, LOG_EVERY + 1]


async def test_a_hanging_monitor_does_not_stop_the_others() -> None:
    hanging = Scripted("hanging", ["hang"] * 100, deadline=30.0)
    busy = Scripted("busy", [])
    async with MonitorRunner([hanging, busy]) as runner:
        await collect(runner, "busy", 10)
        assert runner.snapshot.get("hanging") is None  # its first probe is still waiting
    assert busy.calls >= 10 and hanging.calls == 1


async def test_poke_cuts_the_interval_short() -> None:
    monitor = Scripted("m", [1, 2], interval=3600.0)
    async with MonitorRunner([monitor]) as runner:
        first = await collect(runner, "m", 1)
        runner.poke("m")
        version = runner.snapshot.version
        await asyncio.wait_for(runner.snapshot.wait_for_update(version), 5)
        assert runner.snapshot.get("m").value == 2  # type: ignore[union-attr]
    assert first[0].value == 1


async def test_readings_are_stamped_with_monotonic_time() -> None:
    loop = asyncio.get_running_loop()
    async with MonitorRunner([Scripted("m", [7])]) as runner:
        (reading,) = await collect(runner, "m", 1)
    assert 0 <= reading.age() < 5
    assert abs(reading.taken_at - loop.time()) < 5


def test_runner_rejects_duplicate_names_and_unknown_pokes() -> None:
    with pytest.raises(ValueError, match="two monitors named 'm'"):
        MonitorRunner([Scripted("m", []), Scripted("m", [])])
    runner = MonitorRunner([Scripted("m", [])])
    with pytest.raises(KeyError, match="no monitor named 'x'"):
        runner.poke("x")


async def test_stop_closes_every_monitor() -> None:
    closed: list[str] = []

    class Closing(Scripted):
        async def aclose(self) -> None:
            closed.append(self.name)

    runner = MonitorRunner([Closing("a", []), Closing("b", [])])
    runner.start()
    with pytest.raises(RuntimeError, match="already started"):
        runner.start()
    await runner.stop()
    assert closed == ["a", "b"]


async def test_snapshot_copy_and_versions() -> None:
    snapshot = ReadingsSnapshot()
    assert snapshot.version == 0 and snapshot.get("m") is None
    snapshot.publish(Reading("m", 1, taken_at=0.0, duration=0.0))
    view = snapshot.readings()
    snapshot.publish(Reading("m", 2, taken_at=1.0, duration=0.0))
    assert view["m"].value == 1 and snapshot.get("m").value == 2  # type: ignore[union-attr]
    assert await snapshot.wait_for_update(1) == 2


def test_settings_must_be_positive() -> None:
    with pytest.raises(ValueError, match="Scripted: interval must be > 0, got 0"):
        Scripted("m", [], interval=0)
    with pytest.raises(ValueError, match="X: deadline must be > 0"):
        require_positive("X", deadline=-1.0)


def test_snapshot_counts_readings_and_errors() -> None:
    snapshot = ReadingsSnapshot()
    snapshot.publish(Reading("a", 1, taken_at=0.0, duration=0.0))
    snapshot.publish(Reading("a", None, taken_at=1.0, duration=0.0, error="down", consecutive_errors=1))
    snapshot.publish(Reading("b", 2, taken_at=1.0, duration=0.0))
    assert snapshot.published == {"a": 2, "b": 1}
    assert snapshot.failed == {"a": 1}
