"""Failover of a real he-ha cluster on this machine (prints figures; asserts nothing).

    .venv/bin/python bench/bench_failover.py [--runs 3]      # root; about 6 minutes at 3 runs
    .venv/bin/python bench/bench_failover.py --production [--runs 1]     # default timings

Three simulated hosts (he_ha/devcluster/cluster.py): real `he-ha run` processes, a real
sanlock daemon each (io_timeout 1), a private libvirtd serving the test driver each (the VM
starts at once: there is no guest to boot), shared whiteboard and lease files, and a health
page that answers only while exactly one hypervisor runs the VM. A watcher samples every
hypervisor at 10 Hz; times are from the fault to the first sample that sees the VM running
again, and any instant with two copies is reported. Scenarios, each repeated --runs times:

1. global maintenance on, then off: admin request -> every host's state machine in the new
   state (GlobalMaintenance / out of it), read from each host's admin socket at 20 Hz;
2. VM crash (the domain destroyed behind the supervisor's back) -> VM running again;
3. local maintenance on the engine's host (admin request) -> VM running on another host;
4. engine host crash (SIGKILL of all its processes, sanlock daemon and hypervisor included)
   -> VM running on another host, and that time divided by sanlock's host-dead time for
   io_timeout 1 (the physical floor: no host may take the lease sooner).
Next to each: the original's expected times from its constants for the same scenario
(he_ha/sim/original.py), and for the host crash he-ha's own bound (`he-ha failover-bound`).

Every wait has a deadline (240 s; 600 s with --production) and names what it waited for when it runs out; a
supervisor that exits meanwhile fails the bench at once with its log's tail. After a fault
the bench waits for what the next one needs, not for a fixed time: the VM steady on one host,
every host's daemon answering on its admin socket with a positive score (a rebooted host's
supervisor rejoins the lockspace first and listens last: asking it earlier used to crash the
bench with DaemonUnreachable on a new machine, issue 16 item 5), and every host seeing every
other live (a rebooted host has rejoined, so the next crash has two survivors to go to).

``--production``: he-ha's default timings instead (devcluster.PRODUCTION: 10 s ticks and
monitors, 60 s liveness, 20 s lease-busy back-off) on a cluster whose lockspace and VM lease
are initialised at sanlock io_timeout 10 (host-dead time 140 s, as on real hosts): a cold
start (the three supervisors started at once on the fresh cluster -> VM running), --runs VM
crashes and --runs host crashes, with the host crash's ratio to the 140 s host-dead time
(issue 16 item 6: target <= 1.02). About 5 minutes at --runs 1; each further host crash adds
a reboot, the rejoin and ~2.5 minutes. At default timings a host whose VM crashed keeps score 0
for 560 s, so between faults the bench waits for one other eligible host, not for all.
Measured once (2026-12-05, 2-core box shared with other test runs, --runs 1): cold start ->
VM running 88.5 s; VM crash -> running again 1.4 s; host crash -> VM on another host 135.4 s
= 0.967 x the 140 s host-dead time (below 1: sanlock counts from the dead host's last renewal,
up to one 20 s renewal interval before the crash); no two copies in 7334 samples.

Without --production the crashed host's EngineUnexpectedlyDown lasts 15 s instead of 560 s,
so repeated VM crashes find an eligible host (with 560 s, the third crash on three hosts waits
for it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.admin_client import AdminError, DaemonUnreachable
from he_ha.devcluster.cluster import (
    IO_TIMEOUT,
    PRODUCTION,
    PRODUCTION_IO_TIMEOUT,
    Cluster,
    HealthPage,
    Host,
)
from he_ha.devcluster.vm_watch import VmWatcher
from he_ha.lease import host_dead_seconds
from he_ha.logsetup import configure_logging
from he_ha.sim import original

EXTRA = ["--timing", "unexpectedly_down_timeout=15"]
WAIT = 240.0  # generous upper bound for any recovery here
PRODUCTION_WAIT = 600.0  # --production: 140 s host-dead time, 60 s liveness, 10 s ticks
POLL = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--production",
        action="store_true",
        help="he-ha's default timings and sanlock io_timeout 10: cold start, VM crash, host crash",
    )
    args = parser.parse_args()
    configure_logging(level="WARNING")  # the harness's progress lines would bury the table
    if args.production:
        return production(args.runs)
    results: dict[str, list[float]] = {}
    with HealthPage() as page, Cluster(3, libvirtd=True, health_url=page.url) as cluster:
        for host in cluster.hosts:
            host.start_supervisor(*EXTRA)
        with VmWatcher(cluster.hosts) as watcher:
            page.gate = watcher.engine_problem
            bench = Bench(cluster, watcher)
            bench.settle()
            for _ in range(args.runs):
                on, off = bench.global_maintenance()
                results.setdefault("global maintenance on -> all hosts", []).append(on)
                results.setdefault("global maintenance off -> all hosts", []).append(off)
            for _ in range(args.runs):
                results.setdefault("VM crash -> VM running again", []).append(bench.vm_crash())
            for _ in range(args.runs):
                results.setdefault("local maintenance -> VM on another host", []).append(bench.local_maintenance())
            for _ in range(args.runs):
                results.setdefault("host crash -> VM on another host", []).append(bench.host_crash())
            violations = list(watcher.violations)
            samples = watcher.samples
    report(results, violations, samples)
    return 1 if violations else 0


def production(runs: int) -> int:
    """Cold start, VM crash and host crash at he-ha's default timings (devcluster.PRODUCTION:
    10 s ticks and monitors, 60 s liveness) and sanlock io_timeout 10 (host-dead time 140 s)."""
    global WAIT
    WAIT = PRODUCTION_WAIT
    results: dict[str, list[float]] = {}
    with (
        HealthPage() as page,
        Cluster(3, libvirtd=True, health_url=page.url, io_timeout=PRODUCTION_IO_TIMEOUT) as cluster,
        VmWatcher(cluster.hosts) as watcher,
    ):
        page.gate = watcher.engine_problem
        bench = Bench(cluster, watcher, PRODUCTION)
        started = time.monotonic()
        for host in cluster.hosts:
            host.start_supervisor(*PRODUCTION)
        run = watcher.wait_for_start(started, WAIT)
        assert run is not None, f"no host started the VM within {WAIT} s of a cold start"
        results["cold start, 3 hosts at once -> VM running"] = [run.first - started]
        bench.settle()
        for _ in range(runs):
            results.setdefault("VM crash -> VM running again", []).append(bench.vm_crash())
        for index in range(runs):
            took = bench.host_crash() if index < runs - 1 else bench.recovered(Host.crash, elsewhere=True)
            results.setdefault("host crash -> VM on another host", []).append(took)
        violations = list(watcher.violations)
        samples = watcher.samples
    dead = host_dead_seconds(PRODUCTION_IO_TIMEOUT)
    print(f"default timings, sanlock io_timeout {PRODUCTION_IO_TIMEOUT} (host-dead time {dead} s)")
    print(f"{'scenario (s)':<44} {'runs':>4} {'median':>8} {'min-max':>15}")
    for name, values in results.items():
        print(
            f"{name:<44} {len(values):>4} {statistics.median(values):>8.2f} "
            f"{f'{min(values):.2f}-{max(values):.2f}':>15}"
        )
    ratios = [value / dead for value in results["host crash -> VM on another host"]]
    low, high = original.host_crash(PRODUCTION_IO_TIMEOUT, 0.0)
    print(
        f"\nhost crash / sanlock host-dead time ({dead} s): median {statistics.median(ratios):.3f}, "
        f"min-max {min(ratios):.3f}-{max(ratios):.3f} (issue 16 item 6 target <= 1.02; "
        f"the original, from its constants: {low:.0f}-{high:.0f} s)"
    )
    print(f"two copies of the VM at once: {len(violations)} in {samples} hypervisor samples")
    for violation in violations:
        print(f"  {violation.describe()}")
    return 1 if violations else 0


class Bench:
    def __init__(self, cluster: Cluster, watcher: VmWatcher, options: list[str] | None = None) -> None:
        self.cluster = cluster
        self.watcher = watcher
        self.options = EXTRA if options is None else options  # supervisor options (a rebooted host's too)

    def engine_host(self) -> Host:
        running = self.watcher.running_on()
        assert len(running) == 1, f"expected one host running the VM, got {running}"
        return next(h for h in self.cluster.hosts if h.name == running[0])

    def settle(self) -> None:
        """One VM, steady for 3 s, its host EngineUp, every host's daemon answering with a
        positive score (a rebooted host's supervisor is starting: it listens last; --production:
        another host with a positive score), and every host seen live by every other (a
        rebooted host has rejoined: the next fault has every survivor to go to)."""
        assert self.watcher.wait_for_stable(1, 3.0, WAIT), "the VM did not settle on one host"
        hosts = [h for h in self.cluster.hosts if h.supervisors]
        engine = self.engine_host()
        wait_until(lambda: own_view(engine).get("state") == "EngineUp", f"{engine.name} EngineUp", hosts)
        if self.options is PRODUCTION:
            # at default timings a host whose VM crashed keeps score 0 for 560 s
            # (EngineUnexpectedlyDown): wait for every daemon and one other eligible host only
            wait_until(
                lambda: (
                    all(own_view(h) for h in hosts) and any(own_view(h).get("score") for h in hosts if h is not engine)
                ),
                "every host answering, another host with a positive score",
                hosts,
            )
        else:
            wait_until(
                lambda: all(own_view(h).get("score") for h in hosts),
                "every host answering with a positive score",
                hosts,
            )
        wait_until(lambda: all(sees_all_live(h, hosts) for h in hosts), "every host seeing every other live", hosts)

    def recovered(self, fault: Callable[[Host], None], elsewhere: bool) -> float:
        engine = self.engine_host()
        hosts = [h.name for h in self.cluster.hosts if h is not engine] if elsewhere else None
        started = time.monotonic()
        fault(engine)
        run = self.watcher.wait_for_start(started, WAIT, hosts)
        assert run is not None, f"the VM did not run again within {WAIT} s"
        return run.first - started

    def vm_crash(self) -> float:
        took = self.recovered(Host.crash_vm, elsewhere=False)
        self.settle()
        return took

    def local_maintenance(self) -> float:
        took = self.recovered(lambda host: set_mode(host, "local"), elsewhere=True)
        for host in self.cluster.hosts:
            set_mode(host, "none")
        self.settle()
        return took

    def host_crash(self) -> float:
        engine = self.engine_host()
        took = self.recovered(Host.crash, elsewhere=True)
        engine.reboot(*self.options)
        self.settle()
        return took

    def global_maintenance(self) -> tuple[float, float]:
        host = self.cluster.hosts[0]
        times = []
        for mode, in_gm in (("global", True), ("none", False)):
            started = time.monotonic()
            set_mode(host, mode)

            def every_host_sees(in_gm: bool = in_gm) -> bool:
                return all((own_view(h).get("state") == "GlobalMaintenance") == in_gm for h in self.cluster.hosts)

            wait_until(every_host_sees, f"every host {'in' if in_gm else 'out of'} GM", self.cluster.hosts)
            times.append(time.monotonic() - started)
        self.settle()
        return times[0], times[1]


def set_mode(host: Host, mode: str) -> None:
    """Ask ``host``'s daemon for a maintenance mode, waiting (up to WAIT) for it to listen."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            code, answer = host.admin.post("/v1/maintenance", {"mode": mode})
            break
        except DaemonUnreachable as exc:
            _check_alive(host)
            if time.monotonic() > deadline:
                raise AssertionError(f"{host.name}: daemon not listening within {WAIT} s: {exc}") from exc
            time.sleep(POLL)
    assert code == 200, f"{host.name}: maintenance {mode} refused: {answer}"


def status_of(host: Host) -> dict:
    """The host's admin status; empty while its daemon does not listen or answer yet (a
    rebooted host's supervisor is still starting: its admin socket comes last)."""
    try:
        status = host.admin.get("/v1/status")
    except (DaemonUnreachable, AdminError):
        return {}
    return status if isinstance(status, dict) else {}


def own_view(host: Host) -> dict:
    """The host's own entry of its status; empty until the daemon answers with one."""
    return next((h for h in status_of(host).get("hosts", []) if h.get("local")), {})


def sees_all_live(host: Host, hosts: list[Host]) -> bool:
    """``host``'s status shows every other of ``hosts`` live."""
    seen = {h.get("host_id"): h.get("live") for h in status_of(host).get("hosts", []) if not h.get("local")}
    return all(seen.get(other.host_id) for other in hosts if other is not host)


def wait_until(condition: Callable[[], bool], what: str, hosts: list[Host] | None = None) -> None:
    """Poll ``condition`` until true; AssertionError after WAIT s, or at once when one of
    ``hosts``' supervisors has exited (with its log's tail), rather than waiting it out."""
    deadline = time.monotonic() + WAIT
    while not condition():
        for host in hosts or []:
            _check_alive(host)
        if time.monotonic() > deadline:
            views = {h.name: {k: own_view(h).get(k) for k in ("state", "score")} for h in hosts or []}
            raise AssertionError(f"not reached within {WAIT} s: {what}; hosts: {views}")
        time.sleep(POLL)


def _check_alive(host: Host) -> None:
    if host.supervisors and host.supervisors[-1].process.poll() is not None:
        last = host.supervisors[-1]
        raise AssertionError(f"{host.name}: supervisor exited with {last.process.returncode}\n{last.log_tail()}")


def report(results: dict[str, list[float]], violations: list, samples: int) -> None:
    dead = host_dead_seconds(IO_TIMEOUT)
    theirs = {
        "global maintenance on -> all hosts": _range(original.global_maintenance()),
        "global maintenance off -> all hosts": _range(original.global_maintenance()),
        "VM crash -> VM running again": _range(original.vm_crash(0.0)),
        "local maintenance -> VM on another host": original.LOCAL_MAINTENANCE,
        "host crash -> VM on another host": _range(original.host_crash(IO_TIMEOUT, 0.0)),
    }
    print(f"{'scenario (s)':<42} {'runs':>4} {'median':>8} {'min-max':>13}   original, from its constants")
    for name, values in results.items():
        spread = f"{min(values):.2f}-{max(values):.2f}"
        print(f"{name:<42} {len(values):>4} {statistics.median(values):>8.2f} {spread:>13}   {theirs[name]}")
    crash = results.get("host crash -> VM on another host")
    if crash:
        ratios = [value / dead for value in crash]
        print(
            f"\nhost crash / sanlock host-dead time ({dead} s at io_timeout {IO_TIMEOUT}): median "
            f"{statistics.median(ratios):.3f}, min-max {min(ratios):.3f}-{max(ratios):.3f} (target <= 1.10)"
        )
    print(f"two copies of the VM at once: {len(violations)} in {samples} hypervisor samples")
    for violation in violations:
        print(f"  {violation.describe()}")


def _range(bounds: tuple[float, float]) -> str:
    low, high = bounds
    return f"{low:.0f}-{high:.0f}"


if __name__ == "__main__":
    sys.exit(main())
