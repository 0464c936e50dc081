"""Every timeout edge: exactly at the limit (fires), just before (does not), just after (fires).

Convention: a timeout of T seconds fires at the first step with ``now >= start + T``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from he_ha.fsm import (
    Action,
    DecisionRecord,
    FsmState,
    LeaseStatus,
    Outcome,
    Publish,
    TimingConfig,
    step,
)
from he_ha.fsm import StateName as S
from tests.unit.fsm.builders import (
    DOWN,
    DOWN_MISSING,
    DOWN_UNEXPECTED,
    NOT_READY,
    POWERING_UP,
    STARTING_NOT_READY,
    T0,
    UP_BAD,
    UP_GOOD,
    obs,
    peer,
    pending,
    result,
    state_in,
)

EPS = 1e-6
TIMING = TimingConfig()

# (state, timing attribute, observation health, rule when expired, rule while running)
STATE_TIMERS = [
    (S.ENGINE_STARTING, "starting_timeout", POWERING_UP, "timeout.EngineStarting", "starting.powering-up"),
    (S.ENGINE_UP_BAD_HEALTH, "bad_health_timeout", UP_BAD, "timeout.EngineUpBadHealth", "up.bad-health.persists"),
    (S.ENGINE_MAYBE_AWAY, "maybe_away_timeout", DOWN_MISSING, "timeout.EngineMaybeAway", "maybe-away.wait"),
    (
        S.ENGINE_UNEXPECTEDLY_DOWN,
        "unexpectedly_down_timeout",
        DOWN_UNEXPECTED,
        "timeout.EngineUnexpectedlyDown",
        "unexpectedly-down.wait",
    ),
    (S.ENGINE_STOP, "stop_timeout", UP_GOOD, "timeout.EngineStop", "stop.await"),
]


@pytest.mark.parametrize(
    ("name", "attr", "health", "expired", "running"), STATE_TIMERS, ids=[t[0].value for t in STATE_TIMERS]
)
@pytest.mark.parametrize(("offset", "fires"), [(-EPS, False), (0.0, True), (EPS, True)], ids=["before", "at", "after"])
def test_state_timeouts(
    name: S, attr: str, health: object, expired: str, running: str, offset: float, fires: bool
) -> None:
    limit = getattr(TIMING, attr)
    state = state_in(name, entered_at=T0 - limit - offset, pending=pending("shutdown"))
    _, _, record = step(state, obs(health))  # type: ignore[arg-type]
    assert record.rule == (expired if fires else running)


@pytest.mark.parametrize(
    ("name", "attr", "health", "expired", "running"), STATE_TIMERS, ids=[t[0].value for t in STATE_TIMERS]
)
def test_timeout_at_is_published(name: S, attr: str, health: object, expired: str, running: str) -> None:
    """The deadline is published as local monotonic time; the supervisor adds its epoch (B12)."""
    _, actions, record = step(state_in(name, entered_at=T0 - 1), obs(health))  # type: ignore[arg-type]
    assert record.rule == running
    assert isinstance(actions[0], Publish)
    assert record.timeout_at == T0 - 1 + getattr(TIMING, attr) == actions[0].record.timeout_at


def test_entering_a_timed_state_arms_its_timer_at_once() -> None:
    new, actions, record = step(state_in(S.ENGINE_UP), obs(UP_BAD))
    assert new.name is S.ENGINE_UP_BAD_HEALTH and new.entered_at == T0
    assert isinstance(actions[0], Publish)
    assert record.timeout_at == T0 + 300 and actions[0].record.timeout_at == T0 + 300
    # ... and fires exactly 300 s later, not a loop later as the original (which armed it on the next step).
    _, _, record = step(new, obs(UP_BAD, now=T0 + 300))
    assert record.rule == "timeout.EngineUpBadHealth"


@pytest.mark.parametrize(("offset", "fires"), [(-EPS, False), (0.0, True), (EPS, True)], ids=["before", "at", "after"])
@pytest.mark.parametrize("kind", ["start", "destroy"])
def test_action_timeout(kind: str, offset: float, fires: bool) -> None:
    name = S.ENGINE_START if kind == "start" else S.ENGINE_FORCE_STOP
    state = state_in(name, pending=pending(kind, issued_at=T0 - TIMING.action_timeout - offset))
    _, _, record = step(state, obs(DOWN if kind == "start" else UP_GOOD))
    expected = {"start": ("start.timeout", "start.await"), "destroy": ("force-stop.timeout", "force-stop.await")}[kind]
    assert record.rule == expected[0 if fires else 1]


@pytest.mark.parametrize(("offset", "fires"), [(-EPS, False), (0.0, True), (EPS, True)], ids=["before", "at", "after"])
def test_migrate_timeout(offset: float, fires: bool) -> None:
    state = state_in(S.LOCAL_MAINTENANCE_MIGRATE_VM, entered_at=T0 - TIMING.migrate_timeout - offset, migrate_target=2)
    _, _, record = step(state, obs(UP_GOOD, local_maintenance=True))
    assert record.rule == ("migrate.timeout" if fires else "migrate.await")


@pytest.mark.parametrize(
    ("offset", "blocked"), [(-EPS, True), (0.0, False), (EPS, False)], ids=["before", "at", "after"]
)
def test_lease_busy_backoff(offset: float, blocked: bool) -> None:
    state = state_in(S.ENGINE_DOWN, lease_busy_at=T0 - TIMING.lease_busy_backoff - offset)
    _, _, record = step(state, obs(DOWN))
    assert record.rule == ("down.lease-backoff" if blocked else "down.start")


@pytest.mark.parametrize(
    ("offset", "blocked"), [(-EPS, True), (0.0, False), (EPS, False)], ids=["before", "at", "after"]
)
def test_migrate_retry_delay(offset: float, blocked: bool) -> None:
    state = state_in(S.ENGINE_UP, migrate_failed_at=T0 - TIMING.migrate_retry_delay - offset)
    _, _, record = step(state, obs(UP_GOOD, local_maintenance=True))
    assert record.rule == ("up.local-maintenance.evacuate" if blocked else "up.local-maintenance.migrate")


@pytest.mark.parametrize(("offset", "stale"), [(-EPS, False), (0.0, False), (EPS, True)], ids=["before", "at", "after"])
def test_view_max_age(offset: float, stale: bool) -> None:
    """A view is stale when strictly older than view_max_age."""
    state = state_in(S.ENGINE_DOWN, view_age=TIMING.view_max_age + offset)
    _, _, record = step(state, obs(DOWN, peers=None))
    assert record.rule == ("down.view-stale" if stale else "down.start")


@pytest.mark.parametrize(
    ("offset", "mature"), [(-EPS, False), (0.0, False), (EPS, True)], ids=["before", "at", "after"]
)
def test_liveness_maturity_edge(offset: float, mature: bool) -> None:
    """B31: starting needs the same snapshot that liveness needs, strictly older than 60 s.

    With exactly 60 s of history the original started (its span check passed) while no peer
    could be alive; here the view is simply not mature yet.
    """
    state = state_in(S.ENGINE_DOWN, history_age=TIMING.liveness + offset)
    _, _, record = step(state, obs(DOWN, peers=(peer(status=UP_GOOD),)))
    assert record.inputs.cluster.mature is mature
    assert record.rule == ("down.engine-elsewhere" if mature else "down.view-immature")


@pytest.mark.parametrize(
    ("offset", "counted"), [(-EPS, True), (0.0, False), (EPS, False)], ids=["before", "at", "after"]
)
def test_retry_window_edge(offset: float, counted: bool) -> None:
    """A failed start counts while now < failure + retry_window (B1, fixed)."""
    state = state_in(S.ENGINE_DOWN, start_failures=(T0 - TIMING.retry_window - offset,))
    _, _, record = step(state, obs(DOWN))
    assert record.inputs.start_failures == (1 if counted else 0)


@pytest.mark.parametrize(("offset", "yields"), [(-EPS, False), (0.0, True), (EPS, True)], ids=["before", "at", "after"])
def test_yield_dwell_edge(offset: float, yields: bool) -> None:
    state = state_in(S.ENGINE_UP, outranked_since=T0 - TIMING.yield_dwell - offset)
    _, _, record = step(state, obs(UP_GOOD, network=0.0))
    assert record.rule == ("up.yield.migrate" if yields else "up.outranked")


@pytest.mark.parametrize(("margin", "outranked"), [(799, False), (800, True), (801, True)])
def test_yield_threshold_edge(margin: int, outranked: bool) -> None:
    """A peer scoring own + 800 or more outranks us (spec §4.4: >=)."""
    own = 3400 - 1600  # network 0.0
    state = state_in(S.ENGINE_UP, peers=(peer(score=own + margin),))
    _, _, record = step(state, obs(UP_GOOD, peers=(peer(score=own + margin),), network=0.0))
    assert record.rule == ("up.outranked" if outranked else "up.ok")


def test_yield_dwell_restarts_when_interrupted() -> None:
    def tick(state: FsmState, dt: float, network: float) -> tuple[FsmState, tuple[Action, ...], DecisionRecord]:
        peers = (peer(ts=int(T0 + dt)),)  # the peer keeps publishing: stays alive
        return step(state, obs(UP_GOOD, now=T0 + dt, peers=peers, network=network))

    state = state_in(S.ENGINE_UP)
    state, _, record = tick(state, 0, 0.0)
    assert record.rule == "up.outranked" and state.outranked_since == T0
    state, _, record = tick(state, 50, 1.0)  # transient: back to normal
    assert record.rule == "up.ok" and state.outranked_since is None
    state, _, record = tick(state, 60, 0.0)
    assert record.rule == "up.outranked" and state.outranked_since == T0 + 60
    state, _, record = tick(state, 119, 0.0)
    assert record.rule == "up.outranked"
    state, _, record = tick(state, 120, 0.0)
    assert record.rule == "up.yield.migrate"


def test_zero_dwell_is_the_original_behaviour() -> None:
    """The original yields in the first tick it is outranked (by a shutdown; he-ha migrates)."""
    timing = replace(TIMING, yield_dwell=0.0)
    _, _, record = step(state_in(S.ENGINE_UP, timing=timing), obs(UP_GOOD, network=0.0))
    assert record.rule == "up.yield.migrate"


def test_a_failed_yield_migration_takes_the_cold_path_at_the_next_step() -> None:
    """Yield by live migration first; when it fails the dwell is kept, so the original's cold
    path (shut down, the better host starts the VM) follows at once, not after another dwell."""
    state = state_in(S.ENGINE_UP, outranked_since=T0 - TIMING.yield_dwell)
    state, _, record = step(state, obs(UP_GOOD, network=0.0))
    assert record.rule == "up.yield.migrate" and state.name is S.ENGINE_MIGRATING_AWAY
    seq = state.pending.seq if state.pending else 0
    failed = result(Outcome.FAILED, seq=seq, reason="the lease holder cannot migrate")
    state, _, record = step(state, obs(UP_GOOD, now=T0 + 1, network=0.0, peers=(peer(ts=5001),), result=failed))
    assert record.rule == "migrating-away.failed" and state.outranked_since == T0 - TIMING.yield_dwell
    state, _, record = step(state, obs(UP_GOOD, now=T0 + 2, network=0.0, peers=(peer(ts=5002),)))
    assert record.rule == "up.yield" and state.name is S.ENGINE_STOP
    assert "live migration failed moments ago" in record.note


def test_stale_view_never_yields() -> None:
    state = state_in(S.ENGINE_UP, outranked_since=T0 - 100, view_age=31)
    _, _, record = step(state, obs(UP_GOOD, peers=None, network=0.0))
    assert record.rule == "up.ok" and record.inputs.cluster.stale


def test_lease_owner_status_decides_waiting() -> None:
    from he_ha.fsm import SanlockHost

    foreign = LeaseStatus(owner=2, held_here=False)
    gone = (peer(3),)  # the owner (2) is not on the board at all
    cases = {
        SanlockHost.LIVE: "down.lease-held",
        SanlockHost.FAIL: "down.lease-held",
        SanlockHost.DEAD: "down.start",
        SanlockHost.FREE: "down.start",
        SanlockHost.UNKNOWN: "down.start",  # no proof either way: try, the acquire decides
    }
    for status, rule in cases.items():
        state = state_in(S.ENGINE_DOWN, peers=gone)
        _, _, record = step(state, obs(DOWN, peers=gone, lease=foreign, sanlock={2: status}))
        assert record.rule == rule, status


def test_lease_busy_result_is_not_a_failed_start() -> None:
    state = state_in(S.ENGINE_START, pending=pending("start"))
    from tests.unit.fsm.builders import result

    new, _, _ = step(state, obs(DOWN, result=result(Outcome.LEASE_BUSY)))
    assert new.start_failures == () and new.lease_busy_at == T0


# --- slow is not dead: the starting and bad-health timers count silence only (issue 14) ------

SILENCE_TIMERS = [
    (
        S.ENGINE_STARTING,
        "starting_timeout",
        POWERING_UP,
        "timeout.EngineStarting",
        STARTING_NOT_READY,
        "starting.not-ready",
        "starting.not-ready-ceiling",
    ),
    (
        S.ENGINE_UP_BAD_HEALTH,
        "bad_health_timeout",
        UP_BAD,
        "timeout.EngineUpBadHealth",
        NOT_READY,
        "up.not-ready",
        "up.not-ready-ceiling",
    ),
]
SILENCE_IDS = [t[0].value for t in SILENCE_TIMERS]


@pytest.mark.parametrize(
    ("name", "attr", "silent", "expired", "alive", "alive_rule", "ceiling"), SILENCE_TIMERS, ids=SILENCE_IDS
)
@pytest.mark.parametrize(("offset", "fires"), [(-EPS, False), (0.0, True), (EPS, True)], ids=["before", "at", "after"])
def test_silence_timer_counts_from_the_last_sign_of_life(
    name: S,
    attr: str,
    silent: object,
    expired: str,
    alive: object,
    alive_rule: str,
    ceiling: str,
    offset: float,
    fires: bool,
) -> None:
    limit = getattr(TIMING, attr)
    # In the state for 2000 s, but the engine answered (not ready) `limit` seconds ago.
    state = state_in(name, entered_at=T0 - 2000, alive_at=T0 - limit - offset)
    _, _, record = step(state, obs(silent))  # type: ignore[arg-type]
    assert record.rule == (
        expired if fires else ("starting.powering-up" if name is S.ENGINE_STARTING else "up.bad-health.persists")
    )
    assert record.inputs.engine_liveness == "silent"


@pytest.mark.parametrize(
    ("name", "attr", "silent", "expired", "alive", "alive_rule", "ceiling"), SILENCE_TIMERS, ids=SILENCE_IDS
)
def test_an_answering_engine_is_never_timed_out_below_the_ceiling(
    name: S,
    attr: str,
    silent: object,
    expired: str,
    alive: object,
    alive_rule: str,
    ceiling: str,
) -> None:
    # Long past the timeout, silent at the previous step: alive now, the timer restarts.
    state = state_in(name, entered_at=T0 - 3000, alive_at=None)
    new, _, record = step(state, obs(alive))  # type: ignore[arg-type]
    assert record.rule == alive_rule and new.name is name and new.alive_at == T0
    assert record.inputs.engine_liveness == "not-ready"
    # The published deadline is the next silence deadline, never later than the ceiling.
    assert record.timeout_at == min(T0 + getattr(TIMING, attr), T0 - 3000 + TIMING.not_ready_timeout)


@pytest.mark.parametrize(
    ("name", "attr", "silent", "expired", "alive", "alive_rule", "ceiling"), SILENCE_TIMERS, ids=SILENCE_IDS
)
@pytest.mark.parametrize(("offset", "fires"), [(-EPS, False), (0.0, True), (EPS, True)], ids=["before", "at", "after"])
def test_not_ready_ceiling(
    name: S,
    attr: str,
    silent: object,
    expired: str,
    alive: object,
    alive_rule: str,
    ceiling: str,
    offset: float,
    fires: bool,
) -> None:
    state = state_in(name, entered_at=T0 - TIMING.not_ready_timeout - offset, alive_at=T0 - 10)
    _, _, record = step(state, obs(alive))  # type: ignore[arg-type]
    assert record.rule == (ceiling if fires else alive_rule)


def test_ceiling_is_at_least_the_silence_timeout() -> None:
    """A starting timeout configured above the ceiling is not cut short by it."""
    timing = TimingConfig(starting_timeout=5000.0, not_ready_timeout=1000.0)
    state = state_in(S.ENGINE_STARTING, entered_at=T0 - 4000, timing=timing)
    _, _, record = step(state, obs(STARTING_NOT_READY))
    assert record.rule == "starting.not-ready"
    state = state_in(S.ENGINE_STARTING, entered_at=T0 - 5000, timing=timing)
    _, _, record = step(state, obs(STARTING_NOT_READY))
    assert record.rule == "starting.not-ready-ceiling"


def test_a_slow_engine_stays_up_for_an_hour_and_a_silent_one_does_not() -> None:
    """Step by step: 50 minutes of "answers, not ready" in EngineUpBadHealth, then silence."""
    state, _, record = step(state_in(S.ENGINE_UP), obs(NOT_READY))
    assert record.rule == "up.not-ready" and state.name is S.ENGINE_UP_BAD_HEALTH
    now = T0
    while now < T0 + 3000:
        now += 10
        state, _, record = step(state, obs(NOT_READY, now=now))
        assert record.rule == "up.not-ready", (now, record.rule)
    last_alive = now
    while True:
        now += 10
        state, _, record = step(state, obs(UP_BAD, now=now))
        if record.rule != "up.bad-health.persists":
            break
    assert record.rule == "timeout.EngineUpBadHealth" and now == last_alive + TIMING.bad_health_timeout
