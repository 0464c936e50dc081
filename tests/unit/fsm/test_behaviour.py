"""Multi-step behaviour and the original's defects fixed (spec §12: B1, B13, B14, B31)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from he_ha.fsm import (
    AcquireLeaseAndStartVm,
    Action,
    DecisionRecord,
    FsmState,
    Notify,
    Observation,
    Outcome,
    PeerFault,
    Publish,
    TimingConfig,
    initial_state,
    step,
    stop,
)
from he_ha.fsm import StateName as S
from he_ha.fsm.health import NO_READING_HEALTH
from tests.unit.fsm.builders import (
    DOWN,
    DOWN_UNEXPECTED,
    INCOMING,
    OWN,
    POWERING_UP,
    T0,
    UP_BAD,
    UP_GOOD,
    LocalFields,
    Peer,
    obs,
    peer,
    result,
    state_in,
)


def _run(state: FsmState, *observations: Observation) -> list[object]:
    records = []
    for observation in observations:
        state, _, record = step(state, observation)
        records.append(record)
    return [state, records]


def _fail_start(state: FsmState, now: float) -> FsmState:
    """EngineDown -> EngineStart -> (start fails) -> EngineDown, at `now`."""
    peers = (peer(score=1000, ts=int(now)),)  # a live, weaker peer
    state, actions, record = step(state, obs(DOWN, now=now, peers=peers))
    assert record.rule == "down.start", record.rule
    seq = next(a.seq for a in actions if isinstance(a, AcquireLeaseAndStartVm))
    state, _, record = step(state, obs(DOWN, now=now + 1, peers=peers, result=result(Outcome.FAILED, seq=seq)))
    assert record.rule == "start.failed"
    return state


def test_b1_three_failed_starts_zero_the_score_until_the_window_passes() -> None:
    state = state_in(S.ENGINE_DOWN, peers=())
    for i in range(3):
        state = _fail_start(state, T0 + 100 * i)
    assert len(state.start_failures) == 3
    _, actions, record = step(state, obs(DOWN, now=T0 + 250, peers=()))
    assert isinstance(actions[0], Publish)
    assert record.inputs.own_score == 0 and actions[0].record.score == 0
    # Alone in the cluster: score 0 does not stop us (no live peer scores higher)...
    assert record.rule == "down.start"
    # ...but with a live peer at any positive score, it gets its turn.
    _, _, record = step(state, obs(DOWN, now=T0 + 250, peers=(peer(score=100, ts=1),)))
    assert record.rule == "down.better-host"
    # Failures were recorded at T0+1, +101, +201 (the result steps); each counts 600 s.
    _, _, record = step(state, obs(DOWN, now=T0 + 600.9, peers=()))
    assert record.inputs.start_failures == 3
    _, _, record = step(state, obs(DOWN, now=T0 + 601, peers=()))
    assert record.inputs.start_failures == 2 and record.inputs.own_score == 3300
    _, _, record = step(state, obs(DOWN, now=T0 + 801, peers=()))
    assert record.inputs.start_failures == 0 and record.inputs.own_score == 3400


def test_engine_starting_without_health_after_our_start_counts_as_failure() -> None:
    state = state_in(S.ENGINE_STARTING, start_attempt_at=T0 - 600, entered_at=T0 - 600)
    new, _, record = step(state, obs(POWERING_UP))
    assert record.rule == "timeout.EngineStarting" and new.start_failures == (T0,)
    new, _, _ = step(state_in(S.ENGINE_STARTING, start_attempt_at=T0 - 9), obs(DOWN_UNEXPECTED))
    assert new.start_failures == (T0,)


def test_adopted_vm_dying_is_not_a_failed_start() -> None:
    """Reinitialize -> EngineStarting for a VM we did not start (supervisor restart)."""
    new, _, _ = step(state_in(S.ENGINE_STARTING, start_attempt_at=None), obs(DOWN_UNEXPECTED))
    assert new.start_failures == ()


def test_reaching_engine_up_clears_failures() -> None:
    state = state_in(S.ENGINE_STARTING, start_failures=(T0 - 50, T0 - 20), start_attempt_at=T0 - 9)
    new, _, record = step(state, obs(UP_GOOD))
    assert record.rule == "starting.up" and new.start_failures == () and new.start_attempt_at is None


def test_b14_no_health_reading_at_start_up() -> None:
    state = initial_state(OWN)
    new, actions, record = step(state, obs(None, peers=()))
    assert record.rule == "reinit.await-health" and new.name is S.REINITIALIZE
    publish = actions[0]
    assert isinstance(publish, Publish) and publish.record.engine_status == NO_READING_HEALTH
    new, _, record = step(new, obs(UP_GOOD, now=T0 + 10, peers=()))
    assert record.rule == "reinit.vm-up"


def test_b13_live_too_new_peer_blocks_start_and_a_dead_one_does_not() -> None:
    def fault(t: float) -> PeerFault:
        return PeerFault(3, "too_new", f"crc-{t}")

    state = state_in(S.ENGINE_DOWN, peers=(fault(T0 - 100),))
    _, _, record = step(state, obs(DOWN, peers=(fault(T0),)))
    assert record.rule == "down.peer-too-new" and record.inputs.cluster.too_new == (3,)
    frozen = PeerFault(3, "too_new", "frozen")  # the newer host died: its slot no longer changes
    state = state_in(S.ENGINE_DOWN, peers=(frozen,))
    state = replace(state, history=tuple(replace(s, stamps=((3, "frozen"),)) for s in state.history))
    _, _, record = step(state, obs(DOWN, peers=(frozen,)))
    assert record.rule == "down.start" and record.inputs.cluster.too_new == ()


def test_b31_fresh_host_does_not_start_while_the_engine_runs_elsewhere() -> None:
    """A new agent reads every 10 s; a peer runs the engine all along. The original could
    start at the 60 s boundary with no live peer; here the first start-relevant decision
    already sees the peer alive."""
    state = initial_state(OWN)
    rules = []
    for i in range(12):
        now = T0 + 10 * i
        state, _, record = step(state, obs(DOWN, now=now, peers=(peer(status=UP_GOOD, ts=int(now) + 77),)))
        rules.append(record.rule)
    assert "down.start" not in rules
    assert rules[:7] == ["reinit.vm-down"] + ["down.view-immature"] * 6
    assert set(rules[7:]) == {"down.engine-elsewhere"}


def test_unreadable_global_flag_keeps_the_last_known_value() -> None:
    state = state_in(S.GLOBAL_MAINTENANCE, global_maintenance=True)
    new, _, record = step(state, obs(DOWN, global_maintenance=None))
    assert record.rule == "guard.global.hold" and record.inputs.global_maintenance is True
    new, _, record = step(new, obs(DOWN, now=T0 + 10, global_maintenance=False))
    assert record.rule == "global-maintenance.cleared"


def test_whiteboard_read_failure_reuses_the_last_view() -> None:
    state = state_in(S.ENGINE_DOWN, peers=(peer(status=UP_GOOD),), view_age=5)
    new, _, record = step(state, obs(DOWN, peers=None))
    assert record.rule == "down.engine-elsewhere" and record.inputs.cluster.view_age == 5
    assert new.view == state.view and new.history == state.history


def test_global_maintenance_takes_no_vm_action() -> None:
    state = state_in(S.ENGINE_UP_BAD_HEALTH, entered_at=T0 - 1000)
    _, actions, record = step(state, obs(UP_BAD, global_maintenance=True))
    # Hands-off (issue 14): the global guard now comes before an expired timer (the original
    # checked the timeout first and could stop the VM in the tick global maintenance was seen).
    assert record.rule == "guard.global" and [type(a) for a in actions] == [Publish, Notify]
    state = state_in(S.GLOBAL_MAINTENANCE)
    for health in (UP_BAD, DOWN_UNEXPECTED, DOWN):
        _, actions, _ = step(state, obs(health, global_maintenance=True))
        assert [type(a) for a in actions] == [Publish]


def test_local_maintenance_never_stops_a_running_engine_without_a_target() -> None:
    state = state_in(S.ENGINE_UP, peers=())
    for i in range(50):
        state, actions, record = step(state, obs(UP_GOOD, now=T0 + 10 * i, peers=(), local_maintenance=True))
        assert state.name is S.ENGINE_UP and record.rule == "up.local-maintenance.no-target"
        assert [type(a) for a in actions] == [Publish]


def test_notify_only_on_state_change_and_nowait_hint() -> None:
    state = state_in(S.REINITIALIZE)
    new, actions, record = step(state, obs(UP_GOOD))
    assert Notify("ReinitializeFSM-EngineStarting") in actions and record.tick_after == 0.0
    _, actions, record = step(new, obs(POWERING_UP, now=T0 + 1))
    assert not any(isinstance(a, Notify) for a in actions) and record.tick_after == 10.0


def test_publish_record_contents() -> None:
    _, actions, _ = step(state_in(S.LOCAL_MAINTENANCE), obs(DOWN, now=T0 + 0.7, local_maintenance=True))
    assert isinstance(actions[0], Publish)
    record = actions[0].record
    assert (record.host_ts, record.state, record.score, record.maintenance, record.stopped) == (
        int(T0),
        "LocalMaintenance",
        0,
        True,
        False,
    )


def test_stop_publishes_agent_stopped_and_is_final() -> None:
    state = state_in(S.ENGINE_UP)
    new, actions, record = stop(state, obs(UP_GOOD))
    assert [type(a) for a in actions] == [Publish]
    assert isinstance(actions[0], Publish)
    published = actions[0].record
    assert (published.state, published.score, published.stopped) == ("AgentStopped", 0, True)
    assert record.rule == "agent.stopped" and new.name is S.AGENT_STOPPED
    with pytest.raises(ValueError, match="final"):
        step(new, obs(UP_GOOD))


# --- restart locally first (issue 14 item 2) -------------------------------------------------------


def _crash(state: FsmState, now: float, peers: tuple[Peer, ...] = ()) -> tuple[FsmState, DecisionRecord]:
    state, _, record = step(state, obs(DOWN_UNEXPECTED, now=now, peers=peers))
    return state, record


def test_a_crash_with_an_eligible_peer_keeps_the_original_path() -> None:
    peers = (peer(score=3400),)
    state, record = _crash(state_in(S.ENGINE_UP, peers=peers), T0, peers)
    assert record.rule == "up.vm-crashed" and state.name is S.ENGINE_UNEXPECTEDLY_DOWN
    assert "host 2 can take it over" in record.note
    assert state.restarts == ()


@pytest.mark.parametrize(
    ("why", "kw", "peers"),
    [
        ("local maintenance", {"local_maintenance": True}, ()),
        ("storage_ok=False", {"storage_ok": False}, ()),
    ],
)
def test_no_local_restart_where_this_host_cannot_start(why: str, kw: LocalFields, peers: tuple[Peer, ...]) -> None:
    _, _, record = step(state_in(S.ENGINE_UP, peers=peers), obs(DOWN_UNEXPECTED, peers=peers, **kw))
    assert record.rule == "up.vm-crashed" and why in record.note


def test_no_local_restart_while_a_live_peer_holds_the_lease() -> None:
    from he_ha.fsm import LeaseStatus, SanlockHost

    quiet = (peer(score=0),)
    _, _, record = step(
        state_in(S.ENGINE_UP, peers=quiet),
        obs(DOWN_UNEXPECTED, peers=quiet, lease=LeaseStatus(2, False), sanlock={2: SanlockHost.LIVE}),
    )
    assert record.rule == "up.vm-crashed" and "holds the VM lease" in record.note


def test_restarts_count_toward_the_limit_and_survive_engine_up() -> None:
    """A crash loop: restart at once, then after 10 s and 20 s; the fourth crash inside the
    retry window gives up locally (score 0, EngineUnexpectedlyDown)."""
    state = state_in(S.ENGINE_UP, peers=())
    now = T0
    expected = [
        ("vm-crashed.restart-here", 0.0, 3350),
        ("vm-crashed.restart-backoff", 10.0, 3300),
        ("vm-crashed.restart-backoff", 20.0, 0),
    ]
    for rule, delay, score in expected:
        state, record = _crash(state, now)
        assert (record.rule, record.score.total) == (rule, score), record.note
        if rule.endswith("backoff"):
            state, _, record = step(state, obs(DOWN_UNEXPECTED, now=now + delay - 0.1, peers=()))
            assert record.rule == "down.restart-backoff"
            state, _, record = step(state, obs(DOWN_UNEXPECTED, now=now + delay, peers=()))
            assert record.rule == "down.start"
        assert state.name is S.ENGINE_START
        # The VM comes up healthy again: EngineUp clears failed starts, not crash restarts.
        state = replace(state, name=S.ENGINE_UP, pending=None, entered_at=now + 60)
        state, _, record = step(state, obs(UP_GOOD, now=now + 70, peers=()))
        assert record.rule == "up.ok" and record.inputs.local_restarts == len(state.restarts)
        now += 100
    state, record = _crash(state, now)
    assert record.rule == "up.vm-crashed" and state.name is S.ENGINE_UNEXPECTEDLY_DOWN
    assert "retry limit reached (3 of 3" in record.note
    # Once the first restart leaves the retry window, a crash restarts locally again.
    state = replace(state, name=S.ENGINE_UP, pending=None)
    _, record = _crash(state, T0 + 600)
    assert record.rule.startswith("vm-crashed.restart-")


def test_a_crash_during_start_restarts_without_counting_a_failed_start_too() -> None:
    state = state_in(S.ENGINE_STARTING, peers=(), start_attempt_at=T0 - 30)
    new, _, record = step(state, obs(DOWN_UNEXPECTED, peers=()))
    assert record.rule == "vm-crashed.restart-here"
    assert new.start_failures == () and new.restarts == (T0,) and record.score.total == 3350


# --- hands-off global maintenance and escalation alerts (issue 14 items 4 and 6) -------------------


def _alert_notifies(actions: tuple[Action, ...]) -> list[Notify]:
    return [a for a in actions if isinstance(a, Notify) and a.alert is not None]


def test_global_maintenance_reports_a_vm_without_lease_once_and_never_touches_it() -> None:
    from he_ha.fsm import LeaseStatus

    lost = LeaseStatus(None, False)
    state = state_in(S.GLOBAL_MAINTENANCE)
    state, actions, record = step(state, obs(UP_GOOD, lease=lost, global_maintenance=True))
    assert record.rule == "global-maintenance.vm-without-lease"
    assert [a.alert for a in _alert_notifies(actions)] == ["vm-without-lease"]
    assert [a.kind for a in record.alerts] == ["vm-without-lease"] and record.alerts[0].since == T0
    for i in range(1, 30):  # reported once, then kept in status; never a VM action
        state, actions, record = step(state, obs(UP_GOOD, now=T0 + 10 * i, lease=lost, global_maintenance=True))
        assert [type(a) for a in actions] == [Publish] and record.alerts[0].since == T0
    state, actions, record = step(state, obs(DOWN, now=T0 + 400, lease=lost, global_maintenance=True))
    assert record.alerts == () and state.alerts == ()  # the administrator stopped it


def test_global_maintenance_destroys_and_reports_a_second_copy() -> None:
    from he_ha.fsm import DestroyVm, LeaseStatus, SanlockHost

    foreign = LeaseStatus(2, False)
    _new, actions, record = step(
        state_in(S.GLOBAL_MAINTENANCE),
        obs(UP_GOOD, lease=foreign, global_maintenance=True, sanlock={2: SanlockHost.FAIL}),
    )
    assert record.rule == "safety.foreign-lease" and any(isinstance(a, DestroyVm) for a in actions)
    assert [a.alert for a in _alert_notifies(actions)] == ["second-copy-destroyed"]
    # Outside global maintenance invariant 4 is unchanged and no alert is raised.
    _, actions, record = step(state_in(S.ENGINE_UP), obs(UP_GOOD, lease=foreign, sanlock={2: SanlockHost.DEAD}))
    assert record.rule == "safety.foreign-lease" and _alert_notifies(actions) == []


def test_local_maintenance_in_global_maintenance_keeps_its_hands_off() -> None:
    state = state_in(S.LOCAL_MAINTENANCE)
    _, actions, record = step(state, obs(UP_GOOD, local_maintenance=True, global_maintenance=True))
    assert record.rule == "local-maintenance.global-hands-off" and [type(a) for a in actions] == [Publish]


def test_retry_limit_alert_is_raised_once_and_not_during_the_last_restart() -> None:
    state = state_in(S.ENGINE_UP, peers=(), restarts=(T0 - 100, T0 - 50))
    state, actions, record = step(state, obs(DOWN_UNEXPECTED, peers=()))
    assert record.rule == "vm-crashed.restart-backoff" and record.score.total == 0
    assert record.alerts == ()  # the third restart is still HA at work
    state = replace(state, name=S.ENGINE_UP, pending=None, entered_at=T0 + 60)
    state, actions, record = step(state, obs(DOWN_UNEXPECTED, now=T0 + 100, peers=()))
    assert record.rule == "up.vm-crashed"
    assert [(a.alert, "retry limit reached" in a.reason) for a in _alert_notifies(actions)] == [
        ("gave-up.retry-limit", True)
    ]
    for i in range(1, 20):
        state, actions, record = step(state, obs(DOWN_UNEXPECTED, now=T0 + 100 + 10 * i, peers=()))
        assert _alert_notifies(actions) == [] and [a.kind for a in record.alerts] == ["gave-up.retry-limit"]


def test_no_retry_limit_alert_while_another_host_can_start_it() -> None:
    peers = (peer(score=3400),)
    state = state_in(S.ENGINE_UP, peers=peers, restarts=(T0 - 100, T0 - 50, T0 - 20))
    _, _actions, record = step(state, obs(DOWN_UNEXPECTED, peers=peers))
    assert record.rule == "up.vm-crashed" and record.alerts == ()


def test_no_eligible_host_alert_after_the_bound_from_the_lowest_live_host_only() -> None:
    timing = TimingConfig(no_host_alert_after=300.0)
    others = (peer(2, score=0, maintenance=True),)
    state = state_in(S.LOCAL_MAINTENANCE, peers=others, timing=timing)
    raised_at = None
    for i in range(40):
        now = T0 + 10 * i
        state, actions, _record = step(
            state, obs(DOWN, now=now, peers=(peer(2, score=0, maintenance=True, ts=5000 + i),), local_maintenance=True)
        )
        if _alert_notifies(actions):
            assert raised_at is None
            raised_at = now
            assert _alert_notifies(actions)[0].alert == "gave-up.no-eligible-host"
    assert raised_at == T0 + 300
    # Host 3 sees host 1 (lower id) alive: it does not report the same condition.
    lower = (peer(1, score=0, maintenance=True),)
    three = replace(
        initial_state(3, timing),
        name=S.LOCAL_MAINTENANCE,
        entered_at=T0,
        view=state_in(S.LOCAL_MAINTENANCE, peers=lower).view,
        history=state_in(S.LOCAL_MAINTENANCE, peers=lower).history,
    )
    for i in range(40):
        three, actions, _ = step(
            three,
            obs(
                DOWN, now=T0 + 10 * i, peers=(peer(1, score=0, maintenance=True, ts=5000 + i),), local_maintenance=True
            ),
        )
        assert _alert_notifies(actions) == []


def test_no_escalation_in_global_maintenance_or_while_the_engine_runs() -> None:
    timing = TimingConfig(no_host_alert_after=10.0)
    for health, gm in ((DOWN, True), (UP_GOOD, False)):
        state = state_in(S.LOCAL_MAINTENANCE, peers=(), timing=timing)
        for i in range(10):
            state, _actions, record = step(
                state, obs(health, now=T0 + 10 * i, peers=(), local_maintenance=True, global_maintenance=gm)
            )
            assert record.alerts == () and state.no_host_since is None


def test_no_vm_without_lease_alert_while_our_migration_hands_the_lease_over() -> None:
    from he_ha.fsm import LeaseStatus, SanlockHost
    from tests.unit.fsm.builders import pending

    state = state_in(S.LOCAL_MAINTENANCE_MIGRATE_VM, pending=pending("migrate"), migrate_target=2)
    _, actions, record = step(
        state,
        obs(
            UP_GOOD,
            local_maintenance=True,
            global_maintenance=True,
            lease=LeaseStatus(2, False),
            sanlock={2: SanlockHost.LIVE},
        ),
    )
    assert record.rule == "guard.global" and record.alerts == () and _alert_notifies(actions) == []


def test_a_migration_target_waits_for_the_arriving_vm_instead_of_starting_it() -> None:
    """The source has published the VM gone (migrated away) before the target's vCPUs run:
    the target, reading "Migration Destination", does not start the VM; it takes the VM up
    once it runs. The same host without an incoming VM would start it."""
    source_gone = (peer(score=0, status=DOWN, ts=5000),)  # the source: local maintenance, VM left
    state = state_in(S.ENGINE_DOWN, peers=source_gone)
    assert step(state, obs(DOWN, peers=source_gone))[2].rule == "down.start"
    state, actions, record = step(state, obs(INCOMING, peers=source_gone))
    assert record.rule == "down.incoming-migration" and state.name is S.ENGINE_DOWN
    assert not [a for a in actions if isinstance(a, AcquireLeaseAndStartVm)]
    state, _, record = step(state, obs(UP_GOOD, now=T0 + 1, peers=source_gone))
    assert record.rule == "down.engine-here" and state.name is S.ENGINE_STARTING
