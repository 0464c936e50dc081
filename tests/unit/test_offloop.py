"""The shared lane for blocking calls, with real threads.

A hang is SIMULATED by a function blocked on a threading.Event; the areas' own tests hang
for real (a stalled FUSE file for the whiteboard, a SIGSTOPped libvirtd for the VM layer).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from he_ha.offloop import CallTimeout, Lane, LaneFull, LaneStuck

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


class Hang:
    """A blocking call that returns only when released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self) -> str:
        self.thread = threading.current_thread()
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise AssertionError("simulated hang was never released")
        return "late answer"


@pytest.fixture
def hangs() -> Iterator[list[Hang]]:
    """Hangs made by a test; all released at its end, even on failure."""
    made: list[Hang] = []
    yield made
    for hang in made:
        hang.release.set()


def new_hang(hangs: list[Hang]) -> Hang:
    hang = Hang()
    hangs.append(hang)
    return hang


async def hanging(
    lane: Lane, hangs: list[Hang], operation: str, timeout: float = 30.0, *, allow_while_stuck: bool = False
) -> tuple[Hang, asyncio.Task[str]]:
    """Start a call that hangs in ``lane`` and wait until a lane thread is inside it."""
    hang = new_hang(hangs)
    task = asyncio.create_task(lane.run(operation, hang, timeout, allow_while_stuck=allow_while_stuck))
    assert await asyncio.to_thread(hang.entered.wait, 5.0), f"{operation} never reached a lane thread"
    return hang, task


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition()`` until true; fail naming ``what`` after 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for: {what}"
        await asyncio.sleep(0.01)


async def test_result_and_exception_come_back_from_a_daemon_thread() -> None:
    lane = Lane("lane-basic")
    thread = await lane.run("where", threading.current_thread, 2.0)
    assert thread.name == "lane-basic" and thread.daemon and thread is not threading.current_thread()

    def fails() -> None:
        raise KeyError("from the thread")

    with pytest.raises(KeyError, match="from the thread"):
        await lane.run("fails", fails, 2.0)
    assert lane.in_flight() == 0 and lane.busy_for() is None and lane.stuck() == []
    assert await lane.run("again", threading.current_thread, 2.0) is thread  # the same thread, reused
    lane.close()


async def test_the_calls_own_timeout_error_is_not_a_deadline() -> None:
    lane = Lane("lane-own-timeout")

    def times_out() -> None:
        raise TimeoutError("socket timed out")

    with pytest.raises(TimeoutError, match="socket timed out") as caught:
        await lane.run("connect", times_out, 5.0)
    assert not isinstance(caught.value, CallTimeout)
    assert lane.stuck() == []
    lane.close()


async def test_deadline_then_stuck_refusal_then_recovery(hangs: list[Hang]) -> None:
    lane = Lane("lane-stuck")
    hang = new_hang(hangs)
    started = time.monotonic()
    with pytest.raises(CallTimeout, match=re.escape("lane-stuck: read: no answer within 0.2 s")) as timeout:
        await lane.run("read", hang, 0.2)
    assert (timeout.value.lane, timeout.value.operation, timeout.value.timeout) == ("lane-stuck", "read", 0.2)
    assert time.monotonic() - started < 5.0  # the loop was not held until the call returned
    assert hang.entered.is_set() and not hang.release.is_set()

    [stuck] = lane.stuck()
    assert stuck.operation == "read" and stuck.age >= 0.2 and 0 <= stuck.overdue <= stuck.age
    busy = lane.busy_for()
    assert busy is not None and busy >= 0.2
    assert lane.in_flight() == 1

    ran = threading.Event()
    with pytest.raises(LaneStuck, match="refused: earlier call 'read' stuck for") as refused:
        await lane.run("write", ran.set, 5.0)
    assert refused.value.operation == "write" and refused.value.oldest.operation == "read"
    assert not ran.is_set()
    assert len(threads_named("lane-stuck")) == 1  # no second thread for the refused call

    hang.release.set()
    await until(lambda: lane.busy_for() is None, "the stuck call returns")
    assert lane.stuck() == [] and lane.in_flight() == 0
    assert await lane.run("write", threading.current_thread, 2.0) is hang.thread  # the same thread again
    lane.close()


async def test_allow_while_stuck_passes_the_refusal_but_not_the_thread_bound(hangs: list[Hang]) -> None:
    lane = Lane("lane-escape", threads=2, wait_for_turn=False)
    hang = new_hang(hangs)
    with pytest.raises(CallTimeout):
        await lane.run("migrate", hang, 0.2)
    with pytest.raises(LaneStuck):
        await lane.run("state", lambda: "no", 2.0)
    assert await lane.run("abort", lambda: "aborted", 2.0, allow_while_stuck=True) == "aborted"

    second, running = await hanging(lane, hangs, "long", allow_while_stuck=True)
    with pytest.raises(LaneFull, match="all 2 threads are busy") as full:
        await lane.run("abort", lambda: "no", 2.0, allow_while_stuck=True)
    assert full.value.threads == 2
    assert len(threads_named("lane-escape_")) == 2
    second.release.set()
    assert await running == "late answer"
    lane.close()


async def test_concurrent_callers_take_turns_in_arrival_order() -> None:
    lane = Lane("lane-turns")
    active, most_active, served = 0, 0, []
    lock = threading.Lock()

    def job(name: str) -> str:
        nonlocal active, most_active
        with lock:
            active += 1
            most_active = max(most_active, active)
        threading.Event().wait(0.03)  # long enough for the others to be queued by now
        with lock:
            active -= 1
            served.append(name)
        return name.upper()

    callers = [lane.run(name, partial(job, name), 5.0) for name in ("a", "b", "c", "d")]
    assert await asyncio.gather(*callers) == ["A", "B", "C", "D"]
    assert (most_active, served) == (1, ["a", "b", "c", "d"])
    assert len(threads_named("lane-turns")) == 1
    lane.close()


async def test_turns_are_bounded_by_the_thread_count(hangs: list[Hang]) -> None:
    lane = Lane("lane-two-turns", threads=2)
    (first, one), (second, two) = await hanging(lane, hangs, "slow-0"), await hanging(lane, hangs, "slow-1")
    calls = [one, two]
    third_ran = threading.Event()
    third = asyncio.create_task(lane.run("third", third_ran.set, 30.0))
    await asyncio.sleep(0.1)
    assert not third.done() and not third_ran.is_set()  # waiting for its turn
    assert lane.in_flight() == 2 and len(threads_named("lane-two-turns_")) == 2
    first.release.set()
    await third
    assert third_ran.is_set()
    second.release.set()
    assert await asyncio.gather(*calls) == ["late answer", "late answer"]
    assert len(threads_named("lane-two-turns_")) == 2  # the third call reused a thread
    lane.close()


async def test_the_deadline_covers_the_wait_for_a_turn(hangs: list[Hang]) -> None:
    lane = Lane("lane-turn-deadline")
    hang, holder = await hanging(lane, hangs, "long")
    ran = threading.Event()
    with pytest.raises(CallTimeout, match=re.escape("no answer within 0.2 s")):
        await lane.run("short", ran.set, 0.2)
    assert lane.stuck() == []  # it never got a turn: nothing of it is stuck
    hang.release.set()
    assert await holder == "late answer"
    await until(lambda: lane.busy_for() is None, "the long call returns")
    assert not ran.is_set()  # given up before its turn: never runs
    lane.close()


async def test_a_caller_waiting_behind_a_call_that_gets_stuck_is_refused_at_once(hangs: list[Hang]) -> None:
    lane = Lane("lane-waiter")
    hang, first = await hanging(lane, hangs, "first", 0.2)
    started = time.monotonic()
    with pytest.raises(LaneStuck, match="earlier call 'first' stuck"):
        await lane.run("second", lambda: 1, 20.0)
    assert time.monotonic() - started < 10.0  # refused when the first was given up, not at its own deadline
    with pytest.raises(CallTimeout):
        await first
    hang.release.set()
    await until(lambda: lane.busy_for() is None, "the stuck call returns")
    lane.close()


async def test_refusing_mode_fails_fast_at_the_thread_bound(hangs: list[Hang]) -> None:
    lane = Lane("lane-bound", threads=2, wait_for_turn=False)
    (first, one), (second, two) = await hanging(lane, hangs, "slow-0"), await hanging(lane, hangs, "slow-1")
    calls = [one, two]
    with pytest.raises(LaneFull, match="lane-bound: state: refused: all 2 threads are busy"):
        await lane.run("state", lambda: "x", 5.0)
    assert sorted(t.name for t in threads_named("lane-bound_")) == ["lane-bound_0", "lane-bound_1"]
    assert all(t.daemon for t in threads_named("lane-bound_"))
    first.release.set()
    second.release.set()
    assert await asyncio.gather(*calls) == ["late answer", "late answer"]
    assert await lane.run("state", lambda: "x", 5.0) == "x"
    assert len(threads_named("lane-bound_")) == 2
    lane.close()


async def test_a_cancelled_caller_leaves_its_call_stuck(hangs: list[Hang]) -> None:
    lane = Lane("lane-cancel")
    hang = new_hang(hangs)
    with pytest.raises(TimeoutError):  # the caller's own deadline, outside the lane
        await asyncio.wait_for(lane.run("probe", hang, 30.0), 0.2)
    [stuck] = lane.stuck()
    assert stuck.operation == "probe"
    with pytest.raises(LaneStuck):
        await lane.run("probe", lambda: 1, 1.0)
    hang.release.set()
    await until(lambda: not lane.stuck(), "the call returns")
    assert await lane.run("probe", lambda: 2, 2.0) == 2
    lane.close()


async def test_a_cancelled_caller_need_not_leave_its_call_stuck(hangs: list[Hang]) -> None:
    lane = Lane("lane-cancel-free", threads=2, wait_for_turn=False, cancel_leaves_stuck=False)
    hang, task = await hanging(lane, hangs, "state")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lane.stuck() == []  # cancelled, not timed out
    assert lane.in_flight() == 1  # but it still holds its thread
    assert await lane.run("other", lambda: "served", 2.0) == "served"
    hang.release.set()
    await until(lambda: lane.in_flight() == 0, "the cancelled call returns")


async def test_a_caller_cancelled_while_waiting_for_its_turn_never_runs(hangs: list[Hang]) -> None:
    lane = Lane("lane-cancel-waiting")
    hang, holder = await hanging(lane, hangs, "long")
    ran = threading.Event()
    waiter = asyncio.create_task(lane.run("waiting", ran.set, 30.0))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    hang.release.set()
    assert await holder == "late answer"
    assert lane.stuck() == [] and not ran.is_set()
    lane.close()


async def test_close_lets_idle_and_busy_threads_exit(hangs: list[Hang]) -> None:
    lane = Lane("lane-close", threads=2, wait_for_turn=False)
    hang, busy = await hanging(lane, hangs, "busy")
    assert await lane.run("quick", lambda: 1, 2.0) == 1  # a second, now idle thread
    assert len(threads_named("lane-close_")) == 2
    lane.close()
    await until(lambda: len(threads_named("lane-close_")) == 1, "the idle thread exits")
    hang.release.set()
    assert await busy == "late answer"
    await until(lambda: not threads_named("lane-close_"), "the busy thread exits after its call")
    # The lane stays usable: a later call gets a new thread.
    assert await lane.run("after", lambda: threading.current_thread().name, 2.0) == "lane-close_2"
    lane.close()


def test_a_call_stuck_forever_does_not_hold_up_process_exit() -> None:
    """A real interpreter whose lane call never returns still exits when main is done."""
    script = (
        "import asyncio, threading\n"
        "from he_ha.offloop import CallTimeout, Lane\n"
        "async def main():\n"
        "    lane = Lane('forever')\n"
        "    try:\n"
        "        await lane.run('read', threading.Event().wait, 0.1)\n"
        "    except CallTimeout:\n"
        "        print('stuck', len(lane.stuck()), flush=True)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert (done.returncode, done.stdout, done.stderr) == (0, "stuck 1\n", "")


async def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="lane x: threads must be >= 1, got 0"):
        Lane("x", threads=0)
    lane = Lane("lane-args")
    with pytest.raises(ValueError, match="lane lane-args: op: timeout must be > 0 seconds, got 0"):
        await lane.run("op", lambda: 1, 0)
    assert threads_named("lane-args") == []  # refused before any thread started
