"""Blocking calls off the loop: deadlines, busy rejection, errors, real subprocesses."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator

import pytest

from he_ha.monitors.commands import DeadlineExceeded, OffLoop, WorkerBusy, run_command
from he_ha.monitors.framework import MonitorError


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


async def test_result_and_exception_come_back() -> None:
    worker = OffLoop("w")
    assert await worker.call(lambda: threading.current_thread().name, 1.0) == "offloop-w"
    with pytest.raises(ZeroDivisionError):
        await worker.call(lambda: 1 // 0, 1.0)
    worker.close()


async def test_deadline_then_busy_until_the_stuck_call_returns(gate: threading.Event) -> None:
    worker = OffLoop("w")
    with pytest.raises(DeadlineExceeded, match=re.escape("w: no answer within 0.1 s")):
        await worker.call(gate.wait, 0.1)
    assert worker.busy
    with pytest.raises(WorkerBusy, match="an earlier call is still running"):
        await worker.call(lambda: 1, 1.0)
    gate.set()
    for _ in range(100):
        if not worker.busy:
            break
        await asyncio.sleep(0.01)
    assert await worker.call(lambda: 2, 1.0) == 2
    worker.close()


async def test_command_output_and_exit_code() -> None:
    result = await run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], 5.0)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


async def test_command_past_its_deadline_is_killed() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceeded, match=re.escape("sleep did not finish within 0.2 s")):
        await run_command(["sleep", "30"], 0.2)
    assert loop.time() - started < 5.0


async def test_missing_command_is_a_monitor_error() -> None:
    with pytest.raises(MonitorError, match="cannot run /nonexistent/probe"):
        await run_command(["/nonexistent/probe"], 1.0)


async def test_concurrent_callers_take_turns() -> None:
    """Two monitors sharing one worker (as cpu and engine-health share libvirt)."""
    worker = OffLoop("shared")
    order: list[str] = []

    def job(name: str) -> str:
        order.append(f"{name}-start")
        threading.Event().wait(0.05)
        order.append(f"{name}-end")
        return name

    results = await asyncio.gather(worker.call(lambda: job("a"), 2.0), worker.call(lambda: job("b"), 2.0))
    assert results == ["a", "b"]
    assert order == ["a-start", "a-end", "b-start", "b-end"]
    worker.close()


async def test_a_caller_waiting_behind_a_stuck_call_is_refused(gate: threading.Event) -> None:
    worker = OffLoop("w")
    first = asyncio.create_task(worker.call(gate.wait, 0.1))
    await asyncio.sleep(0)  # let the first call take its turn
    with pytest.raises(WorkerBusy, match="past its deadline"):
        await worker.call(lambda: 1, 5.0)
    with pytest.raises(DeadlineExceeded):
        await first
    gate.set()
    worker.close()


async def test_a_cancelled_caller_leaves_the_worker_refusing(gate: threading.Event) -> None:
    """The monitor runner cancels a probe at its deadline: the job still runs, so the
    next call must be refused, not queued behind it."""
    worker = OffLoop("w")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(worker.call(gate.wait, 30.0), 0.1)
    with pytest.raises(WorkerBusy):
        await worker.call(lambda: 1, 1.0)
    gate.set()
    worker.close()
