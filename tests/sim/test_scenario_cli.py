"""Scenario files: validation errors name what is wrong; the simulate command's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from he_ha.fsm import replay_matches
from he_ha.sim import ScenarioError, parse_scenario

GOLDEN = Path(__file__).parent / "scenarios"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a scenario is a mapping"),
        ({"hostz": 2}, "unknown key(s) ['hostz']"),
        ({"hosts": 0}, "hosts must be 1..50"),
        ({"hosts": [{"id": 1}, {"id": 1}]}, "distinct ids"),
        ({"hosts": [{"id": 1, "colour": "red"}]}, "unknown key hosts[0].colour"),
        ({"hosts": [{"id": 1, "priority": "high"}]}, "hosts[0].priority must be an integer, got 'high'"),
        ({"timing": {"failback": "yes"}}, "timing 'failback' must be true or false"),
        ({"until": -5}, "until must be a number >= 0"),
        ({"sim": {"io_timeout": "ten"}}, "sim.io_timeout must be a number"),
        ({"sim": {"iotimeout": 10}}, "unknown key sim.iotimeout"),
        ({"timing": {"liveness": 0}}, "timing: timing 'liveness' must be > 0"),
        ({"score": {"base-score": -1}}, "score: base-score"),
        ({"events": [{"at": 10, "do": "explode"}]}, "events[0]: unknown command 'explode'"),
        ({"events": [{"at": 10, "do": "power-off"}]}, "events[0]: power-off needs 'host'"),
        ({"events": [{"at": 10, "do": "power-off", "host": 9}]}, "names host 9, which is not in hosts [1, 2]"),
        ({"events": [{"at": 10, "do": "network", "host": 1, "value": 2}]}, "network value must be a fraction"),
        ({"events": [{"at": 10, "do": "global-maintenance", "value": "yes"}]}, "value must be true or false"),
        ({"events": [{"do": "vm-crash"}]}, "events[0].at must be a number"),
        ({"events": [{"at": 1, "do": "vm-crash", "when": 2}]}, "unknown key(s) ['when']"),
    ],
)
def test_invalid_scenarios_name_the_problem(data: object, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert message in str(caught.value)


def test_defaults_and_event_order() -> None:
    scenario = parse_scenario({"events": [{"at": 50, "do": "vm-crash"}, {"at": 10, "do": "power-off", "host": 2}]})
    assert [h.hostname for h in scenario.hosts] == ["host1", "host2"]
    assert [e.at for e in scenario.events] == [10, 50] and scenario.until == 900
    assert parse_scenario(scenario.to_mapping()) == scenario  # the printed schedule reloads as itself
    prioritized = parse_scenario({"hosts": [{"id": 1, "priority": 3}, {"id": 2}], "timing": {"failback": True}})
    assert [h.priority for h in prioritized.hosts] == [3, 0] and prioritized.timing.failback is True
    assert parse_scenario(prioritized.to_mapping()) == prioritized


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "he_ha.sim", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_prints_the_golden_log_and_outages(tmp_path: Path) -> None:
    done = _simulate(str(GOLDEN / "vm-crash" / "events.yaml"), "--decisions", str(tmp_path / "d.jsonl"))
    assert done.returncode == 0, done.stderr
    expected = (GOLDEN / "vm-crash" / "expected.log").read_text()
    assert done.stdout.startswith(expected)
    assert "engine down from 300.0: 65.0 s" in done.stdout  # the golden vm-crash outage (expected.log)
    entries = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(entries) > 100 and all(replay_matches(e) for e in entries[::25])


def test_cli_random_seed_prints_its_schedule() -> None:
    done = _simulate("--random", "5", "--until", "400")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# name: random-5") and "sim     end:" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [((), "give either a scenario file or --random SEED"), (("/nonexistent.yaml",), "cannot read")],
)
def test_cli_bad_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    done = _simulate(*args)
    assert done.returncode == 2 and message in done.stderr


def test_cli_invalid_file_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts: 2\nevents:\n  - {at: 1, do: teleport}\n")
    done = _simulate(str(bad))
    assert done.returncode == 2 and "unknown command 'teleport'" in done.stderr
