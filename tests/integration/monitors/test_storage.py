"""Storage monitor with real O_DIRECT reads of a file, a probe that hangs in its thread,
a slow probe and a failing one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from he_ha.monitors.commands import OffLoop, WorkerBusy
from he_ha.monitors.framework import MonitorError, MonitorRunner, Reading
from he_ha.monitors.storage import StorageMonitor, direct_read_probe


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    path = tmp_path / "hosted-engine.metadata"
    path.write_bytes(b"\0" * 8192)
    return path


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds a probe's thread until the test ends (always released)."""
    event = threading.Event()
    yield event
    event.set()


async def test_direct_read_is_valid(metadata_file: Path) -> None:
    status = await StorageMonitor(direct_read_probe(metadata_file, offset=4096)).probe()
    assert status.valid and 0 <= status.latency < 10.0


async def test_missing_volume_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match=r"storage I/O failed: .*No such file"):
        await StorageMonitor(direct_read_probe(tmp_path / "gone")).probe()


async def test_short_read_is_an_error(metadata_file: Path) -> None:
    with pytest.raises(MonitorError, match="short read, 0 of 4096 bytes at 8192"):
        await StorageMonitor(direct_read_probe(metadata_file, offset=8192)).probe()


async def test_slow_probe_is_not_valid() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.2)

    status = await StorageMonitor(slow, max_delay=0.05).probe()
    assert not status.valid and status.latency >= 0.2


async def test_hung_probe_gives_error_readings_and_no_thread_pile_up(gate: threading.Event) -> None:
    worker = OffLoop("hung-storage")
    calls = 0

    async def hung_read() -> None:
        nonlocal calls
        calls += 1
        await worker.call(gate.wait, 30.0)

    monitor = StorageMonitor(hung_read, interval=0.2, timeout=0.3)
    threads_before = threading.active_count()
    async with MonitorRunner([monitor]) as runner:
        version = 0
        readings: list[Reading[Any]] = []
        while len(readings) < 3:
            version = await asyncio.wait_for(runner.snapshot.wait_for_update(version), 10)
            reading = runner.snapshot.get("storage")
            assert reading is not None  # updated: the storage monitor has a reading
            readings.append(reading)
    first, *later = readings
    assert first.error == "probe timed out after 0.3 s" and first.value is None
    assert first.duration >= 0.3
    # Later rounds fail at once: the worker thread is still stuck in the first read.
    assert all(r.value is None and r.error is not None and "still running" in r.error for r in later)
    assert [r.consecutive_errors for r in readings] == [1, 2, 3]
    assert threading.active_count() <= threads_before + 1
    assert calls == 3
    with pytest.raises(WorkerBusy):
        await worker.call(lambda: "never runs", 1.0)
    gate.set()  # the stuck read returns: the worker takes calls again
    for _ in range(100):
        if not worker.busy:
            break
        await asyncio.sleep(0.05)
    assert await worker.call(lambda: "idle", 1.0) == "idle"
    worker.close()
