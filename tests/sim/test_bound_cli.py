"""``he-ha failover-bound``: the printed bound follows the formula, and every unsafe timing
combination is reported (exit 1) while the defaults are clean (exit 0)."""

from __future__ import annotations

import json

import pytest

from he_ha.lease import host_dead_seconds
from he_ha.main import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["failover-bound", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_defaults_have_no_findings_and_the_documented_bound(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys)
    assert code == 0
    assert report["findings"] == []
    assert report["host_crash"]["lease_free"] == host_dead_seconds(10) == 140
    # 140 + the lease watch's 1 s + lease back-off 20 + start 2, then + boot 60 (docs/fsm.md)
    assert report["host_crash"]["vm_running"] == 163
    assert report["host_crash"]["engine_healthy"] == 223
    assert report["any_fault"]["total"] == 702
    # Host priorities (issue 14): + priority_start_delay 30 s, what the random schedules with
    # differing priorities are checked against.
    assert report["any_fault_with_priorities"] == {"priority_start_delay": 30, "ready": 660, "total": 732}
    _, report = run_json(capsys, "--timing", "priority_start_delay=5")
    assert report["any_fault_with_priorities"]["total"] == 707


def test_vm_crash_without_a_peer_restarts_here(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14: the crash's tick restarts the VM here: start + boot, one tick more at worst."""
    _, report = run_json(capsys)
    assert report["vm_crash_no_peer"] == {
        "vm_running": 2,
        "engine_healthy": 62,
        "vm_running_worst": 12,
        "engine_healthy_worst": 72,
        "backoffs": [0, 10, 20],
        "at_limit": 560 + 10 + 2 + 60,
    }
    _, report = run_json(capsys, "--timing", "restart_backoff=5", "--timing", "max_retries=4", "--vm-boot", "300")
    assert report["vm_crash_no_peer"]["backoffs"] == [0, 5, 10, 20]
    assert report["vm_crash_no_peer"]["engine_healthy"] == 302


def test_the_simulator_meets_the_vm_crash_bound() -> None:
    """The single-host golden scenario's outage equals the bound the command prints."""
    from pathlib import Path

    from he_ha.sim import World, load_scenario
    from he_ha.sim.world import engine_outages

    scenario = load_scenario(Path(__file__).parent / "scenarios" / "single-host-vm-crash" / "events.yaml")
    outages = [(s, e) for s, e in engine_outages(World(scenario).run().engine_ok, scenario.until) if s >= 300]
    [(start, end)] = outages
    assert end is not None and end - start == 62.0  # = vm_crash_no_peer.engine_healthy


def test_io_timeout_moves_the_host_crash_bound(capsys: pytest.CaptureFixture[str]) -> None:
    _, report = run_json(
        capsys,
        "--io-timeout",
        "1",
        "--tick-period",
        "1",
        "--timing",
        "lease_busy_backoff=2",
        "--vm-start",
        "0.5",
        "--vm-boot",
        "0",
    )
    assert report["host_crash"] == {"lease_free": 68, "vm_running": 71.5, "engine_healthy": 71.5}


@pytest.mark.parametrize(
    ("args", "severity", "words"),
    [
        (["--timing", "view_max_age=12"], "error", "no host will ever start the VM"),
        (["--timing", "liveness=20"], "warning", "live peer look dead"),
        (["--timing", "starting_timeout=30"], "warning", "stopped before it finishes booting"),
        (["--health-grace", "10"], "warning", "booting engine counts as unhealthy"),
        (["--timing", "stop_timeout=10", "--timing", "action_timeout=300"], "warning", "shutting down cleanly"),
        (["--timing", "action_timeout=1"], "error", "every start is declared failed"),
        (["--timing", "action_timeout=100"], "warning", "waits out a dead holder"),
        (["--monitor-interval", "90"], "warning", "readings older than"),
    ],
)
def test_each_unsafe_combination_is_named(
    capsys: pytest.CaptureFixture[str], args: list[str], severity: str, words: str
) -> None:
    code, report = run_json(capsys, *args)
    assert code == 1
    assert [f["severity"] for f in report["findings"] if words in f["message"]] == [severity], report["findings"]


def test_text_report_names_the_terms_and_findings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["failover-bound", "--timing", "liveness=20"]) == 1
    out = capsys.readouterr().out
    assert "its VM lease is free after         140.0 s" in out
    assert "restarted here, the VM runs by       2.0 s  (12.0 s if the VM event is missed)" in out
    assert "dead holder's lease frees (H)" in out
    assert "WARNING: liveness 20 s" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timing", "bogus=1"], "unknown timing key 'bogus'"),
        (["--timing", "liveness"], "expected KEY=SECONDS"),
        (["--timing", "history=10"], "must exceed liveness"),
    ],
)
def test_bad_timing_exits_2_naming_it(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["failover-bound", *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_flag_value_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["failover-bound", "--vm-boot", "-5"])
    assert exited.value.code == 2
    assert "must be >= 0" in capsys.readouterr().err
