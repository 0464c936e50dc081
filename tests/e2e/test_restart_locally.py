"""Restart locally first (issue 14 item 2) with real processes and the DEFAULT timings: the
engine VM of a single-host cluster dies behind the supervisor's back; no peer can take it, so
the host restarts it at once (vm-crashed.restart-here), lease first, in the tick the libvirt
event wakes (no periodic tick waited for). The time from the crash to the VM running again is
printed (docs/e2e.md quotes it; the issue's target is 5 s), not asserted: durations are
measured, never asserted (DESIGN.md). The safety watch runs throughout: never two copies,
never a VM without its lease."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from he_ha.devcluster.cluster import DEFAULT_TIMINGS, causes_of, rule_of, state_of
from tests.e2e.world import World

pytestmark = [pytest.mark.slow, pytest.mark.root]

# he-ha's default timings (devcluster.DEFAULT_TIMINGS); the lockspace's sanlock io_timeout stays
# the harness's: it is fixed when the storage is initialised, and a local restart does not wait
# for sanlock: the lease never leaves this host.
FIRST_START = 240.0  # the first start waits for a whiteboard view older than liveness (60 s)


def test_a_single_hosts_crashed_vm_runs_again_within_5_s(make_world: Callable[..., World]) -> None:
    world = make_world(1)
    (host,) = world.hosts
    started = time.monotonic()
    host.start_supervisor(*DEFAULT_TIMINGS)
    first = world.watch.vms.wait_for_start(started, FIRST_START)
    assert first is not None, f"no VM within {FIRST_START} s"
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp", timeout=FIRST_START)
    seen = len(host.decisions())

    crashed_at = time.monotonic()
    host.crash_vm()

    again = world.wait_for_new_run(crashed_at, timeout=60.0)
    running_after = again.first - crashed_at
    _, reacting = host.wait_for_decision(lambda e: rule_of(e) not in ("up.ok", "up.outranked"), after=seen)
    assert rule_of(reacting) == "vm-crashed.restart-here", reacting["record"]["note"]
    assert causes_of(reacting) == ["vm-event"]  # at once: the crash's own event, not the 10 s tick
    assert "AcquireLeaseAndStartVm" in [a["type"] for a in reacting["record"]["actions"]]
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=seen, timeout=120.0)
    healthy_after = time.monotonic() - crashed_at
    print(
        f"\nsingle-host VM crash, default timings: VM running again after {running_after:.2f} s, "
        f"EngineUp after {healthy_after:.1f} s (decision: {rule_of(reacting)})"
    )
    world.assert_supervisors_alive(world.hosts)
    world.finish()
