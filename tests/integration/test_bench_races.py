"""bench/bench_races.py cannot rot: one real round (root, slow), and its judging and report
logic on made-up rounds (quick), so a bench that miscounts copies or lease errors fails here."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # mypy reads bench/ as top-level modules; at run time _load puts it in sys.modules
    from bench_races import Race

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_races.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_races", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_races"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


races = _load()


@pytest.mark.slow
@pytest.mark.root
def test_one_round_runs_one_vm_in_both_races_and_reports_it() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^round 1: start: one VM \d+\.\d\d s host\d.*, failover: one VM \d+\.\d\d s host\d", out, re.M), (
        out
    )
    assert "rounds: 1 of 1 asked (--death kill)" in out, out
    assert "rounds in which each race ran exactly one VM: 1 of 1" in out, out
    assert "rounds ending both races with one healthy engine and nothing amiss: 1 of 1" in out, out
    for name in ("start", "failover"):
        assert re.search(rf"^{name} race: 1 run, exactly one VM in 1, one healthy engine in 1$", out, re.M), out
    assert re.search(r"^lease errors: \d+$", out, re.M), out


def _race(
    round_: int, name: str, *, one_vm: bool = True, healthy: float | None = 5.0, problem: str | None = None
) -> Race:
    return races.Race(
        round_,
        name,
        one_vm=one_vm,
        healthy=healthy,
        vm_running=healthy,
        winner="host1",
        started=["host1"],
        problem=problem,
    )


def test_the_report_counts_a_round_with_two_copies_and_fails() -> None:
    good = [_race(1, "start"), _race(1, "failover", healthy=3.0)]
    bad = [_race(2, "start"), _race(2, "failover", one_vm=False, problem="two copies of the engine VM: ...")]
    text, ok = races.report([good, bad], 2, "kill", 50.0)
    assert not ok
    assert "rounds in which each race ran exactly one VM: 1 of 2" in text
    assert "failover race: 2 run, exactly one VM in 1, one healthy engine in 2" in text
    assert "round 2: two copies of the engine VM: ..." in text


def test_the_report_fails_when_fewer_rounds_ran_than_asked_or_a_race_was_not_run() -> None:
    rounds = [[_race(1, "start"), _race(1, "failover")]]
    assert races.report(rounds, 1, "kill", 1.0)[1]
    assert not races.report(rounds, 2, "kill", 1.0)[1]
    only_start = [[_race(1, "start", problem="no failover")]]
    text, ok = races.report(only_start, 1, "kill", 1.0)
    assert not ok and "rounds in which each race ran exactly one VM: 0 of 1" in text


def test_time_distribution_is_median_nearest_rank_p90_min_max() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert races.percentile(values, 0.9) == 9.0
    assert races.percentile([4.0], 0.9) == 4.0
    assert races.distribution(values) == "median 5.50 s, p90 9.00 s, min 1.00 s, max 10.00 s"
    rounds = [[_race(n, "start", healthy=float(n)), _race(n, "failover")] for n in range(1, 11)]
    text, _ = races.report(rounds, 10, "kill", 1.0)
    assert "time to one healthy engine (EngineUp): median 5.50 s, p90 9.00 s, min 1.00 s, max 10.00 s" in text


def _entry(rule: str, result: dict | None = None) -> dict:
    return {"observation": {"result": result}, "record": {"rule": rule, "note": "n"}, "meta": {"started": 1.0}}


def test_lease_errors_in_decisions_are_busy_or_failed_lease_results_and_lease_safety_rules() -> None:
    busy = {"seq": 3, "outcome": "lease-busy", "reason": "held by another live host (-243)"}
    assert races.decision_lease_errors(_entry("start.lease-busy", busy)) == [
        "action result lease-busy: held by another live host (-243)"
    ]
    failed = {"seq": 3, "outcome": "failed", "reason": "VM lease: acquire timed out"}
    assert races.decision_lease_errors(_entry("start.failed", failed)) == [
        "action result failed: VM lease: acquire timed out"
    ]
    assert races.decision_lease_errors(_entry("start.failed", {"outcome": "failed", "reason": "start: no XML"})) == []
    assert races.decision_lease_errors(_entry("start.ok", {"outcome": "ok", "reason": "lease acquired"})) == []
    assert races.decision_lease_errors(_entry("safety.lease-lost")) == ["rule safety.lease-lost: n"]
    assert races.decision_lease_errors(_entry("down.lease-held")) == []  # waiting, not an error


def test_lease_errors_in_logs_are_warnings_and_errors_naming_the_lease() -> None:
    lines = [
        json.dumps(
            {
                "event": "VM lease release failed",
                "level": "error",
                "error": "x",
                "timestamp": "2026-12-05T10:00:00.000000Z",
            }
        ),
        json.dumps({"event": "lease acquired", "level": "info", "timestamp": "2026-12-05T10:00:01Z"}),
        json.dumps({"event": "tick slow", "level": "warning", "timestamp": "2026-12-05T10:00:02Z"}),
        "Traceback (most recent call last): LeaseError: boom",
        "plain text without the word",
    ]
    found = races.log_lease_errors(lines)
    assert [message for _, message in found] == [
        "error: VM lease release failed error=x",
        "Traceback (most recent call last): LeaseError: boom",
    ]
    assert found[0][0] == pytest.approx(1796464800.0)
    assert found[1][0] is None


def test_a_record_file_gives_back_the_same_report(tmp_path: Path) -> None:
    busy = races.LeaseError(1, "failover", "host2", "decision", "action result lease-busy: held")
    first = [_race(1, "start"), _race(1, "failover", healthy=3.0)]
    first[1].lease_errors.append(busy)
    first[1].lease_waits["down.lease-held"] = 4
    rounds = [first, [_race(2, "start", healthy=7.0), _race(2, "failover", one_vm=False, problem="two")]]
    record = tmp_path / "record.jsonl"
    with record.open("w") as out:
        for race in [r for round_ in rounds for r in round_]:
            out.write(races.record_line(race))
    loaded = races.load_record(record)
    assert races.report(loaded, 2, "kill", 0.0) == races.report(rounds, 2, "kill", 0.0)
    text, ok = races.report(loaded, 2, "kill", 0.0)
    assert not ok
    assert "decided by the lease (another host's acquire refused, lease-busy): 1 of 2" in text
    assert "waiting decisions (not errors): {'down.lease-held': 4}" in text
    assert "1 x [failover, decision] action result lease-busy: held\n         r1/host2" in text


def test_lease_errors_differing_only_in_paths_and_pids_are_grouped() -> None:
    errors = [
        races.LeaseError(
            n,
            "failover",
            "host1",
            "log",
            f"warning: inquire on holder pid {pid} failed pid={pid} at /tmp/he-ha-sv-{pid}/x",
        )
        for n, pid in ((1, 31838), (2, 10153))
    ]
    start, failover = _race(1, "start"), _race(1, "failover")
    failover.lease_errors.extend(errors)
    text, _ = races.report([[start, failover]], 1, "kill", 0.0)
    assert (
        "2 x [failover, log] warning: inquire on holder pid <pid> failed pid=<pid> at <path>\n"
        "         r1/host1, r2/host1"
    ) in text
