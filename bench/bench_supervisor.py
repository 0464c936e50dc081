"""What one ``he-ha run`` costs and how fast it reacts (prints figures; asserts nothing).

Three phases, each on a simulated host of its own (real sanlock daemon, real libvirtd with
libvirt's test driver, real files; he_ha/devcluster/cluster.py):

1. Idle footprint over --seconds (default 300) with the VM running (EngineUp) and production
   periods: 10 s ticks and monitors, 2 s peer poll, network test = ping 127.0.0.1, the
   health page polled. Sampled every second from /proc: RSS, CPU (% of one core, including
   reaped children such as ping and ip), threads, open fds, for the supervisor alone and
   with its helper processes (lease worker, lease keeper), and the RSS of each process with
   its share of library code (RssFile) and private memory (RssAnon). Targets (issue 16
   item 3): supervisor ≤ 60 MiB, each helper ≤ 20 MiB, CPU < 0.5 %.
   Then admin status latency p50/p99 over the real admin unix socket, under that load.
2. Event-to-action latency: the VM is destroyed from outside (another libvirt client) --events
   times; the latency is from the destroy call returning to the start of the tick that the
   lifecycle event triggered (decision-log ``meta.started``; both clocks are the machine's
   CLOCK_MONOTONIC). Target < 100 ms.
3. Admin status latency while whiteboard reads hang (the metadata volume on a FUSE file whose
   I/O is stalled on demand, tests/support/stallfs.py).

    .venv/bin/python bench/bench_supervisor.py [--seconds 300] [--events 10] [--requests 500] [--footprint-only]   # root
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from he_ha.devcluster.cluster import (
    Cluster,
    Host,
    causes_of,
    health_page,
    state_of,
)
from tests.support.stallfs import StallFS

PRODUCTION_PERIODS = ["--tick-period", "10", "--monitor-interval", "10", "--peer-poll", "2"]
TICKS = os.sysconf("SC_CLK_TCK")


RSS_TARGET_MIB = {"supervisor": 60.0, "lease worker": 20.0, "lease keeper": 20.0}


@dataclass
class Sample:
    rss_kib: int
    cpu_ticks: int  # utime + stime + cutime + cstime
    threads: int
    fds: int


def sample(pid: int) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text()
    numbers = stat[stat.rindex(")") + 2 :].split()
    cpu = sum(int(numbers[i]) for i in (11, 12, 13, 14))  # fields 14-17: utime stime cutime cstime
    return Sample(int(fields["VmRSS"].split()[0]), cpu, int(fields["Threads"]), len(os.listdir(f"/proc/{pid}/fd")))


def rss_parts(pid: int) -> str:
    """``RssAnon`` (private heap and stacks) and ``RssFile`` (mapped files: the interpreter,
    shared libraries, extension modules) of /proc/<pid>/status, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    anon, file = (int(fields[name].split()[0]) / 1024 for name in ("RssAnon", "RssFile"))
    return f"anon {anon:.1f} + file {file:.1f}"


def role_of(pid: int, supervisor_pid: int) -> str:
    if pid == supervisor_pid:
        return "supervisor"
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"he_ha.lease.worker" in cmdline:
        return "lease worker"
    if b"he_ha.lease.keeper" in cmdline:
        return "lease keeper"
    return cmdline.replace(b"\0", b" ").decode(errors="replace").strip()


def helpers_of(host: Host, supervisor_pid: int) -> list[int]:
    """The lease worker (the supervisor's child) and the lease keeper (detached)."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read_text().split()
    keeper = host.keeper_pid()
    return [int(pid) for pid in children] + ([keeper] if keeper else [])


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"p50 {statistics.median(values) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {values[-1] * 1000:.2f} ms"


def status_latencies(host: Host, requests: int, pause: float = 0.01) -> list[float]:
    admin = host.admin
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        admin.get("/v1/status")
        latencies.append(time.perf_counter() - started)
        time.sleep(pause)
    return latencies


def footprint(url: str, seconds: int, requests: int) -> None:
    cluster = Cluster(1, libvirtd=True, health_url=url)
    cluster.hosts[0].network_test = "network_test=ping\ngateway=127.0.0.1"
    with cluster:
        host = cluster.hosts[0]
        supervisor = host.start_supervisor(*PRODUCTION_PERIODS)
        host.wait_for_decision(lambda e: state_of(e) == "EngineUp", timeout=120)
        time.sleep(15)  # let start-up work (imports, first probes) settle
        pids = [supervisor.pid, *helpers_of(host, supervisor.pid)]
        first = {pid: sample(pid) for pid in pids}
        start = time.monotonic()
        peak_rss = {pid: 0 for pid in pids}
        threads, fds = set(), set()
        while time.monotonic() - start < seconds:
            time.sleep(1)
            for pid in pids:
                now = sample(pid)
                peak_rss[pid] = max(peak_rss[pid], now.rss_kib)
                if pid == supervisor.pid:
                    threads.add(now.threads)
                    fds.add(now.fds)
        elapsed = time.monotonic() - start
        last = {pid: sample(pid) for pid in pids}

        def cpu(pid: int) -> float:
            return (last[pid].cpu_ticks - first[pid].cpu_ticks) / TICKS / elapsed * 100

        ticks = len(host.decisions())
        print(f"idle footprint over {elapsed:.0f} s, state {state_of(host.decisions()[-1])}, {ticks} decisions logged")
        print(
            f"  supervisor:          RSS peak {peak_rss[supervisor.pid] / 1024:.1f} MiB (last "
            f"{last[supervisor.pid].rss_kib / 1024:.1f}), CPU {cpu(supervisor.pid):.3f} % of one core, "
            f"threads {min(threads)}-{max(threads)}, open fds {min(fds)}-{max(fds)}"
        )
        helpers = pids[1:]
        print(
            f"  + helpers ({len(helpers)}: lease worker, keeper): RSS peak "
            f"{sum(peak_rss[p] for p in pids) / 1024:.1f} MiB total, "
            f"CPU {sum(cpu(p) for p in pids):.3f} % total"
        )
        print("  RSS of each process (peak; last: MiB anonymous + file-backed), against issue 16 item 3:")
        for pid in pids:
            role = role_of(pid, supervisor.pid)
            peak = peak_rss[pid] / 1024
            target = RSS_TARGET_MIB.get(role)
            verdict = "" if target is None else f"   target ≤ {target:.0f} MiB: {'met' if peak <= target else 'MISSED'}"
            print(f"    {role:<13} pid {pid:<7} {peak:5.1f} MiB ({rss_parts(pid)}){verdict}")
        latencies = status_latencies(host, requests)
        print(f"admin status over the unix socket, {requests} requests under normal load: {percentiles(latencies)}")


def reaction_and_stall(url: str, events: int, requests: int) -> None:
    mountpoint = Path(tempfile.mkdtemp(prefix="he-ha-bench-fuse-", dir="/tmp"))
    try:
        _reaction_and_stall(url, events, requests, mountpoint)
    finally:
        mountpoint.rmdir()


def _reaction_and_stall(url: str, events: int, requests: int, mountpoint: Path) -> None:
    with Cluster(1, libvirtd=True, health_url=url, metadata=mountpoint / "metadata") as cluster:
        host = cluster.hosts[0]
        with StallFS(mountpoint, cluster.metadata_file) as fs:
            host.start_supervisor("--timing", "unexpectedly_down_timeout=1", "--tick-period", "2")
            latencies, delivery = [], []
            for _ in range(events):
                index, _ = host.wait_for_decision(
                    lambda e: state_of(e) == "EngineUp", after=len(host.decisions()) - 1, timeout=120
                )
                vm = host.vm()
                assert vm is not None
                vm.destroy()
                destroyed = time.monotonic()
                _, entry = host.wait_for_decision(lambda e: "vm-event" in causes_of(e), after=index + 1)
                latencies.append(entry["meta"]["started"] - destroyed)
                delivery.append(entry["meta"]["causes"][0]["at"] - destroyed)
            print(
                f"event-to-action, VM destroyed -> tick started, {events} events: "
                f"median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
                f"(of which libvirt event delivery: median {statistics.median(delivery) * 1000:.1f} ms)"
            )
            fs.stall()
            fs.wait_blocked(1, timeout=30)
            stalled = status_latencies(host, requests)
            print(f"admin status while whiteboard reads hang, {requests} requests: {percentiles(stalled)}")
            fs.resume()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300, help="idle footprint measurement (default 300)")
    parser.add_argument("--events", type=int, default=10, help="VM destroys for the reaction latency (default 10)")
    parser.add_argument("--requests", type=int, default=500, help="admin status requests per phase (default 500)")
    parser.add_argument("--footprint-only", action="store_true", help="phase 1 only")
    args = parser.parse_args()
    with health_page() as url:
        footprint(url, args.seconds, args.requests)
        if not args.footprint_only:
            reaction_and_stall(url, args.events, args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
