"""What one step decides on (``StepContext``), what a state's logic returns (``Verdict``),
and the small judgements several states share."""

from __future__ import annotations

from dataclasses import dataclass, replace

from he_ha.fsm.cluster_view import ClusterView, Snapshot, extend_history, judge
from he_ha.fsm.fsm_state import FsmState, Pending
from he_ha.fsm.health import EngineHealth
from he_ha.fsm.observation import ActionResult, LocalReadings, Observation, PeerRecord, SanlockHost
from he_ha.fsm.peer_choice import failback_target, outranked_by
from he_ha.fsm.rules import Rule
from he_ha.fsm.score import ScoreBreakdown, compute_score
from he_ha.fsm.states import UP_FAMILY
from he_ha.fsm.states import StateName as S
from he_ha.fsm.timing import TimingConfig

# The outranked timer survives a yield migration that fails, so the cold path follows at once.
OUTRANK_KEPT = UP_FAMILY | {S.ENGINE_MIGRATING_AWAY}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rule a state's logic picked, why, and what the step must remember of it (the flags
    and the target feed ``he_ha.fsm.machine``'s next-memory function)."""

    rule: Rule
    note: str = ""
    failure: bool = False  # count one failed start
    restart: bool = False  # count one local restart after a crash
    lease_busy: bool = False
    migrate_target: PeerRecord | None = None
    migrate_failed: bool = False


@dataclass(frozen=True, slots=True)
class StepContext:
    state: FsmState
    obs: Observation
    now: float
    own_id: int
    timing: TimingConfig
    local: LocalReadings
    health: EngineHealth | None
    cluster: ClusterView
    history: tuple[Snapshot, ...]
    sanlock: dict[int, SanlockHost]
    global_on: bool
    failures: tuple[float, ...]
    restarts: tuple[float, ...]
    score: ScoreBreakdown
    result: ActionResult | None  # the result answering our pending action
    pending: Pending | None  # still unanswered
    outranked_since: float | None
    priority: int  # this host's
    failback_target: PeerRecord | None  # failback configured: where it would go now (issue 14)
    failback_since: float | None  # that target has qualified since then


def pending_overdue(ctx: StepContext) -> bool:
    """No pending action at all counts as overdue: nothing will ever answer."""
    pending = ctx.pending
    if pending is None:
        return True
    limit = ctx.timing.migrate_timeout if pending.kind == "migrate" else ctx.timing.action_timeout
    return ctx.now >= pending.issued_at + limit


def not_ready_ceiling(ctx: StepContext, limit: float) -> float:
    """How long an engine that is not healthy may stay in a silence-timed state at most."""
    return max(ctx.timing.not_ready_timeout, limit)


def ceiling_reached(ctx: StepContext, limit: float) -> bool:
    entered = ctx.state.entered_at
    return entered is not None and ctx.now >= entered + not_ready_ceiling(ctx, limit)


def build_context(state: FsmState, obs: Observation) -> StepContext:
    cfg, now = state.config, obs.now
    timing = cfg.timing
    view = obs.whiteboard if obs.whiteboard is not None else state.view
    history = extend_history(state.history, obs.whiteboard, timing)
    health = obs.local.engine_health
    sanlock = dict(obs.sanlock_hosts) if obs.sanlock_hosts else {}
    cluster = judge(
        own_id=cfg.host_id,
        now=now,
        history=history,
        view=view,
        sanlock=sanlock,
        local_health=health,
        timing=timing,
    )
    failures = tuple(t for t in state.start_failures if now < t + timing.retry_window)
    restarts = tuple(t for t in state.restarts if now < t + timing.retry_window)
    result = _answer(state, obs)
    score = compute_score(state.name, obs.local, len(failures), cfg.score, timing.max_retries, len(restarts))
    ctx = StepContext(
        state=state,
        obs=obs,
        now=now,
        own_id=cfg.host_id,
        timing=timing,
        local=obs.local,
        health=health,
        cluster=cluster,
        history=history,
        sanlock=sanlock,
        global_on=_global_on(state, obs),
        failures=failures,
        restarts=restarts,
        score=score,
        result=result,
        pending=state.pending if result is None else None,
        outranked_since=_outranked_since(state, cluster, score.total, now),
        priority=cfg.priority,
        failback_target=None,
        failback_since=None,
    )
    return _with_failback(ctx)


def _global_on(state: FsmState, obs: Observation) -> bool:
    """This read's global flag; the last known one when slot 0 could not be read."""
    known = obs.whiteboard.global_maintenance if obs.whiteboard is not None else None
    return state.global_maintenance if known is None else known


def _answer(state: FsmState, obs: Observation) -> ActionResult | None:
    """The observation's result if it answers our pending action (a stale seq is ignored)."""
    pending, result = state.pending, obs.result
    return result if pending is not None and result is not None and result.seq == pending.seq else None


def _outranked_since(state: FsmState, cluster: ClusterView, own_score: int, now: float) -> float | None:
    if state.name not in OUTRANK_KEPT or outranked_by(cluster, own_score, state.config.timing) is None:
        return None
    return state.outranked_since if state.outranked_since is not None else now


def _with_failback(ctx: StepContext) -> StepContext:
    """The failback target (issue 14) and since when it qualifies: EngineUp(BadHealth) only."""
    state = ctx.state
    if state.name not in UP_FAMILY:
        return ctx
    target = failback_target(ctx, ctx.score.total)
    if target is None:
        return ctx
    kept = state.failback_target == target.host_id and state.failback_since is not None
    since = state.failback_since if kept else ctx.now
    return replace(ctx, failback_target=target, failback_since=since)
