"""Wall time of ``hosted-engine --vm-status --json`` against a running daemon (issue 16 item 2).

cockpit's hosted-engine page runs that command every second while it is open. Starts a
two-host dev cluster (he_ha/devcluster: real supervisors, sanlock daemons, libvirtd with the
test driver), waits until a host reports EngineUp, then runs the installed console script
(``.venv/bin/hosted-engine``, what a user runs) --runs times with that host's environment and
prints the wall time of each run: median, p90, min. The first run takes the full path and
records the hosted-engine.conf it checked in the host's run directory; the timed runs then take
the lean path (cli/status_fast.py), as cockpit's every-second runs do. For comparison, the full
path is timed too (a run directory where no record can be: every run validates with pydantic).
Also ``--help`` (no daemon, imports and dispatch only) and, with ``-X importtime``, the slowest
imports of one --vm-status run. Target: --vm-status --json ≤ 150 ms median wall.

    .venv/bin/python bench/bench_shim.py [--runs 30]   # root
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from he_ha.devcluster.cluster import Cluster, Host, health_page

REPO = Path(__file__).resolve().parents[1]
SHIM = Path(sys.executable).parent / "hosted-engine"
TARGET_MS = 150.0
WAIT = 120.0


def run(
    host: Host, *args: str, python_flags: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    command = [sys.executable, *python_flags, str(SHIM), *args]
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd="/",
        env={**os.environ, **host.cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return time.perf_counter() - start, done


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"median {statistics.median(ms):6.1f} ms   p90 {p90:6.1f} ms   min {ms[0]:6.1f} ms"


def slowest_imports(stderr: str, count: int = 10) -> list[str]:
    """``import time: self | cumulative | name`` lines, the largest cumulative first."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = [part.strip() for part in line[len("import time:") :].split("|")]
        if len(parts) == 3 and parts[1].isdigit():
            rows.append((int(parts[1]), parts[2]))
    return [f"{us / 1000:6.1f} ms  {name}" for us, name in sorted(rows, reverse=True)[:count]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each command (default 30)")
    args = parser.parse_args()
    if not SHIM.exists():
        raise SystemExit(f"{SHIM} is missing: run scripts/setup.sh")
    with health_page() as url, Cluster(2, libvirtd=True, health_url=url) as cluster:
        for host in cluster.hosts:
            host.start_supervisor()
        host = cluster.engine_host(WAIT)
        _, first = run(host, "--vm-status", "--json")
        if first.returncode != 0:
            raise SystemExit(f"--vm-status --json failed ({first.returncode}): {first.stderr}")
        hosts = json.loads(first.stdout)
        status = [run(host, "--vm-status", "--json")[0] for _ in range(args.runs)]
        no_record = {"HE_HA_RUN_DIR": str(host.root / "no-such-run-dir")}  # the admin socket is given explicitly
        _, full_first = run(host, "--vm-status", "--json", env=no_record)
        if full_first.returncode != 0:
            raise SystemExit(f"--vm-status --json (full path) failed ({full_first.returncode}): {full_first.stderr}")
        full = [run(host, "--vm-status", "--json", env=no_record)[0] for _ in range(args.runs)]
        helps = [run(host, "--help")[0] for _ in range(args.runs)]
        _, profiled = run(host, "--vm-status", "--json", python_flags=("-X", "importtime"))
    median = statistics.median(status) * 1000
    print(
        f"hosted-engine --vm-status --json against a running daemon ({len(hosts) - 1} hosts + global), "
        f"{args.runs} runs:"
    )
    print(f"  {summary(status)}   target ≤ {TARGET_MS:.0f} ms: {'met' if median <= TARGET_MS else 'MISSED'}")
    print(
        f"the same through the full path (pydantic validation of hosted-engine.conf and the answer), {args.runs} runs:"
    )
    print(f"  {summary(full)}")
    print(f"hosted-engine --help, {args.runs} runs:")
    print(f"  {summary(helps)}")
    print("slowest imports of one --vm-status --json run (cumulative):")
    for row in slowest_imports(profiled.stderr, 12):
        print(f"  {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
