"""Races for the engine VM between equal hosts, counted over many rounds (prints figures; exits
1 if any round ran the VM twice or did not end with one healthy engine).

    .venv/bin/python bench/bench_races.py --runs 100        # root; about 30 s a round on 2 cores

Each round builds a **fresh** cluster of three simulated hosts (he_ha/devcluster/cluster.py:
real `he-ha run` processes, a sanlock daemon and a private libvirtd each, a freshly
initialised lockspace, VM lease and whiteboard; a health page that answers only while exactly
one hypervisor runs the VM), so no round inherits a lease, a host id or a back-off from the
previous one, and runs two races:

1. **start**: the three supervisors launched at one barrier on the fresh cluster: every host
   sees an empty whiteboard, equal scores (the CPU-load penalty is off in the harness), and
   may try to acquire the VM lease and start the VM;
2. **failover**: once the engine is up and both other hosts have recorded
   `down.engine-elsewhere` with equal scores, the engine host dies; the two survivors are
   equal and race for the VM.

   ``--death kill`` (default): the engine host's supervisor (with its lease worker), lease
   keeper and libvirtd (with the VM) are frozen (SIGSTOP) then killed (SIGKILL) while its
   sanlock daemon still runs, which releases the VM lease as its holder dies; then the sanlock
   daemon is killed too. The lease is free at once and the survivors learn of the death from
   the whiteboard (the host's timestamp stops: 3 s liveness here), so the race is between two
   hosts that both see a free lease and a dead engine host at about the same time.
   ``--death crash``: ``Host.crash()``, power loss: the lease stays owned on disk until
   sanlock's host-dead time (68 s at io_timeout 1), then both survivors, which had been
   waiting in `down.lease-held`, see it free. The more faithful fault, but 68 s more per round.

Why the harness's short timings (sanlock io_timeout 1, 1 s ticks and monitors, 3 s liveness,
2 s lease-busy back-off; he_ha/devcluster/cluster.py FAST): with the defaults (io_timeout 10,
10 s ticks, 60 s liveness) one round would last minutes and a hundred rounds a day; what is
counted here — how many hosts launch a VM when several may, and what the losers see from
sanlock — depends on the order of lease acquisitions, not on the length of the periods
between them. Shorter ticks put the hosts' decisions *closer* together, which makes a race
more likely, not less.

Per round and race it records: whether exactly one VM ran (no two hosts' runs overlapping in
the VM watcher's 10 Hz samples, `VmWatcher.violations`, and exactly one new run of the VM, on
the host that reached EngineUp, still running at the end), the time from the barrier / the
death to the first decision of one host reaching EngineUp (its tick's monotonic start, read
from its JSON-lines decision log; CLOCK_MONOTONIC is shared by the processes of one machine)
and to the VM's first sample on that host, which hosts recorded `start.ok`, and **every lease
error**: from the decision logs each action result `lease-busy` (acquire refused: another host
holds the lease) or `failed` naming the lease, and each `safety.*lease*` rule (a VM running
without its lease); from the supervisors' JSON logs each warning or error mentioning the lease.
It then prints the one-VM count, the distribution of the times (median, p90, min, max) and the
lease errors grouped by message with their rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import signal
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from he_ha.devcluster.cluster import Cluster, HealthPage, Host, freeze_and_kill, rule_of, state_of
from he_ha.devcluster.vm_watch import Run, VmWatcher
from he_ha.logsetup import configure_logging

WAIT = 60.0  # deadline for anything one race waits for (one healthy engine: seconds normally)
CRASH_WAIT = 150.0  # --death crash: sanlock's host-dead time (68 s) comes first
SETTLE = 2.0  # the winner's VM must stay the only copy this long after EngineUp
POLL = 0.1
RACES = ("start", "failover")


@dataclass
class LeaseError:
    """One lease error: where it was seen and what it said."""

    round: int
    race: str
    host: str
    source: str  # "decision" or "log"
    message: str


@dataclass
class Race:
    """One race of one round."""

    round: int
    name: str
    one_vm: bool = False
    healthy: float | None = None  # seconds from the fault / barrier to one host's EngineUp
    vm_running: float | None = None  # seconds to the VM's first sample on that host
    winner: str | None = None
    started: list[str] = field(default_factory=list)  # hosts whose log has start.ok in this race
    problem: str | None = None  # why not one VM, or not one healthy engine
    began: float = 0.0  # monotonic time of the barrier / the death
    began_wall: float = 0.0  # the same instant, time.time() (the supervisors' logs carry wall times)
    lease_errors: list[LeaseError] = field(default_factory=list)
    lease_waits: Counter[str] = field(default_factory=Counter)  # down.lease-held / -backoff decisions


# --- one round -----------------------------------------------------------------------------------


def run_round(index: int, death: str, keep: Path | None = None) -> list[Race]:
    """A fresh 3-host cluster: the start race, then (if it produced one engine) the failover
    race. ``keep``: where to copy the hosts' logs of a round that went wrong."""
    races: list[Race] = []
    with HealthPage() as page:
        cluster = Cluster(3, libvirtd=True, health_url=page.url)
        try:
            with cluster, VmWatcher(cluster.hosts) as watcher:
                page.gate = watcher.engine_problem
                races = _races(index, death, cluster, watcher)
                _collect_lease_errors(cluster.hosts, races)
                if keep is not None and any(r.problem is not None or not r.one_vm for r in races):
                    _keep_logs(cluster.hosts, keep / f"round-{index}", races)
        finally:
            for race in races:
                if cluster.leftovers and race.problem is None:
                    race.problem = f"processes left behind by the cluster: {cluster.leftovers}"
    return races


def _keep_logs(hosts: Sequence[Host], into: Path, races: Sequence[Race]) -> None:
    """Copy each host's decision log and supervisor logs (the cluster's directory goes on exit)."""
    into.mkdir(parents=True, exist_ok=True)
    for host in hosts:
        for source in [host.decision_log, *(s.log_path for s in host.supervisors)]:
            with contextlib.suppress(OSError):
                shutil.copy(source, into / f"{host.name}-{source.name}")
    (into / "races.txt").write_text("".join(f"{r.name}: problem {r.problem}; began {r.began}\n" for r in races))


def _races(index: int, death: str, cluster: Cluster, watcher: VmWatcher) -> list[Race]:
    hosts = cluster.hosts
    start = Race(index, "start")
    barrier_at = _launch_together(hosts)
    start.began, start.began_wall = barrier_at, time.time() - (time.monotonic() - barrier_at)
    _judge(start, hosts, watcher, barrier_at, hosts, WAIT)
    races = [start]
    if start.winner is None or not start.one_vm:
        return races
    failover = Race(index, "failover")
    races.append(failover)
    engine = next(h for h in hosts if h.name == start.winner)
    survivors = [h for h in hosts if h is not engine]
    problem = _wait_equal(survivors)
    if problem is not None:
        failover.problem = f"not raced: {problem}"
        return races
    died_at = time.monotonic()
    failover.began, failover.began_wall = died_at, time.time()
    if death == "crash":
        engine.crash()
    else:
        _die_releasing(engine)
    _judge(failover, survivors, watcher, died_at, hosts, CRASH_WAIT if death == "crash" else WAIT)
    return races


def _launch_together(hosts: Sequence[Host]) -> float:
    """Start every host's supervisor at one barrier; returns the monotonic time of the barrier."""
    barrier = threading.Barrier(len(hosts) + 1)

    def launch(host: Host) -> None:
        barrier.wait()
        host.start_supervisor()

    threads = [threading.Thread(target=launch, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    barrier.wait()
    at = time.monotonic()
    for thread in threads:
        thread.join()
    return at


def _die_releasing(host: Host) -> None:
    """The host dies, its sanlock daemon last: supervisor group (lease worker included), lease
    keeper and libvirtd (with the VM) frozen then killed, so none reacts to the others; the
    still running sanlock daemon releases the VM lease as its holder is gone; then the daemon
    is killed too. See the module doc (``--death kill``)."""
    groups, pids = host.processes()
    sanlock = host.daemon.pid
    groups = [g for g in groups if g != sanlock]
    keeper = host.keeper_pid()
    freeze_and_kill(groups, pids)
    deadline = time.monotonic() + 10
    while keeper is not None and _alive(keeper) and time.monotonic() < deadline:
        time.sleep(0.02)  # a killed child of another process is a zombie until reaped: see _alive
    time.sleep(0.5)  # sanlock notices the dead client on its socket and releases its resources
    host.crash()  # the sanlock daemon; reaps the rest, closes the libvirt connection


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_equal(survivors: Sequence[Host]) -> str | None:
    """Wait until each survivor's newest decision is ``down.engine-elsewhere`` and their
    scores are equal; None when so, else what was last seen."""
    deadline = time.monotonic() + WAIT
    seen = ""
    while time.monotonic() < deadline:
        latest = [h.decisions()[-1:] for h in survivors]
        if all(latest):
            entries = [entries[0] for entries in latest]
            rules = [rule_of(e) for e in entries]
            scores = [_score(e) for e in entries]
            seen = f"rules {rules}, scores {scores}"
            if all(r == "down.engine-elsewhere" for r in rules) and len(set(scores)) == 1:
                return None
        time.sleep(POLL)
    return f"survivors not equal within {WAIT:g} s: {seen}"


def _score(entry: dict[str, Any]) -> Any:
    score = entry["record"].get("score")
    return score.get("total", score) if isinstance(score, dict) else score


def _judge(
    race: Race, hosts: Sequence[Host], watcher: VmWatcher, since: float, everyone: Sequence[Host], timeout: float
) -> None:
    """Wait for one of ``hosts`` to reach EngineUp after ``since``, then judge the VM's runs."""
    deadline = time.monotonic() + timeout
    up: tuple[Host, float] | None = None
    while up is None and time.monotonic() < deadline:
        up = _first_engine_up(hosts, since)
        if up is None:
            time.sleep(POLL)
    race.started = [h.name for h in everyone if _decided(h, since, lambda e: rule_of(e) == "start.ok")]
    if up is None:
        race.problem = (
            f"no host reached EngineUp within {timeout:g} s; VM running on {watcher.running_on()}; "
            f"last decisions: {_last_rules(hosts)}"
        )
        race.one_vm = not watcher.violations and len(_runs_since(watcher, since)) <= 1
        return
    host, at = up
    race.winner, race.healthy = host.name, at - since
    time.sleep(SETTLE)
    race.started = [h.name for h in everyone if _decided(h, since, lambda e: rule_of(e) == "start.ok")]
    runs = _runs_since(watcher, since)
    running = watcher.running_on()
    mine = [r for r in runs if r.host == host.name]
    if mine:
        race.vm_running = mine[0].first - since
    problems: list[str] = []
    if watcher.violations:
        problems.extend(v.describe(since) for v in watcher.violations)
    if [r.host for r in runs] != [host.name]:
        problems.append(f"runs of the VM since the race began: {[(r.host, round(r.first - since, 2)) for r in runs]}")
    if running != [host.name]:
        problems.append(f"VM running on {running} {SETTLE:g} s after {host.name} reached EngineUp")
    race.one_vm = not watcher.violations and len(runs) == 1
    race.problem = "; ".join(problems) or None


def _last_rules(hosts: Iterable[Host]) -> dict[str, str]:
    """Each host's last decision (rule -> state), or how its supervisor ended."""
    seen = {}
    for host in hosts:
        supervisor = host.supervisors[-1] if host.supervisors else None
        code = supervisor.process.poll() if supervisor is not None else None
        if code is not None and supervisor is not None:
            seen[host.name] = f"supervisor exited {code}: {supervisor.log_tail(1)}"
            continue
        last = host.decisions()[-1:]
        seen[host.name] = f"{rule_of(last[0])}->{state_of(last[0])}" if last else "no decision yet"
    return seen


def _first_engine_up(hosts: Iterable[Host], since: float) -> tuple[Host, float] | None:
    found = []
    for host in hosts:
        for entry in host.decisions():
            if state_of(entry) == "EngineUp" and entry["meta"]["started"] >= since:
                found.append((host, float(entry["meta"]["started"])))
                break
    return min(found, key=lambda pair: pair[1]) if found else None


def _decided(host: Host, since: float, predicate: Callable[[dict[str, Any]], bool]) -> bool:
    return any(e["meta"]["started"] >= since and predicate(e) for e in host.decisions())


def _runs_since(watcher: VmWatcher, since: float) -> list[Run]:
    """The VM's runs that began after ``since`` (the failover: the dead host's run began before)."""
    return [r for r in watcher.runs() if r.first >= since]


# --- lease errors ----------------------------------------------------------------------------------


def _collect_lease_errors(hosts: Sequence[Host], races: Sequence[Race]) -> None:
    """Every lease error in the hosts' decision logs and supervisor logs, each given to the
    race during which it was written (decisions by their tick's monotonic start, log lines by
    their wall-clock timestamp)."""
    if not races:
        return

    def race_at(moment: float | None, wall: bool) -> Race:
        chosen = races[0]
        for race in races:
            if moment is None or moment >= (race.began_wall if wall else race.began):
                chosen = race
        return chosen

    for host in hosts:
        for entry in host.decisions():
            race = race_at(float(entry["meta"]["started"]), wall=False)
            rule = rule_of(entry)
            if rule in ("down.lease-held", "down.lease-backoff"):
                race.lease_waits[rule] += 1
            for message in decision_lease_errors(entry):
                race.lease_errors.append(LeaseError(race.round, race.name, host.name, "decision", message))
        for supervisor in host.supervisors:
            for moment, message in log_lease_errors(_read_lines(supervisor.log_path)):
                race = race_at(moment, wall=True)
                race.lease_errors.append(LeaseError(race.round, race.name, host.name, "log", message))


def decision_lease_errors(entry: dict[str, Any]) -> list[str]:
    """The lease errors one decision-log entry shows: its action result (lease-busy, or a
    failure naming the lease) and a safety rule about the lease."""
    found = []
    result = (entry.get("observation") or {}).get("result")
    if result:
        outcome, reason = result.get("outcome"), str(result.get("reason", ""))
        if outcome == "lease-busy" or (outcome == "failed" and "lease" in reason.lower()):
            found.append(f"action result {outcome}: {reason}")
    rule = rule_of(entry)
    if rule.startswith("safety.") and "lease" in rule:
        found.append(f"rule {rule}: {entry['record'].get('note', '')}")
    return found


_SKIP = ("level", "timestamp", "logger", "event")


def log_lease_errors(lines: Iterable[str]) -> list[tuple[float | None, str]]:
    """(wall-clock time if known, message) of each warning or error about the lease in a
    supervisor's JSON-lines log. A line that is not JSON (a traceback) counts if it names the
    lease and an error."""
    found: list[tuple[float | None, str]] = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            lowered = line.lower()
            if "lease" in lowered and ("error" in lowered or "traceback" in lowered):
                found.append((None, line.strip()))
            continue
        if not isinstance(record, dict):
            continue
        level = str(record.get("level", "")).lower()
        if level not in ("warning", "error", "critical", "exception"):
            continue
        details = " ".join(f"{k}={v}" for k, v in record.items() if k not in _SKIP)
        message = f"{level}: {record.get('event', '')} {details}".strip()
        if "lease" not in message.lower():
            continue
        found.append((_epoch(record.get("timestamp")), message))
    return found


def _epoch(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


# --- the report ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p90: the smallest value with >= 90 % of values at or below it)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def distribution(values: Sequence[float]) -> str:
    if not values:
        return "no values"
    return (
        f"median {statistics.median(values):.2f} s, p90 {percentile(values, 0.9):.2f} s, "
        f"min {min(values):.2f} s, max {max(values):.2f} s"
    )


def report(rounds: Sequence[Sequence[Race]], runs_asked: int, death: str, wall: float) -> tuple[str, bool]:
    """The printed report, and whether every round ran exactly one VM and ended healthy."""
    lines = [f"rounds: {len(rounds)} of {runs_asked} asked (--death {death}), {wall:.0f} s wall"]
    ok = len(rounds) == runs_asked
    one_vm_rounds = sum(1 for races in rounds if len(races) == len(RACES) and all(r.one_vm for r in races))
    clean_rounds = sum(
        1 for races in rounds if len(races) == len(RACES) and all(r.one_vm and r.problem is None for r in races)
    )
    lines.append(f"rounds in which each race ran exactly one VM: {one_vm_rounds} of {len(rounds)}")
    lines.append(f"rounds ending both races with one healthy engine and nothing amiss: {clean_rounds} of {len(rounds)}")
    ok = ok and clean_rounds == len(rounds)
    for name in RACES:
        races = [r for races in rounds for r in races if r.name == name]
        one = sum(1 for r in races if r.one_vm)
        healthy = [r.healthy for r in races if r.healthy is not None]
        running = [r.vm_running for r in races if r.vm_running is not None]
        winners = Counter(r.winner for r in races if r.winner)
        tries = Counter(len(r.started) for r in races)
        waits: Counter[str] = Counter()
        for r in races:
            waits.update(r.lease_waits)
        lines.append(f"\n{name} race: {len(races)} run, exactly one VM in {one}, one healthy engine in {len(healthy)}")
        lines.append(f"  time to one healthy engine (EngineUp): {distribution(healthy)}")
        lines.append(f"  time to the VM running:                {distribution(running)}")
        contested = sum(1 for r in races if any("lease-busy" in e.message for e in r.lease_errors))
        lines.append(
            f"  decided by the lease (another host's acquire refused, lease-busy): {contested} of {len(races)}"
        )
        lines.append(
            f"  winners: {dict(sorted(winners.items()))}; hosts with start.ok per race: {dict(sorted(tries.items()))}"
        )
        lines.append(f"  waiting decisions (not errors): {dict(sorted(waits.items())) or 'none'}")
        for r in races:
            if r.problem is not None:
                lines.append(f"  round {r.round}: {r.problem}")
    errors = [e for races in rounds for r in races for e in r.lease_errors]
    lines.append(f"\nlease errors: {len(errors)}")
    grouped: dict[tuple[str, str, str], list[LeaseError]] = defaultdict(list)
    for error in errors:
        grouped[(error.race, error.source, _generic(error.message))].append(error)
    for (race, source, message), seen in sorted(grouped.items(), key=lambda item: -len(item[1])):
        lines.append(f"  {len(seen):>4} x [{race}, {source}] {message}")
        where = [f"r{e.round}/{e.host}" for e in seen]  # every occurrence: round / host that saw it
        lines.extend("         " + ", ".join(where[i : i + 12]) for i in range(0, len(where), 12))
    return "\n".join(lines), ok


def _generic(message: str) -> str:
    """The message with the parts that differ from run to run (paths, pids) replaced, for grouping."""
    words: list[str] = []
    for word in message.split():
        if "/tmp/" in word or "/var/tmp/" in word:
            word = word.split("/", 1)[0] + "<path>"
        elif word.startswith("pid=") and word[4:].isdigit():
            word = "pid=<pid>"
        elif word.isdigit() and words and words[-1] == "pid":
            word = "<pid>"
        words.append(word)
    return " ".join(words)[:400]


def record_line(race: Race) -> str:
    """One race as a JSON line of a --record file."""
    fields = {**vars(race), "lease_waits": dict(race.lease_waits), "lease_errors": [vars(e) for e in race.lease_errors]}
    return json.dumps(fields) + "\n"


def load_record(path: Path) -> list[list[Race]]:
    """The rounds of a --record file (one JSON line per race), in round order."""
    rounds: dict[int, list[Race]] = defaultdict(list)
    for line in path.read_text().splitlines():
        fields = json.loads(line)
        fields["lease_errors"] = [LeaseError(**e) for e in fields.get("lease_errors", [])]
        fields["lease_waits"] = Counter(fields.get("lease_waits", {}))
        rounds[fields["round"]].append(Race(**fields))
    return [rounds[index] for index in sorted(rounds)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="rounds (each a fresh cluster, both races)")
    parser.add_argument(
        "--death",
        choices=("kill", "crash"),
        default="kill",
        help="how the engine host dies in the failover race (see the module doc)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="start no new round after this many seconds (the report says how many ran)",
    )
    parser.add_argument(
        "--record", type=Path, default=None, help="append each race as a JSON line to this file (for later analysis)"
    )
    parser.add_argument(
        "--keep-failed",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy the hosts' decision and supervisor logs of each round that went wrong here",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        default=None,
        metavar="RECORD",
        help="run nothing: print the report of the races in a --record file",
    )
    args = parser.parse_args(argv)
    if args.report_from is not None:
        loaded = load_record(args.report_from)
        text, ok = report(loaded, len(loaded), args.death, 0.0)
        print(text)
        return 0 if ok else 1
    configure_logging(level="WARNING")
    stop = threading.Event()  # SIGTERM: finish the round under way, then report
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    began = time.monotonic()
    rounds: list[list[Race]] = []
    for index in range(1, args.runs + 1):
        if stop.is_set() or (args.max_seconds is not None and time.monotonic() - began > args.max_seconds):
            break
        round_began = time.monotonic()
        try:
            races = run_round(index, args.death, args.keep_failed)
        except Exception as exc:  # the harness failed (a daemon did not start): a failed round
            races = [Race(index, "start", problem=f"round failed: {type(exc).__name__}: {exc}")]
        rounds.append(races)
        if args.record is not None:
            with args.record.open("a") as record:
                for race in races:
                    record.write(record_line(race))
        summary = ", ".join(
            f"{r.name}: {'one VM' if r.one_vm else 'NOT ONE VM'} "
            f"{f'{r.healthy:.2f} s' if r.healthy is not None else '-'} {r.winner or ''}"
            f"{f' lease errors {len(r.lease_errors)}' if r.lease_errors else ''}"
            f"{' PROBLEM: ' + r.problem if r.problem else ''}"
            for r in races
        )
        print(f"round {index}: {summary} ({time.monotonic() - round_began:.1f} s)", flush=True)
    text, ok = report(rounds, args.runs, args.death, time.monotonic() - began)
    print("\n" + text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
