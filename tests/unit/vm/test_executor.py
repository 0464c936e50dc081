"""The bounded libvirt executor: deadlines, stuck calls, fail-fast, no thread pile-up.

The hang here is SIMULATED: a function blocked on a threading.Event stands for a libvirt
call stuck in a hung libvirtd (tests/integration/vm/test_libvirtd.py does it for real by
SIGSTOPping a libvirtd).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Iterator

import pytest

from he_ha.vm import HypervisorBusy, HypervisorTimeout
from he_ha.vm.executor import LibvirtExecutor
from tests.integration.vm.helpers import LoopLagProbe


class SimulatedHang:
    """A blocking call that returns only when released (stands in for a stuck libvirt call)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self) -> str:
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise AssertionError("simulated hang was never released")
        return "late answer"


_pool_numbers = itertools.count()


@pytest.fixture
def executor() -> Iterator[LibvirtExecutor]:
    pool = LibvirtExecutor(max_threads=2, name=f"test-libvirt-{next(_pool_numbers)}")
    yield pool
    pool.shutdown()


def _pool_threads(executor: LibvirtExecutor) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(f"{executor.name}_"))


async def test_result_and_exceptions_pass_through(executor: LibvirtExecutor) -> None:
    assert await executor.run("add", lambda: 1 + 1, deadline=2.0) == 2

    def fails() -> None:
        raise KeyError("from the thread")

    with pytest.raises(KeyError, match="from the thread"):
        await executor.run("fails", fails, deadline=2.0)
    assert executor.in_flight() == 0


async def test_hang_times_out_while_the_loop_keeps_ticking(executor: LibvirtExecutor) -> None:
    hang = SimulatedHang()
    try:
        async with LoopLagProbe() as probe:
            with pytest.raises(HypervisorTimeout, match=re.escape("'lookup' did not return within 0.3 s")) as caught:
                await executor.run("lookup", hang, deadline=0.3)
        assert caught.value.operation == "lookup" and caught.value.deadline == 0.3
        assert probe.ticks >= 5  # the probe really ran during the hang
        assert probe.max_lag < 0.05
        [stuck] = executor.stuck_calls()
        assert stuck.operation == "lookup" and stuck.age >= 0.3
    finally:
        hang.release.set()


async def test_calls_fail_fast_while_a_call_is_stuck_and_recover_after(executor: LibvirtExecutor) -> None:
    hang = SimulatedHang()
    try:
        with pytest.raises(HypervisorTimeout):
            await executor.run("state", hang, deadline=0.2)

        with pytest.raises(HypervisorBusy, match="earlier call 'state' stuck in libvirt") as caught:
            await executor.run("destroy", lambda: "never run", deadline=5.0)
        assert caught.value.operation == "destroy"
        # An explicit escape hatch exists (aborting a timed-out migration needs it).
        assert await executor.run("abortJob", lambda: "aborted", deadline=2.0, allow_while_stuck=True) == "aborted"
    finally:
        hang.release.set()

    for _ in range(200):  # the stuck thread returns; its bookkeeping goes with it
        if not executor.stuck_calls():
            break
        await asyncio.sleep(0.01)
    assert executor.stuck_calls() == []
    assert await executor.run("state", lambda: "fresh", deadline=2.0) == "fresh"


async def test_threads_never_exceed_the_bound(executor: LibvirtExecutor) -> None:
    hangs = [SimulatedHang(), SimulatedHang()]
    try:
        running = [asyncio.create_task(executor.run(f"slow-{i}", h, deadline=30.0)) for i, h in enumerate(hangs)]
        for hang in hangs:
            assert await asyncio.to_thread(hang.entered.wait, 5.0)

        # Two long calls (not timed out, e.g. a migration) fill both threads.
        with pytest.raises(HypervisorBusy, match="all 2 libvirt threads are busy"):
            await executor.run("state", lambda: "x", deadline=1.0)
        assert _pool_threads(executor) == 2
    finally:
        for hang in hangs:
            hang.release.set()
    assert await asyncio.gather(*running) == ["late answer", "late answer"]


async def test_cancelled_caller_leaves_no_stuck_record(executor: LibvirtExecutor) -> None:
    hang = SimulatedHang()
    task = asyncio.create_task(executor.run("state", hang, deadline=30.0))
    assert await asyncio.to_thread(hang.entered.wait, 5.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert executor.stuck_calls() == []  # cancelled, not timed out
    hang.release.set()
    for _ in range(200):
        if executor.in_flight() == 0:
            break
        await asyncio.sleep(0.01)
    assert executor.in_flight() == 0


async def test_closed_executor_refuses_calls() -> None:
    pool = LibvirtExecutor(max_threads=1)
    pool.shutdown()
    with pytest.raises(HypervisorBusy, match="executor closed"):
        await pool.run("state", lambda: 1, deadline=1.0)


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        LibvirtExecutor(max_threads=0)
