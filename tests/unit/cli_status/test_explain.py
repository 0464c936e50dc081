"""``--explain``: decision records from a real admin server over a real socket, rendered.

``decisions.json`` holds records captured from a real two-host he-ha cluster (host 1 starts
the VM; host 2 sees it elsewhere); their ``state``/``observation`` parts are stripped, as
the renderer reads only ``record`` and ``meta``. ``golden/explain_host1.txt`` was produced by
the renderer and then checked line by line against those records (times, rules, notes,
scores, peers, lease); ``test_every_field_of_a_synthetic_record`` is written by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli.status_explain import merge
from he_ha.fsm import (
    ActionResult,
    ClusterView,
    DecisionInputs,
    DecisionRecord,
    EngineHealth,
    MigrateVm,
    Notify,
    Outcome,
    PeerRecord,
    Penalty,
    ReleaseLease,
    ScoreBreakdown,
    to_json,
)
from tests.unit.cli_status.conftest import HostFiles, Result, golden
from tests.unit.cli_status.daemon import FixtureDaemon
from tests.unit.cli_status.fixtures import STATUSES

Run = Callable[..., Result]
RECORDS = json.loads((Path(__file__).parent / "decisions.json").read_text())


def serve(host: HostFiles, decisions: list[dict[str, Any]]) -> FixtureDaemon:
    return FixtureDaemon(host.socket, STATUSES["normal"](), decisions)


def test_latest_decisions_match_golden(host: HostFiles, run: Run) -> None:
    with serve(host, RECORDS["host1"]):
        result = run("--explain")
    assert (result.code, result.err) == (0, "")
    assert result.out == golden("explain_host1.txt")


def test_limit_reaches_back_to_the_start(host: HostFiles, run: Run) -> None:
    with serve(host, RECORDS["host1"]):
        result = run("--explain", "--limit=100")
    assert result.code == 0
    assert result.out.startswith("The latest 7 decisions of the he-ha daemon of host id 1, newest last:\n\n")
    headers = [line for line in result.out.splitlines() if line.startswith("2026-")]
    assert [h.split("  ")[1:3] for h in headers] == [
        ["ReinitializeFSM -> ReinitializeFSM", "[reinit.await-health]"],
        ["ReinitializeFSM -> EngineDown", "[reinit.vm-down]"],
        ["EngineDown -> EngineDown", "[down.view-immature]"],
        ["EngineDown -> EngineStart", "[down.start]"],
        ["EngineStart -> EngineStarting", "[start.ok]"],
        ["EngineStarting -> EngineUp", "[starting.up]"],
        ["EngineUp -> EngineUp", "[up.ok]"],
    ]
    assert sum(1 for _ in RECORDS["host1"]) == 13  # 1 + 1 + 4 + 1 + 1 + 1 + 4 records


def test_why_not_here(host: HostFiles, run: Run) -> None:
    """Host 2's view: the engine runs on host 1, so it stays down; says where and why."""
    with serve(host, RECORDS["host2"]):
        result = run("--explain", "--limit=1")
    assert result.out.splitlines()[2:] == [
        "2026-11-21T16:17:04.145+00:00  EngineDown -> EngineDown  [down.engine-elsewhere]"
        "  x5, the newest at 2026-11-21T16:17:07.162+00:00",
        "    why          : a live peer runs the engine",
        "    note         : engine on host 1",
        "    woken by     : peer-change (peer slots changed), periodic",
        "    actions      : none",
        "    score here   : 2400 = base 3400 - penalties 1000",
        "                   - cpu -1000: non-engine CPU load 0.91",
        '    engine here  : {"vm": "down", "health": "bad", "detail": "unknown", '
        '"reason": "vm not running on this host"}',
        '    best engine  : host1 (id 1): {"vm": "up", "health": "good", "detail": "Up"}',
        "    best peer    : host1 (id 1), score 2956",
        '    live peers   : host1 (id 1): score 2956, {"vm": "up", "health": "good", "detail": "Up"}',
        "    VM lease     : held by host id 1",
    ]


def test_json_gives_the_records_behind_the_shown_decisions(host: HostFiles, run: Run) -> None:
    with serve(host, RECORDS["host1"]):
        result = run("--explain", "--limit=1", "--json")
    assert result.code == 0 and result.out.count("\n") == 1
    assert json.loads(result.out) == {"decisions": RECORDS["host1"][-4:]}  # the four merged up.ok records


def synthetic_entry() -> dict[str, Any]:
    """A decision exercising every optional line: written field by field, expected text by hand."""
    peer = PeerRecord(3, 500, 3400, EngineHealth("down", "bad", "unknown"), "host3")
    record = DecisionRecord(
        host_id=1,
        now=100.0,
        from_state="EngineUp",
        to_state="LocalMaintenanceMigrateVm",
        rule="up.local-maintenance.migrate",
        note="",
        actions=(MigrateVm(7, 3, "host3"), ReleaseLease("test reason"), Notify("EngineUp-LocalMaintenanceMigrateVm")),
        score=ScoreBreakdown(3400, (Penalty("network", 319, "network test success 80%"),), "local maintenance", 0),
        inputs=DecisionInputs(
            local_health=None,
            local_maintenance=True,
            global_maintenance=False,
            storage_ok=None,
            cluster=ClusterView(
                mature=True,
                view_age=45.0,
                stale=True,
                alive=(peer,),
                too_new=(5,),
                unreadable=(6,),
                silent=(2,),
                fenced=(4,),
                best_engine_host=1,
                best_engine=None,
                best_score_host=peer,
            ),
            own_score=0,
            lease_owner=2,
            lease_held_here=False,
            result=ActionResult(6, Outcome.FAILED, "migration refused"),
            start_failures=2,
            outranked_since=None,
        ),
        tick_after=0.0,
        timeout_at=None,
    )
    return {
        "record": to_json(record),
        "meta": {
            "wall_time": "2026-03-03T10:00:00.000+00:00",
            "causes": [
                {"cause": "admin", "detail": "maintenance local", "at": 99.0},
                {"cause": "admin", "detail": "maintenance local", "at": 99.5},
            ],
        },
    }


def test_every_field_of_a_synthetic_record(host: HostFiles, run: Run) -> None:
    with serve(host, [synthetic_entry()]):
        result = run("--explain")
    assert result.code == 0
    assert result.out == (
        "The latest decision of the he-ha daemon of host id 1, newest last:\n"
        "\n"
        "2026-03-03T10:00:00.000+00:00  EngineUp -> LocalMaintenanceMigrateVm  [up.local-maintenance.migrate]\n"
        "    why          : local maintenance: migrate the VM away\n"
        "    woken by     : admin (maintenance local)\n"
        "    actions      : migrate the VM to host3 (id 3) (request 7)\n"
        "                   release the VM lease: test reason\n"
        "    score here   : 0, forced: local maintenance (base 3400, penalties 319)\n"
        "                   - network -319: network test success 80%\n"
        "    engine here  : no reading yet\n"
        "    best engine  : this host\n"
        "    best peer    : host3 (id 3), score 3400\n"
        '    live peers   : host3 (id 3): score 3400, {"vm": "down", "health": "bad", "detail": "unknown"}\n'
        "    other hosts  : silent (sanlock live, whiteboard not updated): 2\n"
        "                   fenced (sanlock dead): 4\n"
        "                   unreadable slot: 6\n"
        "                   newer metadata version: 5\n"
        "    view         : stale whiteboard (45.0 s old)\n"
        "    VM lease     : held by host id 2\n"
        "    maintenance  : local\n"
        "    storage      : state unknown\n"
        "    result       : request 6: failed (migration refused)\n"
        "    failed starts: 2 inside the retry window\n"
    )


def test_decisions_that_act_are_never_merged() -> None:
    entry = synthetic_entry()
    quiet = RECORDS["host1"][-1]
    assert [len(d.entries) for d in merge([entry, entry, quiet, quiet, quiet])] == [1, 1, 3]


def test_empty_log(host: HostFiles, run: Run) -> None:
    with serve(host, []):
        result = run("--explain")
    assert (result.code, result.out) == (0, "The he-ha daemon has not recorded a decision yet.\n")
    with serve(host, []):
        assert json.loads(run("--explain", "--json").out) == {"decisions": []}


def test_unreadable_record_is_named(host: HostFiles, run: Run) -> None:
    entry = synthetic_entry()
    entry["record"]["to_state"] = 42
    with serve(host, [entry]):
        result = run("--explain")
    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("the decision record of 2026-03-03T10:00:00.000+00:00 cannot be read: record.to_state")


def test_daemon_down(host: HostFiles, run: Run) -> None:
    result = run("--explain")
    reason = f"the he-ha daemon does not answer on {host.socket}: [Errno 2] No such file or directory"
    assert (result.code, result.out) == (1, "")
    assert result.err == f"{reason}\nCannot connect to the HA daemon, please check the logs.\n"
    as_json = run("--explain", "--json")
    assert as_json.code == 1
    assert json.loads(as_json.out) == {"exception": f"{reason} Cannot connect to the HA daemon, please check the logs."}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit=x"], "--explain: --limit takes a whole number from 1 to 1000; got 'x'"),
        (["--limit=0"], "--explain: --limit takes a whole number from 1 to 1000; got '0'"),
        (["--limit=1001"], "--explain: --limit takes a whole number from 1 to 1000; got '1001'"),
        (["--limit=-3"], "--explain: --limit takes a whole number from 1 to 1000; got '-3'"),
        (["--limit"], "--explain: option --limit needs a value: --limit=<value>"),
        (["--bogus"], "Invalid option '--bogus' for --explain"),
    ],
)
def test_bad_flags(host: HostFiles, run: Run, args: list[str], message: str) -> None:
    result = run("--explain", *args)
    assert (result.code, result.out, result.err) == (1, "", message + "\n")


def test_help(run: Run) -> None:
    result = run("--help", "--explain")
    assert result.code == 0
    assert result.out.startswith("Usage: hosted-engine --explain [--limit=<n>] [--json]\n    Explain the latest")
