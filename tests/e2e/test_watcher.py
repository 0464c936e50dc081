"""The safety watch can fail: two copies started behind the (stopped) supervisors' backs are
reported as two copies at once, and a copy running without the VM lease as such."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.e2e.world import World

pytestmark = [pytest.mark.slow, pytest.mark.root]


def test_the_watch_reports_two_copies_and_copies_without_the_lease(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    first, second, _ = world.hosts  # no supervisor runs: nobody stops what we start
    watch = world.watch
    vms = watch.vms

    started = time.monotonic()
    first.launch_vm()
    assert vms.wait_for_start(started, 30) is not None
    reads = len(watch.leases.reads)
    deadline = time.monotonic() + 30
    while len(watch.leases.reads) < reads + 3:  # the lease read while the copy runs
        assert time.monotonic() < deadline, "no lease owner reads"
        time.sleep(0.05)
    assert vms.violations == []  # one copy is no overlap ...

    second.launch_vm()
    assert vms.wait_for_stable(2, 0.5, 30)
    watch.stop()
    problems = watch.problems()
    assert [v.hosts for v in vms.violations] == [(first.name, second.name)]
    assert any("two copies" in p for p in problems), problems
    # ... but it holds no lease, and sanlock says so.
    assert any(p.startswith(f"{first.name} ran the VM") and "owners as []" in p for p in problems), problems
    with pytest.raises(AssertionError, match="two copies"):
        world.finish()
