"""State machine bench: simulated failover times next to the original's, and step cost.

    .venv/bin/python bench/bench_fsm.py [--schedules 500]      # about 15 s; pure computation

1. Failover per scenario, in virtual seconds from the fault to a healthy engine again,
   measured by the simulator running the real FSM (tests/sim/scenarios/*), next to what
   the original's constants give (spec ovirt-ha-behaviour.md §3.7, §3.11; sanlock
   peer-ha-systems.md §4.2) for the same VM start and boot times.
2. The failover bound of he_ha.sim.bound and the worst recovery over random schedules.
3. ``step`` cost: median and p90 microseconds per call over steps recorded in simulations
   (2-5 hosts), repeated; and the random-schedule throughput.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from he_ha.fsm import TimingConfig, step  # noqa: E402
from he_ha.sim import SimParams, World, load_scenario, original  # noqa: E402
from he_ha.sim.bound import failover_bound  # noqa: E402
from he_ha.sim.randomized import run_many  # noqa: E402
from he_ha.sim.world import engine_outages  # noqa: E402

SCENARIOS = ROOT / "tests" / "sim" / "scenarios"
T = TimingConfig()
SIM = SimParams()
BOOT = SIM.vm_start_time + SIM.vm_boot_time  # the same VM start + boot budget for both
PAXOS_HELD_MAX = original.paxos_acquire_held_max(SIM.io_timeout)
# The holder's last renewal may precede the fault by up to one renewal interval.
LEASE_FREE_MIN = SIM.host_dead_time - SIM.renewal_interval
SHUTDOWN = SIM.vm_shutdown_time

# scenario directory, fault time, what happened, the original's expected range (s) and why
CASES = [
    (
        "host-crash",
        300.0,
        "engine host loses power",
        original.host_crash(SIM.io_timeout, BOOT),
        "lease frees after host_dead 140 s (paxos max 210); failed starts retried every loop meanwhile",
    ),
    (
        "host-crash-without-sanlock-status",
        300.0,
        "same, FSM without sanlock status",
        original.host_crash(SIM.io_timeout, BOOT),
        "as above",
    ),
    (
        "vm-crash",
        300.0,
        "engine VM crashes",
        original.vm_crash(BOOT),
        "crashed host scores 0; best peer starts at its next read + loop",
    ),
    (
        "engine-bad-health",
        300.0,
        "engine hangs (guest ignores shutdown)",
        (
            T.bad_health_timeout + T.stop_timeout + BOOT,
            T.bad_health_timeout + T.stop_timeout + 4 * T.loop_delay + BOOT,
        ),
        "300 s bad health + 300 s stop, each timer armed one loop late, + restart",
    ),
    (
        "gateway-loss",
        400.0,
        "engine host loses its gateway",
        (SHUTDOWN + BOOT, 27 + T.loop_delay + SHUTDOWN + 2 * T.loop_delay + BOOT),
        "yield at once (network round <= 27 s), graceful stop, best peer starts; ours adds a 60 s dwell",
    ),
    (
        "storage-stall",
        400.0,
        "engine host's storage stalls 200 s",
        (LEASE_FREE_MIN + BOOT, PAXOS_HELD_MAX + T.loop_delay + BOOT),
        "sanlock kills the VM at 80 s; peers acquire after 140 s",
    ),
    (
        "local-maintenance-migration",
        300.0,
        "local maintenance on the engine host",
        (0.0, 0.0),
        "original: no action, waits for the engine to migrate it; ours migrates live",
    ),
    (
        "supervisor-restart",
        300.0,
        "supervisor restarts on the engine host",
        (0.0, 0.0),
        "VM untouched in both",
    ),
    (
        "cold-start",
        0.0,
        "whole cluster powers on",
        (
            SIM.lockspace_join_time + T.liveness + BOOT,
            SIM.lockspace_join_time + T.liveness + T.loop_delay + BOOT,
        ),
        "original may start at exactly 60 s of history (B31)",
    ),
]


def failover(name: str, fault_at: float) -> float:
    result = World(load_scenario(SCENARIOS / name / "events.yaml")).run()
    for start, end in engine_outages(result.engine_ok, 10_000):
        if end is not None and end > fault_at and (start >= fault_at or fault_at == 0.0):
            return end - fault_at
    return 0.0  # no outage after the fault


def step_cost() -> tuple[float, float, int]:
    pairs = []
    for name in ("host-crash", "local-maintenance-migration", "cold-start", "gateway-loss"):
        recorded = World(load_scenario(SCENARIOS / name / "events.yaml"), record_steps=True).run().recorded
        pairs += [(state, observation) for state, observation, _ in recorded]
    per_call = []
    for _ in range(15):
        start = time.perf_counter()
        for state, observation in pairs:
            step(state, observation)
        per_call.append((time.perf_counter() - start) / len(pairs) * 1e6)
    per_call.sort()
    return statistics.median(per_call), per_call[int(len(per_call) * 0.9)], len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=500, help="random fault schedules to run (default 500)")
    args = parser.parse_args()
    print("Failover in virtual seconds, fault -> healthy engine (VM start 2 s + boot 60 s included)")
    print(f"{'scenario':<36} {'he-ha':>8} {'original':>13}  notes")
    for name, fault_at, what, (low, high), why in CASES:
        ours = failover(name, fault_at)
        original = f"{low:.0f}" if low == high else f"{low:.0f}-{high:.0f}"
        print(f"{name:<36} {ours:>8.1f} {original:>13}  {what}; {why}")

    bound = failover_bound(T, SIM, read_period=10.0)
    print("\nFailover bound after the last fault (defaults, read period 10 s):")
    for term, value in bound.terms.items():
        print(f"  {term:<55} {value:6.0f} s")
    print(
        f"  ready = max + loop + lease back-off = {bound.ready:.0f} s; total = ready + loop + start + boot = {bound.total:.0f} s"
    )

    start, cpu_start = time.perf_counter(), time.process_time()
    summary = run_many(range(args.schedules), T, SIM, workers=1)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(
        f"\nRandom schedules: {summary.schedules} in {elapsed:.1f} s ({summary.schedules / elapsed:.0f}/s, "
        f"{summary.steps} steps), failures {len(summary.failures)}, worst recovery "
        f"{summary.worst_recovery:.1f} s (seed {summary.worst_seed}) of bound {summary.bound:.0f} s"
    )
    # CPU, not wall: the test suite runs 11,000 of these beside everything else
    print(
        f"  CPU {cpu:.2f} s: {cpu / summary.schedules * 1e3:.1f} ms per schedule, "
        f"{cpu / summary.steps * 1e6:.0f} us per simulated step (the daemon's whole tick)"
    )

    median, p90, count = step_cost()
    print(f"\nstep(): median {median:.1f} us, p90 {p90:.1f} us per call ({count} recorded steps x 15 passes)")


if __name__ == "__main__":
    main()
