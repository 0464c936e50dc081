"""he-ha's production timings with real processes (issue 16 item 6): the lockspace and the VM
lease at sanlock's io_timeout 10 and every supervisor at its defaults (10 s ticks and
monitors, 60 s liveness; devcluster.PRODUCTION puts them back over the harness's short ones).

- A host crash: the engine runs again on a survivor once sanlock's host-dead time (140 s) has
  freed the dead host's lease; the survivors' lease watch wakes them when sanlock reports it
  dead, instead of their next 10 s tick. The time to the VM running elsewhere and its ratio to
  the host-dead time are printed (target ≤ 1.02), never asserted (DESIGN.md).
- A whole-cluster power-off and power-on: every host's processes killed at once, then the
  hosts started again one by one in a random order (the seed is printed): exactly one engine.

The safety watch runs throughout both: never two copies, never a VM without its lease.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from he_ha.devcluster.cluster import PRODUCTION, PRODUCTION_IO_TIMEOUT, causes_of, rule_of, state_of
from he_ha.lease import host_dead_seconds
from tests.e2e.world import World

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.timeout(1200),
]  # minutes of sanlock waits at io_timeout 10

HOST_DEAD = host_dead_seconds(PRODUCTION_IO_TIMEOUT)  # 140 s
# The first start waits for a whiteboard history older than the 60 s liveness, and joining
# the lockspace at io_timeout 10 takes a few io timeouts: generous bounds, not measurements.
COLD_START = 360.0
SETTLE = 30.0  # one engine must stay one engine this long at the end


def test_host_crash_at_default_timings(make_world: Callable[..., World]) -> None:
    world = make_world(3, io_timeout=PRODUCTION_IO_TIMEOUT)
    victim = world.host(world.engine_on_first(*PRODUCTION, wait=COLD_START))
    survivors = [h for h in world.hosts if h is not victim]
    marks = {h.name: len(h.decisions()) for h in survivors}

    crashed_at = time.monotonic()
    victim.crash()
    again = world.wait_for_new_run(crashed_at, HOST_DEAD + COLD_START)
    running_after = again.first - crashed_at
    assert again.host != victim.name
    starter = next(h for h in survivors if h.name == again.host)
    _, started = starter.wait_for_decision(
        lambda e: rule_of(e) in ("down.start", "down.start.preferred"), after=marks[starter.name]
    )
    starter.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=marks[starter.name], timeout=COLD_START)
    healthy_after = time.monotonic() - crashed_at
    for host in survivors:  # the dead host's lease alone kept them waiting until sanlock freed it
        assert "down.lease-held" in [rule_of(e) for e in host.decisions()[marks[host.name] :]], host.name
    freed = {
        h.name: [
            round(float(e["meta"]["started"]) - crashed_at, 1)
            for e in h.decisions()[marks[h.name] :]
            if "lease-freed" in causes_of(e)
        ]
        for h in survivors
    }
    print(
        f"\nhost crash, default timings (io_timeout {PRODUCTION_IO_TIMEOUT}, host-dead {HOST_DEAD} s): VM running on "
        f"{again.host} after {running_after:.1f} s = {running_after / HOST_DEAD:.3f} x the host-dead time; "
        f"engine healthy after {healthy_after:.1f} s; the start's tick woken by {causes_of(started)}; "
        f"ticks woken by the lease watch (s after the crash): {freed}"
    )
    world.assert_supervisors_alive(survivors)
    world.finish()


def test_whole_cluster_power_off_and_on_gives_one_engine(make_world: Callable[..., World]) -> None:
    world = make_world(3, io_timeout=PRODUCTION_IO_TIMEOUT)
    world.engine_on_first(*PRODUCTION, wait=COLD_START)

    for host in world.hosts:  # power cut: every process of every host at once
        host.crash()
    off_at = time.monotonic()
    seed = random.randrange(1 << 32)
    order = world.hosts[:]
    random.Random(seed).shuffle(order)
    for host in order:  # power returns host by host, a few seconds apart
        host.reboot(*PRODUCTION)
        time.sleep(random.Random(seed + host.host_id).uniform(0.0, 10.0))

    run = world.wait_for_new_run(off_at, COLD_START + HOST_DEAD)
    assert world.watch.vms.wait_for_stable(1, SETTLE, COLD_START), (
        f"not exactly one engine for {SETTLE} s: running on {world.watch.vms.running_on()}"
    )
    assert len(world.runs_since(off_at)) == 1, world.runs_since(off_at)
    print(
        f"\nwhole-cluster power-off/on, default timings: power returned in the order "
        f"{[h.name for h in order]} (seed {seed}); the VM ran again on {run.host} "
        f"{run.first - off_at:.1f} s after the power cut"
    )
    world.assert_supervisors_alive(world.hosts)
    world.finish()
