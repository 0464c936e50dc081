"""Host priorities and failback (issue 14 item 3): the start order inside the band, the bounded
deferral to a better-priority peer, failback only when configured, with its dwell and its
back-off, and the published priority."""

from __future__ import annotations

from dataclasses import replace

import pytest

from he_ha.fsm import (
    FsmState,
    LeaseStatus,
    MigrateVm,
    Observation,
    Outcome,
    Publish,
    SanlockHost,
    ShutdownVm,
    TimingConfig,
    TimingError,
    step,
    stop,
)
from he_ha.fsm import StateName as S
from he_ha.fsm.cluster_view import Snapshot
from tests.unit.fsm.builders import DOWN, OWN, T0, UNKNOWN, UP_GOOD, Peer, obs, peer, result, state_in

FAILBACK = TimingConfig(failback=True)


def _steps(state: FsmState, *observations: Observation) -> tuple[FsmState, list[str]]:
    rules = []
    for observation in observations:
        state, _, record = step(state, observation)
        rules.append(record.rule)
    return state, rules


# --- the start order -------------------------------------------------------------------------------


def test_equal_priorities_keep_the_original_rule() -> None:
    for prio in (0, 7, -3):
        higher, same = peer(score=3401 - 1, priority=prio), peer(priority=prio)
        _, _, record = step(state_in(S.ENGINE_DOWN, priority=prio, peers=(same,)), obs(DOWN, peers=(same,)))
        assert record.rule == "down.start"  # a tie: every tied host tries, the lease admits one
        state = state_in(S.ENGINE_DOWN, priority=prio, peers=(higher,))
        _, _, record = step(state, obs(DOWN, network=0.8, peers=(higher,)))
        assert record.rule == "down.better-host" and record.note == "host 2 scores 3400 > 3081"


def test_the_better_priority_starts_inside_the_band_whatever_the_scores() -> None:
    low = peer(priority=0)  # 3400
    _, _, record = step(state_in(S.ENGINE_DOWN, priority=5, peers=(low,)), obs(DOWN, network=0.6, peers=(low,)))
    assert record.inputs.own_score == 3400 - 640 and record.rule == "down.start.preferred"
    # The other side of the same pair defers to it.
    me = peer(priority=5, score=2760)
    _, _, record = step(state_in(S.ENGINE_DOWN, peers=(me,)), obs(DOWN, peers=(me,)))
    assert record.rule == "down.priority-defer" and "host 2 (priority 5 > 0, score 2760)" in record.note


def test_a_score_lower_by_the_threshold_loses_whatever_the_priority() -> None:
    weak = peer(priority=9, score=2600)  # exactly 800 below us: outside the band
    _, _, record = step(state_in(S.ENGINE_DOWN, peers=(weak,)), obs(DOWN, peers=(weak,)))
    assert record.rule == "down.start"
    _, _, record = step(state_in(S.ENGINE_DOWN, priority=9, peers=(peer(),)), obs(DOWN, network=0.5, peers=(peer(),)))
    assert record.rule == "down.better-host"  # ours is 2600, the peer's 3400


def test_the_band_is_measured_from_the_best_score_so_three_hosts_agree() -> None:
    """A 3400 p0, B 2700 p1, C 2000 p2: C is outside the band (the best is 3400), so B starts,
    A defers to B and C waits for the better scores; no cycle."""
    b, c = peer(2, 2700, priority=1), peer(3, 2000, priority=2)

    def decide(own_prio: int, network: float, peers: tuple[Peer, ...]) -> str:
        _, _, record = step(
            state_in(S.ENGINE_DOWN, priority=own_prio, peers=peers), obs(DOWN, network=network, peers=peers)
        )
        return record.rule

    b_down = (peer(2, 2700, priority=1),)
    assert decide(0, 1.0, (b, c)) == "down.priority-defer"  # we are A
    assert (
        decide(1, 0.5625, (peer(2, 3400, priority=0), peer(3, 2000, priority=2))) == "down.start.preferred"
    )  # B: 3400-900
    assert decide(2, 0.125, (peer(2, 3400, priority=0), *b_down)) == "down.better-host"  # C: 3400-1400


def test_no_deferral_to_a_peer_that_is_not_ready() -> None:
    for not_ready in (
        peer(priority=1, status=UNKNOWN),  # the hypervisor cannot tell
        peer(priority=1, score=0),  # ineligible
        peer(priority=1, maintenance=True),
        peer(priority=1, stopped=True),
    ):
        _, _, record = step(state_in(S.ENGINE_DOWN, peers=(not_ready,)), obs(DOWN, peers=(not_ready,)))
        assert record.rule == "down.start", not_ready


def test_no_deferral_to_a_dead_peer() -> None:
    dead = peer(priority=1)
    # The historic snapshot 100 s ago already had this timestamp: the peer is not alive.
    state = replace(state_in(S.ENGINE_DOWN, peers=(dead,)), history=(Snapshot(T0 - 100, ((2, dead.host_ts),)),))
    _, _, record = step(state, obs(DOWN, peers=(dead,)))
    assert record.inputs.cluster.alive == () and record.rule == "down.start"


def test_the_deferral_is_bounded_and_a_flapping_condition_does_not_extend_it() -> None:
    better = peer(priority=1)
    state = state_in(S.ENGINE_DOWN, peers=(better,))
    held = LeaseStatus(owner=3, held_here=False)
    state, rules = _steps(
        state,
        obs(DOWN, peers=(better,)),
        obs(DOWN, now=T0 + 10, peers=(better,), lease=held, sanlock={3: SanlockHost.LIVE}),  # blocked meanwhile
        obs(DOWN, now=T0 + 20, peers=(better,)),
        obs(DOWN, now=T0 + 29.9, peers=(better,)),
    )
    assert rules == ["down.priority-defer", "down.lease-held", "down.priority-defer", "down.priority-defer"]
    assert state.priority_wait_since == T0
    state, _, record = step(state, obs(DOWN, now=T0 + 30, peers=(better,)))
    assert record.rule == "down.priority-defer.expired" and state.name is S.ENGINE_START
    assert state.priority_wait_since is None  # a fresh wait after a return to EngineDown


def test_the_wait_ends_when_the_engine_runs_elsewhere() -> None:
    better = peer(priority=1)
    state, _, _ = step(state_in(S.ENGINE_DOWN, peers=(better,)), obs(DOWN, peers=(better,)))
    running = peer(priority=1, status=UP_GOOD, ts=5001)
    state, _, record = step(state, obs(DOWN, now=T0 + 10, peers=(running,)))
    assert record.rule == "down.engine-elsewhere" and state.priority_wait_since is None


def test_a_custom_delay() -> None:
    better = peer(priority=1)
    state = state_in(S.ENGINE_DOWN, peers=(better,), timing=TimingConfig(priority_start_delay=5))
    _, rules = _steps(state, obs(DOWN, peers=(better,)), obs(DOWN, now=T0 + 5, peers=(better,)))
    assert rules == ["down.priority-defer", "down.priority-defer.expired"]


def test_the_migration_target_is_the_best_priority_inside_the_band() -> None:
    peers = (peer(2, 3400, priority=0), peer(3, 3000, priority=2), peer(4, 2500, priority=5))
    _, _actions, record = step(state_in(S.ENGINE_UP, peers=peers), obs(UP_GOOD, local_maintenance=True, peers=peers))
    assert record.rule == "up.local-maintenance.migrate"
    assert record.note == "migrate to host 3"  # host 4 has the best priority but is 900 below the best


# --- failback ---------------------------------------------------------------------------------------


def test_failback_is_off_by_default() -> None:
    better = peer(priority=1)
    state = state_in(S.ENGINE_UP, peers=(better,))
    for i in range(40):
        state, _, record = step(state, obs(UP_GOOD, now=T0 + 10 * i, peers=(peer(priority=1, ts=5000 + i),)))
        assert record.rule == "up.ok"
    assert state.failback_target is None and state.failback_since is None


def test_failback_after_the_dwell_by_live_migration() -> None:
    state = state_in(S.ENGINE_UP, peers=(peer(priority=1),), timing=FAILBACK)
    rules = []
    for i in range(31):
        state, actions, record = step(state, obs(UP_GOOD, now=T0 + 10 * i, peers=(peer(priority=1, ts=5000 + i),)))
        rules.append(record.rule)
    assert rules[:30] == ["up.failback.dwell"] * 30 and rules[30] == "up.failback.migrate"
    assert state.name is S.ENGINE_MIGRATING_AWAY and state.migrate_target == 2
    (migrate,) = [a for a in actions if isinstance(a, MigrateVm)]
    assert migrate.target_host_id == 2
    assert "host 2 (priority 1 > 0, score 3400) eligible for 300 s: migrate to host 2" in record.note
    # The migration lands: the VM left, this host is down and the target runs it.
    seq = state.pending.seq if state.pending else 0
    state, _, record = step(
        state, obs(DOWN, now=T0 + 320, peers=(peer(priority=1, ts=5040),), result=result(Outcome.OK, seq=seq))
    )
    assert record.rule == "migrating-away.done" and state.name is S.ENGINE_DOWN


def test_a_failed_failback_migration_takes_the_yield_path() -> None:
    state = state_in(
        S.ENGINE_UP, peers=(peer(priority=1),), timing=FAILBACK, failback_target=2, failback_since=T0 - 1000
    )
    state, _, record = step(state, obs(UP_GOOD, peers=(peer(priority=1),)))
    assert record.rule == "up.failback.migrate"
    seq = state.pending.seq if state.pending else 0
    state, _, record = step(
        state,
        obs(
            UP_GOOD,
            now=T0 + 5,
            peers=(peer(priority=1, ts=5001),),
            result=result(Outcome.FAILED, seq=seq, reason="target refused"),
        ),
    )
    assert record.rule == "migrating-away.failed" and state.migrate_failed_at == T0 + 5
    # The failback's dwell is kept across the migration: the cold path follows at the next
    # tick (shut down here, the target starts the VM).
    assert state.failback_target == 2 and state.failback_since == T0 - 1000
    state, actions, record = step(state, obs(UP_GOOD, now=T0 + 15, peers=(peer(priority=1, ts=5002),)))
    assert record.rule == "up.failback" and state.failback_at == T0 + 15
    assert state.name is S.ENGINE_STOP and any(isinstance(a, ShutdownVm) for a in actions)
    assert "live migration failed moments ago" in record.note


def test_the_failback_dwell_restarts_when_the_target_stops_qualifying() -> None:
    state = state_in(S.ENGINE_UP, peers=(peer(priority=1),), timing=FAILBACK)
    state, rules = _steps(
        state,
        obs(UP_GOOD, peers=(peer(priority=1, ts=5000),)),
        obs(UP_GOOD, now=T0 + 10, peers=(peer(priority=1, ts=5001, status=UNKNOWN),)),  # not ready for a tick
        obs(UP_GOOD, now=T0 + 20, peers=(peer(priority=1, ts=5002),)),
    )
    assert rules == ["up.failback.dwell", "up.ok", "up.failback.dwell"]
    assert state.failback_since == T0 + 20


def test_no_failback_to_an_unfit_host() -> None:
    own_better = peer(priority=0)  # same priority: nothing to fail back to
    for target in (
        peer(priority=1, status=UNKNOWN),
        peer(priority=1, score=2600),  # 800 below us: outside the band
        peer(priority=1, maintenance=True, score=0),
        peer(priority=1, status=UP_GOOD),  # runs a VM
        own_better,
    ):
        state = state_in(S.ENGINE_UP, peers=(target,), timing=FAILBACK, failback_target=2, failback_since=T0 - 1000)
        _, _, record = step(state, obs(UP_GOOD, peers=(target,)))
        assert record.rule in ("up.ok", "up.engine-elsewhere"), target


def test_no_failback_when_another_host_would_start_first() -> None:
    """A better-scoring peer at the same priority as the target, not ready (its VM state is
    unknown): once we stopped, the target would wait for it; no failback."""
    target, blocker = peer(2, 3000, priority=1), peer(3, 3400, priority=1, status=UNKNOWN)
    state = state_in(S.ENGINE_UP, peers=(target, blocker), timing=FAILBACK, failback_target=2, failback_since=T0 - 1000)
    _, _, record = step(state, obs(UP_GOOD, peers=(target, blocker)))
    assert record.rule == "up.ok"


def test_no_failback_from_a_bad_health_engine_or_in_local_maintenance() -> None:
    target = peer(priority=1)
    state = state_in(
        S.ENGINE_UP_BAD_HEALTH, peers=(target,), timing=FAILBACK, failback_target=2, failback_since=T0 - 1000
    )
    _, _, record = step(state, obs(UP_GOOD, peers=(target,)))
    assert record.rule == "up.ok"  # back to EngineUp first; failback from EngineUp only
    state = state_in(S.ENGINE_UP, peers=(target,), timing=FAILBACK, failback_target=2, failback_since=T0 - 1000)
    _, _, record = step(state, obs(UP_GOOD, peers=(target,), local_maintenance=True))
    assert record.rule == "up.local-maintenance.migrate"


def _failback_then_stop(now: float) -> FsmState:
    target = peer(priority=1)
    # A live migration failed moments ago: the failback goes the cold way.
    state = state_in(
        S.ENGINE_UP,
        peers=(target,),
        timing=FAILBACK,
        failback_target=2,
        failback_since=now - 1000,
        migrate_failed_at=now - 1,
    )
    state, _, record = step(state, obs(UP_GOOD, now=now, peers=(target,)))
    assert record.rule == "up.failback"
    state, _, record = step(state, obs(DOWN, now=now + 40, peers=(peer(priority=1, ts=5004),)))
    assert record.rule == "stop.vm-gone" and state.failback_at == now
    return state


def test_a_failback_that_took_is_settled_without_a_back_off() -> None:
    state = _failback_then_stop(T0)
    state, _, record = step(state, obs(DOWN, now=T0 + 50, peers=(peer(priority=1, ts=5005, status=UP_GOOD),)))
    assert record.rule == "down.engine-elsewhere"
    assert state.failback_at is None and state.failback_failed_at is None


def test_a_failback_that_did_not_take_backs_off() -> None:
    state = _failback_then_stop(T0)
    target = peer(priority=1, ts=5005)  # stays ready, never starts
    state, rules = _steps(state, obs(DOWN, now=T0 + 50, peers=(target,)), obs(DOWN, now=T0 + 80, peers=(target,)))
    assert rules == ["down.priority-defer", "down.priority-defer.expired"]
    seq = state.pending.seq if state.pending else 0
    state, _, record = step(state, obs(UP_GOOD, now=T0 + 82, peers=(target,), result=result(Outcome.OK, seq=seq)))
    assert record.rule == "start.ok" and state.failback_failed_at == T0 + 82 and state.failback_at is None
    # Up again here: the dwell runs, but no failback for failback_retry_delay.
    state, _, record = step(state, obs(UP_GOOD, now=T0 + 90, peers=(target,)))
    assert record.rule == "starting.up"
    for i, now in enumerate(range(100, 3682, 100)):  # reads every 100 s: the peer stays alive
        state, _, record = step(state, obs(UP_GOOD, now=T0 + now, peers=(peer(priority=1, ts=7000 + i),)))
        assert record.rule == "up.failback.dwell" and "did not take" in record.note
    state, _, record = step(state, obs(UP_GOOD, now=T0 + 82 + 3600, peers=(peer(priority=1, ts=8000),)))
    assert record.rule == "up.failback.migrate"


# --- what is published ----------------------------------------------------------------------------


def test_the_priority_is_published_and_in_the_stop_record() -> None:
    state = state_in(S.ENGINE_DOWN, priority=-4)
    _, actions, _ = step(state, obs(DOWN))
    assert isinstance(actions[0], Publish) and actions[0].record.priority == -4
    _, actions, _ = stop(state, obs(DOWN))
    assert isinstance(actions[0], Publish)
    assert actions[0].record.priority == -4 and state.config.host_id == OWN


def test_timing_knows_the_switch() -> None:
    assert TimingConfig().failback is False
    assert TimingConfig.from_mapping({"failback": True}).failback is True
    with pytest.raises(TimingError, match="'failback' must be true or false"):
        TimingConfig.from_mapping({"failback": 1})
    with pytest.raises(TimingError, match="'priority_start_delay' must be > 0"):
        TimingConfig.from_mapping({"priority_start_delay": 0})
