"""``he-ha failover-bound``: the worst-case failover time implied by the configured timeouts,
and a pre-flight check of the timing combination.

It takes the same timing flags as ``he-ha run`` (paste the unit's options), plus the VM's
own budget (start, boot, shutdown), and prints:

* host crash -> the VM lease is free / the VM runs elsewhere / the engine is healthy there;
* VM crash where no live peer can take it (a single host, every peer in maintenance or at
  score 0) -> its host restarts it at once (issue 14): the VM runs / the engine is healthy,
  the back-off of each further restart, and the wait once the retry limit is reached;
* the general bound after any fault ends (he_ha/sim/bound.py, checked against random
  schedules in tests/sim), term by term, and with host priorities that differ (issue 14: a
  host defers its start to a better-priority one for priority_start_delay at most);
* every unsafe or self-defeating combination found, with what it causes.

Exit codes: 0 no finding, 1 at least one finding, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

from he_ha.fsm import TimingConfig, TimingError
from he_ha.lease import WATCHDOG_FIRE_TIMEOUT, wait_deadline
from he_ha.sim.bound import failover_bound
from he_ha.sim.scenario import ScenarioError, SimParams
from he_ha.supervisor.cli import add_timing_arguments, non_negative_float, timing_from
from he_ha.supervisor.lease_watch import INTERVAL as LEASE_WATCH_INTERVAL

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Finding:
    severity: str  # "error": HA cannot work as configured; "warning": it works, badly
    message: str


@dataclass(frozen=True)
class HostCrashBound:
    lease_free: float  # sanlock host-dead time: the earliest moment another host may start
    vm_running: float  # + the next tick, a lost lease race's back-off, the start itself
    engine_healthy: float  # + the engine's boot budget


@dataclass(frozen=True)
class VmCrashBound:
    """The VM crashed on a host no live peer can replace: it restarts the VM here."""

    vm_running: float  # the crash's own tick (libvirt event) starts it: the start itself
    engine_healthy: float  # + the engine's boot budget
    vm_running_worst: float  # the event missed: the next periodic tick, then the start
    engine_healthy_worst: float
    backoffs: tuple[float, ...]  # the wait before each local restart inside the retry window
    at_limit: float  # the crash after the last of them: score 0 in EngineUnexpectedlyDown, then start + boot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_timing_arguments(parser)
    vm = parser.add_argument_group("the engine VM and the hosts")
    vm.add_argument(
        "--vm-start", type=non_negative_float, default=2.0, metavar="S", help="lease acquire + launch (default 2)"
    )
    vm.add_argument(
        "--vm-boot",
        type=non_negative_float,
        default=60.0,
        metavar="S",
        help="launch to a healthy engine health page (default 60)",
    )
    vm.add_argument(
        "--vm-shutdown",
        type=non_negative_float,
        default=30.0,
        metavar="S",
        help="graceful shutdown of a responsive guest (default 30)",
    )
    vm.add_argument(
        "--host-boot",
        type=non_negative_float,
        default=60.0,
        metavar="S",
        help="power-on to a running supervisor (default 60)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def host_crash_bound(timing: TimingConfig, sim: SimParams) -> HostCrashBound:
    """After the engine host crashes: its lease frees at host-dead time after its last
    renewal (at most that long after the crash); a survivor waiting on it is woken by its
    lease watch within one watch interval (he_ha/supervisor/lease_watch.py; the simulator
    does not model the watch and waits for the next tick, a looser path), or acquires after
    the lease-busy back-off if it lost a race just before."""
    lease_free = sim.host_dead_time
    vm_running = lease_free + LEASE_WATCH_INTERVAL + timing.lease_busy_backoff + sim.vm_start_time
    return HostCrashBound(lease_free, vm_running, vm_running + sim.vm_boot_time)


def vm_crash_bound(timing: TimingConfig, sim: SimParams) -> VmCrashBound:
    """Restart locally first (docs/fsm.md, vm-crashed.restart-here): the crash wakes a tick at
    once and that tick asks for the start; a missed event costs one periodic tick. Each further
    restart inside the retry window waits restart_backoff * 2**(n-1); at the retry limit the
    original's path applies: EngineUnexpectedlyDown's score-0 wait, then EngineDown starts it."""
    up = sim.vm_start_time + sim.vm_boot_time
    backoffs = tuple(0.0 if n == 0 else timing.restart_backoff * 2 ** (n - 1) for n in range(timing.max_retries))
    at_limit = timing.unexpectedly_down_timeout + timing.loop_delay + up
    return VmCrashBound(
        sim.vm_start_time, up, timing.loop_delay + sim.vm_start_time, timing.loop_delay + up, backoffs, at_limit
    )


def findings(timing: TimingConfig, sim: SimParams, args: argparse.Namespace) -> list[Finding]:
    """Combinations that defeat HA or make it flap (the sbd msgwait/stonith-timeout idea)."""
    found: list[Finding] = []
    publish_gap = timing.loop_delay + args.storage_timeout  # a peer's slot changes at least this often
    if timing.view_max_age <= publish_gap:
        found.append(
            Finding(
                "error",
                (
                    f"view_max_age {timing.view_max_age:g} s <= tick period + storage timeout {publish_gap:g} s: "
                    "every whiteboard view counts as stale, so no host will ever start the VM"
                ),
            )
        )
    if timing.liveness < 2 * publish_gap:
        found.append(
            Finding(
                "warning",
                (
                    f"liveness {timing.liveness:g} s < 2 x (tick period + storage timeout) = {2 * publish_gap:g} s: "
                    "one slow publish makes a live peer look dead; scores and starts will flap "
                    "(the VM lease still prevents two copies)"
                ),
            )
        )
    if timing.starting_timeout < sim.vm_start_time + sim.vm_boot_time:
        found.append(
            Finding(
                "warning",
                (
                    f"starting_timeout {timing.starting_timeout:g} s < VM start + boot {sim.vm_start_time + sim.vm_boot_time:g} s: "
                    "a healthy engine is stopped before it finishes booting, in a loop"
                ),
            )
        )
    if args.health_grace < sim.vm_boot_time:
        found.append(
            Finding(
                "warning",
                (
                    f"--health-grace {args.health_grace:g} s < VM boot {sim.vm_boot_time:g} s: "
                    "a booting engine counts as unhealthy and may be stopped"
                ),
            )
        )
    if timing.stop_timeout < sim.vm_shutdown_time:
        found.append(
            Finding(
                "warning",
                (
                    f"stop_timeout {timing.stop_timeout:g} s < guest shutdown {sim.vm_shutdown_time:g} s: "
                    "a guest still shutting down cleanly is destroyed"
                ),
            )
        )
    acquire_wait = wait_deadline(args.io_timeout)
    if timing.action_timeout < sim.vm_start_time:
        found.append(
            Finding(
                "error",
                (
                    f"action_timeout {timing.action_timeout:g} s < VM start {sim.vm_start_time:g} s: every start is "
                    "declared failed"
                ),
            )
        )
    elif timing.action_timeout < acquire_wait:
        found.append(
            Finding(
                "warning",
                (
                    f"action_timeout {timing.action_timeout:g} s < sanlock's longest acquire wait {acquire_wait:g} s "
                    f"(io_timeout {args.io_timeout}): a start that waits out a dead holder is counted as a failed "
                    "retry before it completes"
                ),
            )
        )
    if args.monitor_interval > timing.liveness:
        found.append(
            Finding(
                "warning",
                (
                    f"--monitor-interval {args.monitor_interval:g} s > liveness {timing.liveness:g} s: "
                    "scores are published from readings older than a peer's liveness window"
                ),
            )
        )
    return found


def run(args: argparse.Namespace) -> int:
    try:
        timing = timing_from(args)
        sim = SimParams(
            io_timeout=float(args.io_timeout),
            watchdog_fire_timeout=float(WATCHDOG_FIRE_TIMEOUT),
            lockspace_join_time=3.0 * args.io_timeout,  # ~3 s measured at io_timeout 1 (ENVIRONMENT.md)
            host_boot_time=args.host_boot,
            vm_start_time=args.vm_start,
            vm_boot_time=args.vm_boot,
            vm_shutdown_time=args.vm_shutdown,
        )
    except (TimingError, ScenarioError) as exc:
        print(f"he-ha failover-bound: {exc}", file=sys.stderr)
        return EXIT_USAGE
    read_period = min(args.peer_poll, timing.loop_delay) if args.peer_poll > 0 else timing.loop_delay
    crash = host_crash_bound(timing, sim)
    vm_crash = vm_crash_bound(timing, sim)
    general = failover_bound(timing, sim, read_period)
    prioritized = failover_bound(timing, sim, read_period, priorities=True)
    found = findings(timing, sim, args)
    if args.json:
        print(
            json.dumps(
                {
                    "host_crash": asdict(crash),
                    "vm_crash_no_peer": asdict(vm_crash),
                    "any_fault": {"terms": general.terms, "ready": general.ready, "total": general.total},
                    "any_fault_with_priorities": {
                        "priority_start_delay": timing.priority_start_delay,
                        "ready": prioritized.ready,
                        "total": prioritized.total,
                    },
                    "findings": [asdict(f) for f in found],
                }
            )
        )
    else:
        print(
            _report(
                args,
                crash,
                vm_crash,
                general.terms,
                general.ready,
                general.total,
                found,
                (timing.priority_start_delay, prioritized.ready, prioritized.total),
            )
        )
    return EXIT_FINDINGS if found else EXIT_CLEAN


def _report(
    args: argparse.Namespace,
    crash: HostCrashBound,
    vm_crash: VmCrashBound,
    terms: dict[str, float],
    ready: float,
    total: float,
    found: list[Finding],
    priorities: tuple[float, float, float],
) -> str:
    lines = [
        f"Failover bound for io_timeout {args.io_timeout} s, tick {args.tick_period:g} s, "
        f"VM start {args.vm_start:g} s + boot {args.vm_boot:g} s",
        "",
        "Engine host crashes (power loss, kernel panic):",
        f"  its VM lease is free after      {crash.lease_free:8.1f} s  (sanlock host-dead time: "
        f"8 x io_timeout + {WATCHDOG_FIRE_TIMEOUT} s)",
        f"  the VM runs on another host by  {crash.vm_running:8.1f} s",
        f"  the engine is healthy there by  {crash.engine_healthy:8.1f} s",
        "",
        "Engine VM crashes and no live peer can take it (single host, peers in maintenance or at score 0):",
        f"  restarted here, the VM runs by  {vm_crash.vm_running:8.1f} s  "
        f"({vm_crash.vm_running_worst:.1f} s if the VM event is missed)",
        f"  the engine is healthy by        {vm_crash.engine_healthy:8.1f} s  ({vm_crash.engine_healthy_worst:.1f} s)",
        "  back-off before each local restart inside the retry window: "
        + ", ".join(f"{b:g} s" for b in vm_crash.backoffs),
        f"  a crash after that (retry limit): healthy by {vm_crash.at_limit:.1f} s "
        "(score 0 in EngineUnexpectedlyDown first)",
        "",
        "Any fault (worst case, from the moment the last fault ends):",
    ]
    lines += [f"  {value:8.1f} s  {name}" for name, value in terms.items()]
    delay, p_ready, p_total = priorities
    lines += [
        f"  ready by {ready:.1f} s; healthy engine by {total:.1f} s",
        f"  with host priorities that differ (he_ha_priority): + {delay:g} s priority_start_delay: "
        f"ready by {p_ready:.1f} s; healthy engine by {p_total:.1f} s",
        "",
    ]
    if found:
        lines += [f"{f.severity.upper()}: {f.message}" for f in found]
    else:
        lines.append("No unsafe or self-defeating timing combination found.")
    return "\n".join(lines)
