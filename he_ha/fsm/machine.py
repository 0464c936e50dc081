"""``step(state, observation) -> (state, actions, record)``: one decision, pure.

No I/O, no clock reads, no randomness: time arrives as ``observation.now``. A step builds
its ``StepContext`` (he_ha/fsm/step_context.py), asks the states' logic for a ``Verdict``
(he_ha/fsm/transitions/: the safety rule, the state's guards, then the state's own rules),
and then, here, works out everything that follows from it: the next ``FsmState``
(``_next_state``, every remembered field in one place), the score, the alerts, the actions
and the record. Entering EngineStart, EngineStop, EngineForceStop or a migrating state emits
that state's VM action; the executor's result comes back in a later observation, matched by
sequence number.
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict

from he_ha.fsm import alerts as A
from he_ha.fsm.actions import (
    AcquireLeaseAndStartVm,
    Action,
    DestroyVm,
    MigrateVm,
    Notify,
    Publish,
    PublishedRecord,
    ReleaseLease,
    ShutdownVm,
)
from he_ha.fsm.alerts import Alert
from he_ha.fsm.decision import DecisionInputs, DecisionRecord
from he_ha.fsm.fsm_state import FsmConfig, FsmState, Pending, initial_state
from he_ha.fsm.health import NO_READING_HEALTH, REASON_LOCKED, EngineHealth
from he_ha.fsm.observation import Observation, SanlockHost
from he_ha.fsm.peer_choice import eligible_peers, lease_blocks_start
from he_ha.fsm.rules import DECISION_STATES, rule
from he_ha.fsm.score import ScoreBreakdown, compute_score
from he_ha.fsm.states import MIGRATING
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import OUTRANK_KEPT, StepContext, Verdict, build_context
from he_ha.fsm.timing import TimingConfig
from he_ha.fsm.transitions import decide
from he_ha.fsm.transitions.engine_down import (
    DOWN_ENGINE_ELSEWHERE,
    DOWN_ENGINE_HERE,
    DOWN_PRIORITY_DEFER,
    DOWN_RESTART_BACKOFF,
)
from he_ha.fsm.transitions.engine_start import START_OK
from he_ha.fsm.transitions.engine_up import UP_FAILBACK
from he_ha.fsm.transitions.guards import timeout_at
from he_ha.fsm.transitions.lease_safety import SAFETY_FOREIGN_LEASE, SAFETY_FOREIGN_LEASE_HOLD

__all__ = ["AGENT_STOPPED", "FsmConfig", "FsmState", "Pending", "initial_state", "step", "stop"]


def step(state: FsmState, obs: Observation) -> tuple[FsmState, tuple[Action, ...], DecisionRecord]:
    """Decide one tick. Pure: the same (state, observation) always gives the same output."""
    if state.name is S.AGENT_STOPPED:
        raise ValueError("AgentStopped is final: build a new state with initial_state() after a restart")
    ctx = build_context(state, obs)
    verdict = decide(ctx)
    dest = verdict.rule.target(state.name)
    entry = _entry_action(ctx, verdict, dest)
    failures = _start_failures(ctx, verdict, dest)
    # Crash restarts are not cleared by EngineUp: a VM that boots and crashes again and again
    # must reach the retry limit.
    restarts = (*ctx.restarts, ctx.now) if verdict.restart else ctx.restarts
    score = _new_score(ctx, dest, failures, restarts)
    alerts, no_host_since = _alerts(ctx, verdict, dest, score)
    new_state = _next_state(ctx, verdict, dest, entry, _Tallies(failures, restarts, alerts, no_host_since))
    fires_at = timeout_at(dest, new_state.entered_at, new_state.alive_at, ctx.timing)
    record = DecisionRecord(
        host_id=ctx.own_id,
        now=ctx.now,
        from_state=state.name.value,
        to_state=dest.value,
        rule=verdict.rule.id,
        note=verdict.note,
        actions=_actions(ctx, new_state, score, fires_at, entry),
        score=score,
        inputs=_inputs(ctx),
        # After a VM action the executor's result triggers the next tick.
        tick_after=0.0 if verdict.rule.nowait and entry is None else ctx.timing.loop_delay,
        timeout_at=fires_at,
        alerts=alerts,
    )
    return new_state, record.actions, record


# --- what the step remembers ------------------------------------------------------------------------


class _Tallies(NamedTuple):
    """The next state's fields that the score and the alerts are worked out from first."""

    start_failures: tuple[float, ...]
    restarts: tuple[float, ...]
    alerts: tuple[Alert, ...]
    no_host_since: float | None


def _next_state(
    ctx: StepContext, verdict: Verdict, dest: S, entry: tuple[Action, Pending] | None, tallies: _Tallies
) -> FsmState:
    """Everything the state machine remembers after this step. Each field is read from the
    verdict and the context (the tallies: from step). Built field by field, not with
    ``dataclasses.replace``: every field is set here, and it runs once per tick."""
    state, now, obs = ctx.state, ctx.now, ctx.obs
    changed = dest is not state.name
    return FsmState(
        config=state.config,
        name=dest,
        entered_at=now if changed else state.entered_at,
        view=obs.whiteboard if obs.whiteboard is not None else state.view,
        history=ctx.history,
        global_maintenance=ctx.global_on,
        start_failures=tallies.start_failures,
        start_attempt_at=_start_attempt_at(ctx, verdict, dest),
        pending=_pending(ctx, entry, changed),
        next_seq=state.next_seq if entry is None else state.next_seq + 1,
        outranked_since=ctx.outranked_since if dest in OUTRANK_KEPT else None,
        lease_busy_at=now if verdict.lease_busy else state.lease_busy_at,
        migrate_failed_at=now if verdict.migrate_failed else state.migrate_failed_at,
        migrate_target=_migrate_target(state, verdict, dest),
        alive_at=_alive_at(ctx, changed),
        restarts=tallies.restarts,
        alerts=tallies.alerts,
        no_host_since=tallies.no_host_since,
        **_priority_fields(ctx, verdict, dest),
    )


def _pending(ctx: StepContext, entry: tuple[Action, Pending] | None, changed: bool) -> Pending | None:
    """The entry action's, else the unanswered one while the state is kept."""
    if entry is not None:
        return entry[1]
    return None if changed else ctx.pending


def _alive_at(ctx: StepContext, changed: bool) -> float | None:
    """The local engine's last sign of life in this state (the silence timers restart there)."""
    if ctx.health is not None and ctx.health.alive:
        return ctx.now
    return None if changed else ctx.state.alive_at


def _start_failures(ctx: StepContext, verdict: Verdict, dest: S) -> tuple[float, ...]:
    changed = dest is not ctx.state.name
    if changed and dest is S.ENGINE_UP:
        return ()  # the engine runs here: this host can start it after all
    if verdict.failure or (changed and _counts_as_failed_start(ctx.state, dest, ctx.health)):
        return (*ctx.failures, ctx.now)
    return ctx.failures


def _counts_as_failed_start(state: FsmState, dest: S, health: EngineHealth | None) -> bool:
    """Leaving EngineStarting without reaching EngineUp after our own start (B1's intent)."""
    if state.name is not S.ENGINE_STARTING or state.start_attempt_at is None:
        return False
    if dest not in (S.ENGINE_STOP, S.ENGINE_FORCE_STOP, S.ENGINE_MAYBE_AWAY):
        return False
    return not (health is not None and health.reason == REASON_LOCKED)  # lost a lease race: not our fault


def _start_attempt_at(ctx: StepContext, verdict: Verdict, dest: S) -> float | None:
    """Our start succeeded at this time; kept while the engine is not up yet (EngineStarting)."""
    if verdict.rule is START_OK:
        return ctx.now
    return ctx.state.start_attempt_at if dest is S.ENGINE_STARTING else None


def _migrate_target(state: FsmState, verdict: Verdict, dest: S) -> int | None:
    """The host our migration goes to, for as long as a migrating state lasts."""
    if dest not in MIGRATING:
        return None
    return verdict.migrate_target.host_id if verdict.migrate_target else state.migrate_target


def _new_score(ctx: StepContext, dest: S, failures: tuple[float, ...], restarts: tuple[float, ...]) -> ScoreBreakdown:
    """The published score, of the new state: the context's unless the state or a count changed."""
    if dest is ctx.state.name and failures == ctx.failures and restarts == ctx.restarts:
        return ctx.score
    config = ctx.state.config
    return compute_score(dest, ctx.obs.local, len(failures), config.score, ctx.timing.max_retries, len(restarts))


class _PriorityFields(TypedDict):
    """The FsmState fields _priority_fields sets, passed on with ``**``."""

    priority_wait_since: float | None
    failback_target: int | None
    failback_since: float | None
    failback_at: float | None
    failback_failed_at: float | None


def _priority_fields(ctx: StepContext, verdict: Verdict, dest: S) -> _PriorityFields:
    """The host-priority bookkeeping (issue 14) carried to the next state.

    priority_wait_since: set by the first down.priority-defer in EngineDown, kept while this host
    stays in EngineDown (so a flapping condition cannot extend the wait), dropped when the
    engine is seen running or EngineDown is left. failback_at: set by up.failback, kept until the
    engine runs elsewhere (it took) or this host starts it again itself (start.ok: it did not,
    failback_failed_at), or the host leaves the stop/down/start path."""
    failback_at, failed_at = _failback_marks(ctx, verdict, dest)
    target, since = _failback_dwell(ctx, dest)
    return _PriorityFields(
        priority_wait_since=_priority_wait(ctx, verdict, dest),
        failback_target=target,
        failback_since=since,
        failback_at=failback_at,
        failback_failed_at=failed_at,
    )


def _priority_wait(ctx: StepContext, verdict: Verdict, dest: S) -> float | None:
    if dest is not S.ENGINE_DOWN or verdict.rule in (DOWN_ENGINE_ELSEWHERE, DOWN_ENGINE_HERE):
        return None
    wait = ctx.state.priority_wait_since
    return ctx.now if wait is None and verdict.rule is DOWN_PRIORITY_DEFER else wait


def _failback_marks(ctx: StepContext, verdict: Verdict, dest: S) -> tuple[float | None, float | None]:
    """(failback_at, failback_failed_at) after this step."""
    failback_at, failed_at = ctx.state.failback_at, ctx.state.failback_failed_at
    if verdict.rule is UP_FAILBACK:
        return ctx.now, failed_at
    if failback_at is None:
        return None, failed_at
    if verdict.rule is START_OK:
        return None, ctx.now
    if verdict.rule is DOWN_ENGINE_ELSEWHERE or dest not in _FAILBACK_PATH:
        return None, failed_at
    return failback_at, failed_at


def _failback_dwell(ctx: StepContext, dest: S) -> tuple[int | None, float | None]:
    """(failback_target, failback_since) after this step. The dwell survives a failback
    migration that fails, so the cold path follows."""
    if dest not in OUTRANK_KEPT:
        return None, None
    if ctx.failback_target is not None:
        return ctx.failback_target.host_id, ctx.failback_since
    if ctx.state.name is S.ENGINE_MIGRATING_AWAY:
        return ctx.state.failback_target, ctx.state.failback_since
    return None, None


_FAILBACK_PATH = frozenset({S.ENGINE_STOP, S.ENGINE_FORCE_STOP, S.ENGINE_DOWN, S.ENGINE_START})


# --- what the step does -------------------------------------------------------------------------------


def _entry_action(ctx: StepContext, verdict: Verdict, dest: S) -> tuple[Action, Pending] | None:
    """The VM action of the state entered (none when the state is kept), and its pending record."""
    if dest is ctx.state.name:
        return None
    seq, now = ctx.state.next_seq, ctx.now
    if dest is S.ENGINE_START:
        return AcquireLeaseAndStartVm(seq), Pending(seq, "start", now)
    if dest is S.ENGINE_STOP:
        return ShutdownVm(seq, ctx.timing.stop_timeout), Pending(seq, "shutdown", now)
    if dest is S.ENGINE_FORCE_STOP:
        reason = f"{verdict.rule.id}: {verdict.note}" if verdict.note else verdict.rule.id
        return DestroyVm(seq, reason), Pending(seq, "destroy", now)
    if dest in MIGRATING:
        target = verdict.migrate_target
        assert target is not None
        deadline = _migrate_deadline(ctx.timing)
        return MigrateVm(seq, target.host_id, target.hostname, deadline), Pending(seq, "migrate", now)
    return None


def _migrate_deadline(timing: TimingConfig) -> float:
    """The hypervisor's migration job ends (aborted if need be) one loop before the FSM's
    migrate_timeout, so its result, not the timer, decides; at least 1 s."""
    return max(timing.migrate_timeout - timing.loop_delay, 1.0)


def _actions(
    ctx: StepContext,
    new: FsmState,
    score: ScoreBreakdown,
    fires_at: float | None,
    entry: tuple[Action, Pending] | None,
) -> tuple[Action, ...]:
    """In order: publish, the entry action, a lease release, the transition's and the new
    alerts' notifications."""
    old, dest = ctx.state, new.name
    actions: list[Action] = [Publish(_published(ctx.now, dest, score, ctx.health, fires_at, priority=ctx.priority))]
    if entry is not None:
        actions.append(entry[0])
    release = _release_lease(ctx, dest, new.pending)
    if release is not None:
        actions.append(release)
    if dest is not old.name:
        actions.append(Notify(f"{old.name.value}-{dest.value}"))
    raised = {a.kind for a in old.alerts}
    actions.extend(Notify(alert=a.kind, reason=a.reason) for a in new.alerts if a.kind not in raised)
    return tuple(actions)


def _published(
    now: float,
    name: S,
    score: ScoreBreakdown,
    health: EngineHealth | None,
    timeout_at: float | None,
    stopped: bool = False,
    priority: int = 0,
) -> PublishedRecord:
    return PublishedRecord(
        host_ts=int(now),
        state=name.value,
        score=score.total,
        engine_status=health if health is not None else NO_READING_HEALTH,
        maintenance=name in (S.LOCAL_MAINTENANCE, S.LOCAL_MAINTENANCE_MIGRATE_VM),
        stopped=stopped,
        timeout_at=timeout_at,
        priority=priority,
    )


def _release_lease(ctx: StepContext, dest: S, pending: Pending | None) -> ReleaseLease | None:
    """Invariant 2: never release while the VM may run here, but release as soon as it is
    confirmed gone, whatever the state: a lease held here without a VM (its holder being a
    lease keeper, not the VM process) would keep every other host from starting the VM
    for as long as, say, EngineUnexpectedlyDown lasts (560 s)."""
    lease, health = ctx.obs.lease, ctx.health
    if lease is None or not lease.held_here or pending is not None:
        return None
    if dest is S.ENGINE_START or health is None or not health.gone:
        return None
    return ReleaseLease(f"VM is {health.vm} here while this host holds its lease")


# --- alerts (he_ha.fsm.alerts) ----------------------------------------------------------------------------


def _engine_runs_somewhere(ctx: StepContext) -> bool:
    """The VM runs here, a live peer reports it up, or a live host holds its lease."""
    health, best = ctx.health, ctx.cluster.best_engine
    if health is None or health.running or health.unknown:
        return True  # here, or it may be
    return (best is not None and best.running) or lease_blocks_start(ctx) is not None


def _cannot_start_here(ctx: StepContext, score: ScoreBreakdown) -> str | None:
    if ctx.local.local_maintenance:
        return "this host is in local maintenance"
    if ctx.local.storage_ok is not True:
        return "storage is not usable here"
    if score.total <= 0:
        return f"this host's score is 0 ({score.override or 'penalties'})"
    return None


def _gave_up(ctx: StepContext, verdict: Verdict, dest: S, score: ScoreBreakdown) -> tuple[str, str] | None:
    """HA gives up: the engine VM runs nowhere and no host can start it. Returns the alert
    kind and its reason, or None. Judged only on a mature, fresh view outside global
    maintenance, never while this host's own start (or local restart) is under way."""
    cluster = ctx.cluster
    if ctx.global_on or not cluster.mature or cluster.stale or cluster.too_new or _engine_runs_somewhere(ctx):
        return None
    if eligible_peers(ctx):
        return None
    starting = verdict.restart or dest in (S.ENGINE_START, S.ENGINE_STARTING) or verdict.rule is DOWN_RESTART_BACKOFF
    active = {a.kind for a in ctx.state.alerts}
    retries, limit = len(ctx.failures) + len(ctx.restarts), ctx.timing.max_retries
    peers = "no live peer can take it" if cluster.alive else "no live peer"
    if retries >= limit and (A.GAVE_UP_RETRY_LIMIT in active or not starting):
        return A.GAVE_UP_RETRY_LIMIT, (
            f"the engine VM runs nowhere: retry limit reached here ({len(ctx.failures)} failed start(s) and "
            f"{len(ctx.restarts)} crash restart(s) of {limit} inside {ctx.timing.retry_window:g} s), {peers}"
        )
    why = _cannot_start_here(ctx, score)
    if why is None:
        return None
    return A.GAVE_UP_NO_ELIGIBLE_HOST, f"the engine VM runs nowhere and no host can start it: {why}, {peers}"


def _alerts(
    ctx: StepContext, verdict: Verdict, dest: S, score: ScoreBreakdown
) -> tuple[tuple[Alert, ...], float | None]:
    """The alerts active after this step (each keeps the time it was first raised), and the
    new ``no_host_since``."""
    found = dict(_lease_alerts(ctx, verdict))
    no_host_since, gave_up = _gave_up_alert(ctx, verdict, dest, score)
    found.update(gave_up)
    before = {a.kind: a for a in ctx.state.alerts}
    now = ctx.now
    alerts = tuple(Alert(kind, reason, before[kind].since if kind in before else now) for kind, reason in found.items())
    return alerts, no_host_since


def _lease_alerts(ctx: StepContext, verdict: Verdict) -> list[tuple[str, str]]:
    """Global maintenance: a second copy destroyed, or the VM here without its lease."""
    health, lease = ctx.health, ctx.obs.lease
    if not ctx.global_on:
        return []
    if verdict.rule in (SAFETY_FOREIGN_LEASE, SAFETY_FOREIGN_LEASE_HOLD):
        return [(A.SECOND_COPY_DESTROYED, f"global maintenance, but a second copy: {verdict.note}; destroyed")]
    if health is None or not health.running or lease is None or lease.held_here:
        return []
    if lease.owner not in (None, ctx.own_id) and ctx.sanlock.get(lease.owner) not in (
        SanlockHost.DEAD,
        SanlockHost.FREE,
    ):
        return []
    owner = "none" if lease.owner is None else f"host {lease.owner}"
    return [
        (
            A.VM_WITHOUT_LEASE,
            f"the engine VM runs here without its lease (recorded owner: {owner}, not live); global maintenance: "
            "he-ha leaves it alone. When global maintenance ends it is destroyed (safety.lease-lost) unless it "
            "holds its lease by then",
        )
    ]


def _gave_up_alert(
    ctx: StepContext, verdict: Verdict, dest: S, score: ScoreBreakdown
) -> tuple[float | None, list[tuple[str, str]]]:
    """The new ``no_host_since`` and the gave-up alert, if raised. No eligible host is
    reported after no_host_alert_after, by the live host with the lowest id only."""
    gave_up = _gave_up(ctx, verdict, dest, score)
    if gave_up is None:
        return None, []
    kind, reason = gave_up
    if kind == A.GAVE_UP_RETRY_LIMIT:
        return None, [(kind, reason)]
    no_host_since = ctx.state.no_host_since if ctx.state.no_host_since is not None else ctx.now
    lowest = all(ctx.own_id < p.host_id for p in ctx.cluster.alive)  # one report per cluster
    waited = ctx.now - no_host_since
    if lowest and waited >= ctx.timing.no_host_alert_after:
        return no_host_since, [(kind, f"{reason} (for {waited:g} s)")]
    return no_host_since, []


def _inputs(ctx: StepContext) -> DecisionInputs:
    lease = ctx.obs.lease
    return DecisionInputs(
        local_health=ctx.health,
        local_maintenance=ctx.local.local_maintenance,
        global_maintenance=ctx.global_on,
        storage_ok=ctx.local.storage_ok,
        cluster=ctx.cluster,
        own_score=ctx.score.total,
        lease_owner=None if lease is None else lease.owner,
        lease_held_here=None if lease is None else lease.held_here,
        result=ctx.result,
        start_failures=len(ctx.failures),
        outranked_since=ctx.outranked_since,
        engine_liveness=None if ctx.health is None else ctx.health.liveness,
        local_restarts=len(ctx.restarts),
    )


# --- the supervisor stops -----------------------------------------------------------------------------

AGENT_STOPPED = rule("agent.stopped", DECISION_STATES, S.AGENT_STOPPED, "the supervisor is stopping")


def stop(state: FsmState, obs: Observation) -> tuple[FsmState, tuple[Action, ...], DecisionRecord]:
    """The supervisor is exiting: publish AgentStopped (score 0, stopped=1) and nothing else.

    The VM is left alone, whatever runs: stopping the supervisor never stops the engine.
    """
    ctx = build_context(state, obs)
    timing = ctx.timing
    score = compute_score(
        S.AGENT_STOPPED, obs.local, len(ctx.failures), state.config.score, timing.max_retries, len(ctx.restarts)
    )
    publish = Publish(
        _published(obs.now, S.AGENT_STOPPED, score, ctx.health, None, stopped=True, priority=ctx.priority)
    )
    new_state = FsmState(config=state.config, name=S.AGENT_STOPPED, entered_at=obs.now)
    record = DecisionRecord(
        host_id=ctx.own_id,
        now=obs.now,
        from_state=state.name.value,
        to_state=S.AGENT_STOPPED.value,
        rule=AGENT_STOPPED.id,
        note="",
        actions=(publish,),
        score=score,
        inputs=_inputs(ctx),
        tick_after=timing.loop_delay,
        timeout_at=None,
    )
    return new_state, record.actions, record
