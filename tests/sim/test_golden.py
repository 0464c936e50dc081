"""Golden scenarios in the Proxmox style: tests/sim/scenarios/<name>/events.yaml is run and
its event log diffed against expected.log in the same directory.

Regenerate after an intended behaviour change with
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/sim/test_golden.py
and review the diff in git before committing. Each scenario also has semantic checks below,
so a regenerated log cannot silently bless a wrong behaviour.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from he_ha.fsm import log_entry, replay_matches
from he_ha.sim import SimResult, World, load_scenario
from he_ha.sim.world import engine_outages

SCENARIOS = Path(__file__).parent / "scenarios"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "events.yaml").exists())


def _run(name: str) -> SimResult:
    return World(load_scenario(SCENARIOS / name / "events.yaml")).run()


@pytest.mark.parametrize("name", NAMES)
def test_golden_log(name: str) -> None:
    produced = "\n".join(_run(name).log) + "\n"
    expected_file = SCENARIOS / name / "expected.log"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_file.write_text(produced, encoding="utf-8")
    expected = expected_file.read_text(encoding="utf-8")
    if produced != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), produced.splitlines(), "expected.log", "produced", lineterm=""
        )
        pytest.fail(f"{name}: event log differs (UPDATE_GOLDEN=1 regenerates):\n" + "\n".join(diff))


def _lines(result: SimResult, text: str, after: float = 0.0) -> list[str]:
    return [line for line in result.log if text in line and float(line.split()[0]) >= after]


def _outages_after(result: SimResult, t: float) -> list[tuple[float, float | None]]:
    return [(s, e) for s, e in engine_outages(result.engine_ok, 10_000) if s >= t]


def _check_host_crash(r: SimResult) -> None:
    [(start, end)] = _outages_after(r, 300)
    assert end is not None and 140 <= end - start <= 140 + 10 + 2 + 60 + 10  # host-dead, tick, start, boot
    assert not _lines(r, "lease held by host1", after=300)  # with sanlock's status: no doomed attempts
    assert r.final_states[1] == "EngineDown"


def _check_host_crash_no_sanlock(r: SimResult) -> None:
    assert _lines(r, "lease-busy (lease held by host1)", after=300)  # it tries, sanlock refuses...
    assert not any("score=3350" in line for line in r.log)  # ...and that costs no score
    [(start, end)] = _outages_after(r, 300)
    assert end is not None and end - start < 140 + 20 + 10 + 2 + 60 + 10


def _check_vm_crash(r: SimResult) -> None:
    [(start, end)] = _outages_after(r, 300)
    assert end is not None and end - start <= 10 + 10 + 2 + 60 + 5
    assert _lines(r, "EngineUp -> EngineUnexpectedlyDown")


def _check_bad_health(r: SimResult) -> None:
    assert _lines(r, "[timeout.EngineUpBadHealth]") and _lines(r, "[timeout.EngineStop]")
    assert _lines(r, "vm destroyed")


def _check_gateway(r: SimResult) -> None:
    """The lasting loss yields by live migration (issue 14), after the dwell: no outage."""
    yields = _lines(r, "[up.yield.migrate]")
    assert len(yields) == 1 and float(yields[0].split()[0]) >= 400 + 60  # the 30 s blip did not count
    assert not _lines(r, "[up.yield]") and not _lines(r, "action shutdown")
    assert _lines(r, "host1   vm migrated to host2, lease moved") and _lines(r, "[migrating-away.done]")
    assert _outages_after(r, 200) == []
    assert r.final_states == {1: "EngineDown", 2: "EngineUp", 3: "EngineDown"}


def _check_gateway_migration_fails(r: SimResult) -> None:
    """The yield migration is refused; the cold path follows at the next step (not after
    another dwell): shutdown, a peer's cold start, one bounded outage."""
    [attempt] = _lines(r, "[up.yield.migrate]")
    [failed] = _lines(r, "[migrating-away.failed]")
    [cold] = _lines(r, "[up.yield]")
    assert float(attempt.split()[0]) >= 460 and float(cold.split()[0]) - float(failed.split()[0]) <= 10
    assert "live migration failed moments ago" in cold and _lines(r, "host1   action shutdown")
    [(start, end)] = _outages_after(r, 200)
    assert end is not None and end - start <= 30 + 10 + 10 + 2 + 60  # shutdown, publish/read, tick, start, boot
    started = _lines(r, "vm started")
    assert len(started) == 2 and "host1" not in started[1]
    assert r.final_states[1] == "EngineDown"


def _check_storage_stall(r: SimResult) -> None:
    kills = _lines(r, "kills the VM")
    assert len(kills) == 1 and float(kills[0].split()[0]) > 400  # the 50 s stall survived
    starts = _lines(r, "lease acquired, vm started")
    assert float(starts[-1].split()[0]) >= float(kills[0].split()[0]) + 60  # only after host-dead


def _check_race(r: SimResult) -> None:
    assert len(_lines(r, "EngineDown -> EngineStart")) == 2
    assert len(_lines(r, "lease-busy")) == 2 and len(_lines(r, "vm started")) == 1


def _check_global(r: SimResult) -> None:
    crash = float(_lines(r, "event vm-crash")[0].split()[0])
    restart = float(_lines(r, "vm started")[-1].split()[0])
    assert crash < 600 <= restart  # nobody acted during maintenance


def _check_local(r: SimResult) -> None:
    assert _outages_after(r, 200) == []  # migrations, never a stop
    assert _lines(r, "[up.local-maintenance.no-target]")
    assert r.final_states == {1: "LocalMaintenance", 2: "LocalMaintenance", 3: "EngineUp"}


def _check_local_migration_fails(r: SimResult) -> None:
    """A refused migration leaves the VM running on the source with its lease; then the safe
    path: shutdown, and the other host's cold start (issue 14). Never two copies (the world's
    safety watch), one bounded outage, the VM on host 2 in the end."""
    assert _lines(r, "[migrate.failed]") and _lines(r, "[up.local-maintenance.evacuate]")
    ((start, end),) = _outages_after(r, 200)
    assert end is not None and start >= 300
    started = _lines(r, "vm started")
    assert len(started) == 2 and "host2" in started[1]
    assert r.final_states == {1: "LocalMaintenance", 2: "EngineUp"}


def _check_cold_start(r: SimResult) -> None:
    started = _lines(r, "vm started")
    assert len(started) == 1 and "host3" in started[0]
    first_start = float(_lines(r, "-> EngineStart")[0].split()[0])
    assert first_start > 20 + 60  # no start before the history is older than the liveness time


def _check_supervisor_restart(r: SimResult) -> None:
    assert _outages_after(r, 200) == []
    assert _lines(r, "ReinitializeFSM -> EngineStarting [reinit.vm-up]")


def _check_slow_upgrade(r: SimResult) -> None:
    """Slow is not dead: 40 minutes of "answers, not ready" never stop the engine."""
    assert _lines(r, "EngineUp -> EngineUpBadHealth [up.not-ready]")
    assert not _lines(r, "EngineStop") and not _lines(r, "action shutdown") and not _lines(r, "action destroy")
    assert not _lines(r, "timeout.EngineUpBadHealth")
    assert _outages_after(r, 200) == [(300.0, 2700.0)]  # down exactly while not ready, then healthy again
    assert len(_lines(r, "vm started")) == 1 and r.final_states[1] == "EngineUp"


def _check_slow_start(r: SimResult) -> None:
    """A 25-minute start that answers all along is neither stopped nor counted as failed."""
    assert _lines(r, "EngineStarting [starting.not-ready]")
    assert not _lines(r, "timeout.EngineStarting") and not _lines(r, "EngineStop")
    assert not any("score=3350" in line for line in r.log)  # no failed start counted
    [up] = _lines(r, "EngineStarting -> EngineUp")
    assert float(up.split()[0]) >= 1600 and r.final_states[1] == "EngineUp"


def _check_not_ready_ceiling(r: SimResult) -> None:
    """Alive but never ready: stopped at the configured ceiling, not at the bad-health timeout."""
    [bad] = _lines(r, "[up.not-ready]")
    [ceiling] = _lines(r, "[up.not-ready-ceiling]")
    assert float(ceiling.split()[0]) - float(bad.split()[0]) == 1200
    assert not _lines(r, "timeout.EngineUpBadHealth")


def _check_single_host_crash(r: SimResult) -> None:
    """Restart locally first: down for start + boot (<= start + boot + one tick), not 632 s."""
    [(start, end)] = _outages_after(r, 300)
    assert end is not None and end - start <= 2 + 60 + 10
    assert _lines(r, "EngineUp -> EngineStart [vm-crashed.restart-here]")
    assert not _lines(r, "EngineUnexpectedlyDown")
    crash = float(_lines(r, "vm crashed")[0].split()[0])
    [restart] = _lines(r, "action start #2")
    assert float(restart.split()[0]) == crash  # at once, in the tick the crash triggered
    starts = _lines(r, "lease acquired, vm started")
    assert len(starts) == 2  # the lease is taken (again) before the launch


def _check_crash_peers_in_maintenance(r: SimResult) -> None:
    [(start, end)] = _outages_after(r, 300)
    assert end is not None and end - start <= 2 + 60 + 10
    assert _lines(r, "host1   EngineUp -> EngineStart [vm-crashed.restart-here]")
    assert r.final_states == {1: "EngineUp", 2: "LocalMaintenance", 3: "LocalMaintenance"}


def _check_crash_loop(r: SimResult) -> None:
    rules = [line.split("[")[1].split("]")[0] for line in _lines(r, "host1   EngineUp -> ")]
    assert rules == [
        "vm-crashed.restart-here",
        "vm-crashed.restart-backoff",
        "vm-crashed.restart-backoff",
        "up.vm-crashed",
    ]
    assert "retry limit reached" in _lines(r, "[up.vm-crashed]")[0]
    outages = [e - s for s, e in _outages_after(r, 300) if e is not None]
    assert outages[:3] == [62.0, 72.0, 82.0]  # at once, then after 10 s and 20 s of back-off
    assert 600 < outages[3] <= 560 + 10 + 2 + 60 + 10  # the limit: score 0 in EngineUnexpectedlyDown
    assert r.final_states[1] == "EngineUp"
    [gave_up] = _lines(r, "ALERT gave-up.retry-limit")  # escalation: HA gives up, once
    assert float(gave_up.split()[0]) == 620.0


def _actions_between(r: SimResult, start: float, end: float) -> list[str]:
    return [line for line in _lines(r, "action ", after=start) if float(line.split()[0]) < end]


def _check_gm_hands_off(r: SimResult) -> None:
    """Hands-off global maintenance: the administrator starts and stops the VM, he-ha never acts."""
    assert _actions_between(r, 300, 750) == []  # no start, stop, migrate or destroy
    [alert] = _lines(r, "ALERT vm-without-lease")
    assert alert.split()[:2] == ["400.0", "host1"]
    assert not _lines(r, "vm destroyed") and not _lines(r, "[safety.")
    assert _lines(r, "host2   ReinitializeFSM -> EngineStarting [reinit.vm-up]", after=750)  # adopted
    assert r.final_states == {1: "EngineDown", 2: "EngineUp", 3: "EngineDown"}


def _check_gm_second_copy(r: SimResult) -> None:
    """The exception: a second copy next to a live lease holder is destroyed at once, and reported."""
    [alert] = _lines(r, "ALERT second-copy-destroyed")
    assert alert.split()[:2] == ["400.0", "host2"]
    [destroy] = _actions_between(r, 300, 600)
    assert destroy.split()[:2] == ["400.0", "host2"] and "safety.foreign-lease" in destroy
    assert _outages_after(r, 200) == []  # the engine on host 1 was never touched
    assert r.final_states[1] == "EngineUp"


def _check_unleased_after_gm(r: SimResult) -> None:
    """Hands off only inside global maintenance: after it, the invariants apply again."""
    assert _actions_between(r, 300, 600) == []
    assert _lines(r, "ALERT vm-without-lease")
    [lost] = _lines(r, "[safety.lease-lost]")
    assert float(lost.split()[0]) == 600.0  # the tick that sees global maintenance end
    assert float(_lines(r, "lease acquired, vm started")[-1].split()[0]) > 600
    assert r.final_states[1] == "EngineUp"


def _check_no_eligible_host(r: SimResult) -> None:
    """Escalation: one alert for the cluster, after no_host_alert_after, cleared when a host can start."""
    [alert] = _lines(r, "ALERT gave-up.no-eligible-host")
    at, host = float(alert.split()[0]), alert.split()[1]
    assert host == "host1" and 400 + 300 <= at <= 400 + 300 + 20
    [cleared] = _lines(r, "alert cleared: gave-up.no-eligible-host")
    assert 1000 < float(cleared.split()[0]) < float(_lines(r, "vm started")[-1].split()[0])
    assert r.final_states == {1: "LocalMaintenance", 2: "EngineUp"}


def _rule_of(line: str) -> str:
    return line.split("[")[1].split("]")[0]


def _check_priority_cold_start(r: SimResult) -> None:
    """Host priorities: the preferred host gets the VM at a cold start of the whole cluster,
    although another host scores higher (inside the band); the others defer, nobody races."""
    [started] = _lines(r, "vm started")
    assert started.split()[1] == "host1"
    [start] = _lines(r, "-> EngineStart [")
    assert "host1" in start and _rule_of(start) == "down.start.preferred"
    defers = _lines(r, "[down.priority-defer]")
    assert {line.split()[1] for line in defers} == {"host2", "host3"}
    assert not _lines(r, "lease-busy") and not _lines(r, "expired")
    assert float(start.split()[0]) - float(defers[0].split()[0]) < 30  # well inside the bound
    assert r.final_states == {1: "EngineUp", 2: "EngineDown", 3: "EngineDown"}


def _check_priority_equal(r: SimResult) -> None:
    """Equal priorities (all 7) are the old behaviour: the cold-start log, line for line."""
    assert r.log == _run("cold-start").log
    assert not _lines(r, "priority")


def _check_priority_preferred_dead(r: SimResult) -> None:
    """The preferred host dies with the engine: failover as without priorities (host-crash's
    bound); it returns and, failback being off by default, the engine stays where it is."""
    assert "host3" in _lines(r, "vm started")[0]
    [(start, end)] = _outages_after(r, 300)
    assert end is not None and 140 <= end - start <= 140 + 10 + 2 + 60 + 10
    assert not _lines(r, "priority-defer", after=300)  # a dead host is never waited for
    assert not _lines(r, "failback") and len(_lines(r, "vm started")) == 2
    assert r.final_states == {1: "EngineUp", 2: "EngineDown", 3: "EngineDown"}


def _check_priority_preferred_stalls(r: SimResult) -> None:
    """A preferred host that looks ready but cannot start delays failover by the bound at most
    (priority_start_delay, 30 s); an ineligible one does not delay it at all."""
    [defer] = _lines(r, "host2   EngineDown [down.priority-defer]", after=400)
    [expired] = _lines(r, "[down.priority-defer.expired]", after=400)
    assert expired.split()[1] == "host2" and float(expired.split()[0]) - float(defer.split()[0]) == 30
    [(start, end), (start2, end2)] = _outages_after(r, 400)
    assert end is not None and end - start <= 10 + 10 + 30 + 2 + 60  # read, tick, the bound, start, boot
    assert end2 is not None and end2 - start2 <= 10 + 2 + 60  # host3 in local maintenance: no deferral
    assert _rule_of(_lines(r, "host1   EngineDown -> EngineStart", after=1000)[0]) == "down.start"
    assert r.final_states == {1: "EngineUp", 2: "EngineUnexpectedlyDown", 3: "LocalMaintenance"}


def _check_priority_failback(r: SimResult) -> None:
    """Failback on: only after the preferred host qualified for the whole dwell without a break
    (the network loss restarted it), by live migration, to that host, once, without an outage."""
    dwell = _lines(r, "[up.failback.dwell]")
    assert len(dwell) == 2 and _lines(r, "host1   EngineUp [up.ok]", after=400)  # the break reset it
    [failback] = _lines(r, "[up.failback.migrate]")
    assert failback.split()[1] == "host1" and float(failback.split()[0]) - float(dwell[-1].split()[0]) == 300
    assert float(dwell[-1].split()[0]) > 430  # counted from after the network came back
    assert _lines(r, "host1   vm migrated to host3, lease moved") and not _lines(r, "action shutdown")
    assert _outages_after(r, 700) == []
    assert r.final_states == {1: "EngineDown", 2: "EngineDown", 3: "EngineUp"}


CHECKS: dict[str, Callable[[SimResult], None]] = {
    "host-crash": _check_host_crash,
    "host-crash-without-sanlock-status": _check_host_crash_no_sanlock,
    "vm-crash": _check_vm_crash,
    "engine-bad-health": _check_bad_health,
    "gateway-loss": _check_gateway,
    "gateway-loss-migration-fails": _check_gateway_migration_fails,
    "storage-stall": _check_storage_stall,
    "two-hosts-start-at-once": _check_race,
    "global-maintenance": _check_global,
    "local-maintenance-migration": _check_local,
    "local-maintenance-migration-fails": _check_local_migration_fails,
    "cold-start": _check_cold_start,
    "supervisor-restart": _check_supervisor_restart,
    "engine-slow-upgrade": _check_slow_upgrade,
    "engine-slow-start": _check_slow_start,
    "engine-not-ready-ceiling": _check_not_ready_ceiling,
    "single-host-vm-crash": _check_single_host_crash,
    "vm-crash-peers-in-maintenance": _check_crash_peers_in_maintenance,
    "vm-crash-loop": _check_crash_loop,
    "global-maintenance-hands-off": _check_gm_hands_off,
    "global-maintenance-second-copy": _check_gm_second_copy,
    "unleased-vm-after-global-maintenance": _check_unleased_after_gm,
    "no-eligible-host": _check_no_eligible_host,
    "priority-cold-start": _check_priority_cold_start,
    "priority-equal": _check_priority_equal,
    "priority-preferred-host-dead": _check_priority_preferred_dead,
    "priority-preferred-host-stalls": _check_priority_preferred_stalls,
    "priority-failback": _check_priority_failback,
}


def test_every_scenario_has_semantic_checks() -> None:
    assert set(CHECKS) == set(NAMES)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_scenario_semantics(name: str) -> None:
    CHECKS[name](_run(name))


def test_every_decision_of_a_run_replays() -> None:
    """Decision records of a whole simulated run, through JSON, reproduce themselves."""
    result = World(load_scenario(SCENARIOS / "local-maintenance-migration" / "events.yaml"), record_steps=True).run()
    assert len(result.recorded) > 200
    for state, observation, record in result.recorded:
        assert replay_matches(json.loads(json.dumps(log_entry(state, observation, record))))


@pytest.mark.parametrize(
    "name",
    [
        "vm-crash-loop",
        "global-maintenance-hands-off",
        "no-eligible-host",
        "engine-slow-start",
        "priority-preferred-host-stalls",
        "priority-failback",
    ],
)
def test_issue_14_decisions_replay(name: str) -> None:
    """Records with alerts, liveness, crash restarts, priorities and failback survive JSON and
    replay exactly."""
    result = World(load_scenario(SCENARIOS / name / "events.yaml"), record_steps=True).run()
    for state, observation, record in result.recorded:
        assert replay_matches(json.loads(json.dumps(log_entry(state, observation, record))))
