"""``step(state, observation) -> (state, actions, record)``: the whole decision logic, pure.

No I/O, no clock reads, no randomness: time arrives as ``observation.now``. Each step runs,
in order: the safety rule (invariant 4), the current state's guards (spec §3.5), then the
state's own logic (spec §3.6, with the fixes listed in docs/fsm.md). Entering EngineStart,
EngineStop, EngineForceStop or LocalMaintenanceMigrateVm emits that state's VM action; the
executor's result comes back in a later observation, matched by sequence number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypedDict

from he_ha.config import ScoreConfig
from he_ha.fsm import alerts as A
from he_ha.fsm import rules as R
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
from he_ha.fsm.cluster_view import ClusterView, Snapshot, extend_history, judge
from he_ha.fsm.decision import DecisionInputs, DecisionRecord
from he_ha.fsm.health import (
    HEALTH_GOOD,
    LIVENESS_NOT_READY,
    NO_READING_HEALTH,
    REASON_LOCKED,
    VM_DOWN,
    VM_DOWN_UNEXPECTED,
    EngineHealth,
)
from he_ha.fsm.observation import (
    ActionResult,
    LocalReadings,
    Observation,
    Outcome,
    PeerRecord,
    SanlockHost,
    WhiteboardView,
)
from he_ha.fsm.rules import STATE_GUARDS, GuardKind, Rule
from he_ha.fsm.score import ScoreBreakdown, compute_score
from he_ha.fsm.states import MIGRATING, UP_FAMILY
from he_ha.fsm.states import StateName as S
from he_ha.fsm.timing import TimingConfig


@dataclass(frozen=True, slots=True)
class FsmConfig:
    host_id: int
    timing: TimingConfig = TimingConfig()
    score: ScoreConfig = ScoreConfig()
    # Host priority (issue 14): higher is preferred; hosted-engine.conf he_ha_priority, default 0.
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Pending:
    """A VM action whose result has not been reported yet."""

    seq: int
    kind: str  # start | shutdown | destroy | migrate
    issued_at: float


@dataclass(frozen=True, slots=True)
class FsmState:
    config: FsmConfig
    name: S = S.REINITIALIZE
    entered_at: float | None = None  # when the current state was entered: its timer start
    view: WhiteboardView | None = None  # the last successful whiteboard read
    history: tuple[Snapshot, ...] = ()
    global_maintenance: bool = False  # last known global flag
    start_failures: tuple[float, ...] = ()  # times of failed starts inside the retry window
    start_attempt_at: float | None = None  # our start succeeded; the engine is not up yet
    pending: Pending | None = None
    next_seq: int = 1
    outranked_since: float | None = None  # a peer beats us by the yield threshold since
    lease_busy_at: float | None = None
    migrate_failed_at: float | None = None
    migrate_target: int | None = None
    alive_at: float | None = None  # the local engine last showed life (healthy or not ready) in this state
    restarts: tuple[float, ...] = ()  # local restarts after a VM crash inside the retry window (issue 14)
    alerts: tuple[Alert, ...] = ()  # active alerts (he_ha.fsm.alerts)
    no_host_since: float | None = None  # since when no host can start the engine VM, which runs nowhere
    # Host priorities (issue 14): since when EngineDown defers its start to a better-priority peer
    priority_wait_since: float | None = None
    failback_target: int | None = None  # the better-priority host a failback would go to...
    failback_since: float | None = None  # ...eligible and ready since then (the failback dwell)
    failback_at: float | None = None  # this host stopped the VM for a failback; not settled yet
    failback_failed_at: float | None = None  # a failback did not take: this host started the VM again


def initial_state(
    host_id: int, timing: TimingConfig | None = None, score: ScoreConfig | None = None, priority: int = 0
) -> FsmState:
    return FsmState(FsmConfig(host_id, timing or TimingConfig(), score or ScoreConfig(), priority))


@dataclass(frozen=True, slots=True)
class _Decision:
    rule: Rule
    note: str = ""
    failure: bool = False  # count one failed start
    restart: bool = False  # count one local restart after a crash
    lease_busy: bool = False
    migrate_target: PeerRecord | None = None
    migrate_failed: bool = False


@dataclass(frozen=True, slots=True)
class _Ctx:
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


# --- the safety rule and the guards -------------------------------------------------------------


def _foreign_lease(ctx: _Ctx) -> _Decision | None:
    """Our VM runs while this host does not hold its lease (invariants 1, 2 and 4).

    Another host recorded as the owner (``safety.foreign-lease``): whether that owner is
    alive or not, our copy is unprotected: a live owner means two copies, a dead one means
    anyone may acquire the lease and start a second copy. The only exception is our own
    migration handing the lease to its target.
    No owner, or our own id without this host holding it (``safety.lease-lost``): the
    holder died (lease keeper killed, sanlock daemon restarted) or the lockspace was lost,
    so sanlock may grant the lease to another host at any moment. The exception is our own
    migration while it is under way (the lease is between source and target).
    A lease status that could not be read (None) decides nothing.

    In global maintenance he-ha keeps its hands off (issue 14): a VM running here without its
    lease while no live host holds it (no owner, our own stale record, or an owner sanlock
    reports DEAD or FREE) is not destroyed but reported (the vm-without-lease alert,
    ``global-maintenance.vm-without-lease``). The one exception is a second copy: another
    host that sanlock does not report dead or free owns the lease, so the VM may run there
    too: ``safety.foreign-lease`` destroys ours, in global maintenance as everywhere.
    """
    lease, health = ctx.obs.lease, ctx.health
    if lease is None or lease.held_here or health is None or not health.running:
        return None
    migrating = ctx.state.name in MIGRATING
    if lease.owner in (None, ctx.own_id):
        if migrating and ctx.pending is not None:
            return None
        go, hold = R.SAFETY_LEASE_LOST, R.SAFETY_LEASE_LOST_HOLD
        owner = "no host" if lease.owner is None else "this host's previous holder"
        note = f"VM runs here but this host does not hold its lease (recorded owner: {owner})"
        if ctx.global_on:
            return _hands_off(ctx, note)
    else:
        if migrating and ctx.state.migrate_target == lease.owner:
            return None
        go, hold = R.SAFETY_FOREIGN_LEASE, R.SAFETY_FOREIGN_LEASE_HOLD
        status = ctx.sanlock.get(lease.owner, SanlockHost.UNKNOWN)
        note = f"VM runs here but host {lease.owner} (sanlock: {status.value}) owns its lease"
        if ctx.global_on and status in (SanlockHost.DEAD, SanlockHost.FREE):
            return _hands_off(ctx, note)
    if ctx.state.name is S.ENGINE_FORCE_STOP and ctx.pending is not None:
        return _Decision(hold, note)
    if ctx.state.name is S.ENGINE_FORCE_STOP:
        return None  # the destroy was answered: ForceStop's own logic decides
    return _Decision(go, note)


def _hands_off(ctx: _Ctx, note: str) -> _Decision | None:
    """Global maintenance: nothing is done to the VM. GlobalMaintenance says so in its record;
    any other state first reaches GlobalMaintenance by its guard (LocalMaintenance, which has
    none, holds: local-maintenance.global-hands-off)."""
    if ctx.state.name is S.GLOBAL_MAINTENANCE:
        return _Decision(R.GM_VM_WITHOUT_LEASE, f"{note}; global maintenance: reported, not destroyed")
    return None


def _guards(ctx: _Ctx) -> _Decision | None:
    state, health = ctx.state, ctx.health
    guards = STATE_GUARDS[state.name]
    # Hands-off global maintenance (issue 14): the global guard comes before a state's timer,
    # so no expiring timer can stop the VM in the tick global maintenance is first seen.
    global_first = ctx.global_on and any(g.kind is GuardKind.GLOBAL and g.dest is not None for g in guards)
    for guard in guards:
        kind = guard.kind
        if kind is GuardKind.TIMEOUT and global_first:
            continue
        if kind is GuardKind.TIMEOUT:
            assert guard.timeout is not None
            limit = getattr(ctx.timing, guard.timeout)
            start = _silence_start(ctx) if guard.silence else state.entered_at
            if start is not None and ctx.now >= start + limit:
                what = f"{limit:g} s of engine silence" if guard.silence else f"{limit:g} s"
                return _Decision(R.guard_rule(state.name, guard), f"{what} in {state.name.value}")
        elif kind is GuardKind.GLOBAL:
            fired = ctx.global_on
        elif kind is GuardKind.LOCAL:
            fired = ctx.local.local_maintenance and not (health is not None and health.running)
        else:  # VM_UNKNOWN; ReinitializeFSM waits for a first reading in its own logic (B14)
            fired = (health is None and state.name is not S.REINITIALIZE) or (health is not None and health.unknown)
        if kind is not GuardKind.TIMEOUT and fired:
            return _Decision(R.guard_rule(state.name, guard))
    return None


def _silence_start(ctx: _Ctx) -> float | None:
    """Since when the local engine has shown no life in this state (the silence timers' start).

    Entering the state starts it; every step at which the engine is healthy or answers but is
    not ready restarts it (slow is not dead, issue 14)."""
    state = ctx.state
    start = state.entered_at
    if start is None:
        return None
    if state.alive_at is not None:
        start = max(start, state.alive_at)
    if ctx.health is not None and ctx.health.alive:
        start = ctx.now
    return start


def _ceiling(ctx: _Ctx, limit: float) -> float:
    """How long an engine that is not healthy may stay in a silence-timed state at most."""
    return max(ctx.timing.not_ready_timeout, limit)


def _ceiling_reached(ctx: _Ctx, limit: float) -> bool:
    entered = ctx.state.entered_at
    return entered is not None and ctx.now >= entered + _ceiling(ctx, limit)


# --- helpers shared by several states ---------------------------------------------------------------


def _migration_target(ctx: _Ctx) -> PeerRecord | None:
    """The best live host that can take the VM: positive score, not in maintenance, no VM.
    Among those within yield_threshold of the best of them, the best priority wins (issue 14);
    then the best score, then the lowest id."""
    if ctx.cluster.stale:
        return None
    fit = [
        p
        for p in ctx.cluster.alive
        if p.score > 0 and not p.maintenance and not p.stopped and not p.engine_status.running
    ]
    if not fit:
        return None
    floor = max(p.score for p in fit) - ctx.timing.yield_threshold
    return max((p for p in fit if p.score > floor), key=lambda p: (p.priority, p.score, -p.host_id))


def _migrate_backoff(ctx: _Ctx) -> bool:
    failed = ctx.state.migrate_failed_at
    return failed is not None and ctx.now < failed + ctx.timing.migrate_retry_delay


def _migrate_away(ctx: _Ctx, go: Rule, no_target: Rule, evacuate: Rule) -> _Decision:
    """Local maintenance with the VM here: migrate it live to the best eligible peer; if the
    last live migration failed (or the hypervisor cannot migrate), shut the VM down so that
    peer starts it. The host is vacated either way, as the admin asked; without an eligible
    peer the VM stays up here and the record says why."""
    target = _migration_target(ctx)
    if target is None:
        why = "whiteboard view is stale" if ctx.cluster.stale else "no live host with a positive score and no VM"
        return _Decision(no_target, f"the VM stays up here: {why}")
    if _migrate_backoff(ctx):
        return _Decision(evacuate, f"live migration failed; host {target.host_id} will start the VM")
    return _Decision(go, f"migrate to host {target.host_id}", migrate_target=target)


def _move_away(ctx: _Ctx, target: PeerRecord | None, migrate: Rule, cold: Rule, why: str) -> _Decision:
    """The VM should run on a better host (yield, failback): live-migrate it there, unless a
    migration failed moments ago or no host can take it live; then the cold path (shut down
    here, the better host starts it)."""
    if target is None:
        return _Decision(cold, f"{why}; no live host can take the VM by migration: shut it down here")
    if _migrate_backoff(ctx):
        return _Decision(cold, f"{why}; live migration failed moments ago: shut the VM down for it to start")
    return _Decision(migrate, f"{why}: migrate to host {target.host_id}", migrate_target=target)


def _eligible_peers(ctx: _Ctx) -> list[PeerRecord]:
    """Live peers that could run the VM: positive score, not in maintenance, not stopped."""
    return [p for p in ctx.cluster.alive if p.score > 0 and not p.maintenance and not p.stopped]


def _beats(score: int, priority: int, own_score: int, own_priority: int, threshold: int) -> bool:
    """A host with ``score``/``priority`` goes before one with ``own_score``/``own_priority`` in
    the start order (issue 14): a score higher by the threshold, whatever the priorities; else a
    higher score at no worse a priority (with equal priorities: the original's "strictly
    higher score"). A better priority with a score inside the threshold is the other way round:
    see ``_preferred_peers``."""
    return score >= own_score + threshold or (score > own_score and priority >= own_priority)


def _band_floor(ctx: _Ctx, own_score: int) -> int:
    """Scores above this are inside the band: within yield_threshold of the best live score."""
    best = max([own_score, *(p.score for p in ctx.cluster.alive if p.score > 0)])
    return best - ctx.timing.yield_threshold


def _preferred_peers(ctx: _Ctx, own_score: int) -> list[PeerRecord]:
    """Live eligible peers with a better priority than ours, inside the band, whose VM is
    confirmed down (ready to start it), best first: priority, score, lowest id."""
    floor = _band_floor(ctx, own_score)
    fit = [p for p in _eligible_peers(ctx) if p.priority > ctx.priority and p.score > floor and p.engine_status.gone]
    return sorted(fit, key=lambda p: (-p.priority, -p.score, p.host_id))


def _failback_target(ctx: _Ctx, own_score: int) -> PeerRecord | None:
    """Failback configured: the better-priority peer the VM would move to now, or None. It must
    be what the start order picks once the VM stops here: eligible, ready, inside the band, and
    no live peer goes before it (``_beats``). Judged on a fresh view only."""
    if not ctx.timing.failback or ctx.cluster.stale:
        return None
    preferred = _preferred_peers(ctx, own_score)
    if not preferred:
        return None
    target, threshold = preferred[0], ctx.timing.yield_threshold
    if any(
        p.host_id != target.host_id
        and p.score > 0
        and _beats(p.score, p.priority, target.score, target.priority, threshold)
        for p in ctx.cluster.alive
    ):
        return None  # another live host would start before it (a better score, not ready yet)
    return target


def _restart_delay(timing: TimingConfig, earlier: int) -> float:
    """The back-off before a local restart that follows ``earlier`` ones inside the retry window."""
    return 0.0 if earlier == 0 else timing.restart_backoff * 2 ** (earlier - 1)


def _restart_locally(ctx: _Ctx) -> tuple[_Decision | None, str]:
    """The VM crashed here: restart it here when no live peer can take it (issue 14).

    Restarts count toward the retry limit with the failed starts; at the limit (or when a
    live peer can take it, or this host cannot start it) the original's path applies: score 0
    in EngineUnexpectedlyDown while others take over. Returns the decision, or None and why not.
    The first restart inside the retry window goes straight to EngineStart, whose action
    takes the lease before the launch (invariant 1), without releasing it first; later ones
    go to EngineDown and wait their back-off there (down.restart-backoff)."""
    retries = len(ctx.failures) + len(ctx.restarts)
    if retries >= ctx.timing.max_retries:
        return None, f"retry limit reached ({retries} of {ctx.timing.max_retries} inside the retry window)"
    peers = _eligible_peers(ctx)
    if peers:
        return None, f"host {peers[0].host_id} can take it over"
    if ctx.local.local_maintenance:
        return None, "local maintenance"
    if ctx.local.storage_ok is not True:
        return None, f"storage_ok={ctx.local.storage_ok}"
    if ctx.cluster.too_new:
        return None, f"hosts {list(ctx.cluster.too_new)} write newer metadata"
    held = _lease_blocks_start(ctx)
    if held:
        return None, held
    delay = _restart_delay(ctx.timing, len(ctx.restarts))
    note = f"no live peer can take it; local restart {len(ctx.restarts) + 1} (retries {retries + 1} of {ctx.timing.max_retries})"
    if delay == 0:
        return _Decision(R.CRASH_RESTART_HERE, note, restart=True), ""
    return _Decision(R.CRASH_RESTART_BACKOFF, f"{note}, after {delay:g} s", restart=True), ""


def _crashed(ctx: _Ctx, otherwise: Rule) -> _Decision:
    decision, why_not = _restart_locally(ctx)
    return decision or _Decision(otherwise, f"no local restart: {why_not}")


def _lease_blocks_start(ctx: _Ctx) -> str | None:
    """Why the VM lease is known to be held by a live peer, or None.

    sanlock's DEAD/FREE mean the lease can be acquired; LIVE/FAIL mean it cannot. With no
    sanlock data, trust the whiteboard's liveness for the owner.
    """
    lease = ctx.obs.lease
    if lease is None or lease.owner is None or lease.owner == ctx.own_id:
        return None
    status = ctx.sanlock.get(lease.owner)
    if status in (SanlockHost.DEAD, SanlockHost.FREE):
        return None
    if status in (SanlockHost.LIVE, SanlockHost.FAIL):
        return f"host {lease.owner} holds the VM lease (sanlock: {status.value})"
    if any(p.host_id == lease.owner for p in ctx.cluster.alive):
        return f"host {lease.owner} holds the VM lease and is alive on the whiteboard"
    return None


def _pending_overdue(ctx: _Ctx) -> bool:
    """No pending action at all counts as overdue: nothing will ever answer."""
    pending = ctx.pending
    if pending is None:
        return True
    limit = ctx.timing.migrate_timeout if pending.kind == "migrate" else ctx.timing.action_timeout
    return ctx.now >= pending.issued_at + limit


# --- the states' own logic ---------------------------------------------------------------------------------


def _reinitialize(ctx: _Ctx) -> _Decision:
    if ctx.health is None:
        return _Decision(R.REINIT_AWAIT_HEALTH)
    return _Decision(R.REINIT_VM_UP if ctx.health.running else R.REINIT_VM_DOWN)


def _engine_down(ctx: _Ctx) -> _Decision:
    cluster = ctx.cluster
    best = cluster.best_engine
    if best is not None and best.running:
        if cluster.best_engine_host == ctx.own_id:
            return _Decision(R.DOWN_ENGINE_HERE)
        return _Decision(R.DOWN_ENGINE_ELSEWHERE, f"engine on host {cluster.best_engine_host}")
    if not cluster.mature:
        return _Decision(R.DOWN_VIEW_IMMATURE)
    if cluster.stale:
        return _Decision(R.DOWN_VIEW_STALE, f"view age {cluster.view_age}")
    if ctx.local.storage_ok is not True:
        return _Decision(R.DOWN_STORAGE, f"storage_ok={ctx.local.storage_ok}")
    if cluster.too_new:
        return _Decision(R.DOWN_TOO_NEW, f"hosts {list(cluster.too_new)}")
    held = _lease_blocks_start(ctx)
    if held:
        return _Decision(R.DOWN_LEASE_HELD, held)
    busy = ctx.state.lease_busy_at
    if busy is not None and ctx.now < busy + ctx.timing.lease_busy_backoff:
        return _Decision(R.DOWN_LEASE_BACKOFF)
    if ctx.restarts:
        ready_at = ctx.restarts[-1] + _restart_delay(ctx.timing, len(ctx.restarts) - 1)
        if ctx.now < ready_at:
            return _Decision(R.DOWN_RESTART_BACKOFF, f"local restart in {ready_at - ctx.now:g} s")
    return _start_order(ctx)


def _start_order(ctx: _Ctx) -> _Decision:
    """EngineDown, nothing else in the way: start here, or let a better host start (issue 14).

    With equal priorities this is the original's rule: start unless a live peer scores strictly
    higher (ties all try; the lease admits one). With priorities, among the hosts whose score is
    within yield_threshold of the best (the band) the better priority goes first: a higher score
    no longer wins against a better priority inside the band, and a host defers to a ready
    better-priority peer for priority_start_delay at most, then starts anyway."""
    own, prio, timing = ctx.score.total, ctx.priority, ctx.timing
    scored = [p for p in ctx.cluster.alive if p.score > 0]
    beaten_by = [p for p in scored if _beats(p.score, p.priority, own, prio, timing.yield_threshold)]
    if beaten_by:
        winner = max(beaten_by, key=lambda p: (p.score, -p.host_id))
        return _Decision(R.DOWN_BETTER_HOST, f"host {winner.host_id} scores {winner.score} > {own}")
    preferred = _preferred_peers(ctx, own)
    if preferred:
        better = preferred[0]
        who = f"host {better.host_id} (priority {better.priority} > {prio}, score {better.score})"
        since = ctx.state.priority_wait_since
        since = ctx.now if since is None else since
        waited = ctx.now - since
        if waited < timing.priority_start_delay:
            return _Decision(
                R.DOWN_PRIORITY_DEFER,
                f"{who} is ready to start it; waiting {timing.priority_start_delay - waited:g} s more at most",
            )
        return _Decision(R.DOWN_PRIORITY_EXPIRED, f"{who} did not start it within {timing.priority_start_delay:g} s")
    rival = ctx.cluster.best_score_host
    if rival is not None and rival.score > own:  # inside the band, with a lower priority
        return _Decision(
            R.DOWN_START_PREFERRED,
            f"own score {own} priority {prio}; host {rival.host_id} scores {rival.score} at priority {rival.priority}",
        )
    rival_text = "no live peer" if rival is None else f"best peer host {rival.host_id} scores {rival.score}"
    return _Decision(R.DOWN_START, f"own score {own}, {rival_text}")


def _engine_start(ctx: _Ctx) -> _Decision:
    result = ctx.result
    if result is not None:
        if result.outcome is Outcome.OK:
            return _Decision(R.START_OK)
        if result.outcome is Outcome.LEASE_BUSY:
            return _Decision(R.START_LEASE_BUSY, result.reason, lease_busy=True)
        return _Decision(R.START_FAILED, result.reason, failure=True)
    if _pending_overdue(ctx):
        return _Decision(R.START_TIMEOUT, failure=True)
    return _Decision(R.START_AWAIT)


def _engine_starting(ctx: _Ctx) -> _Decision:
    health = ctx.health
    assert health is not None  # the vm-unknown guard ran first
    if health.running:
        if health.health == HEALTH_GOOD:
            return _Decision(R.STARTING_UP, health.detail)
        if _ceiling_reached(ctx, ctx.timing.starting_timeout):
            ceiling = _ceiling(ctx, ctx.timing.starting_timeout)
            return _Decision(R.STARTING_NOT_READY_CEILING, f"not healthy for {ceiling:g} s ({health.liveness})")
        if health.liveness == LIVENESS_NOT_READY:
            return _Decision(R.STARTING_NOT_READY, f"{health.detail}: {health.reason}")
        return _Decision(R.STARTING_POWERING_UP, health.detail)
    if health.vm == VM_DOWN:
        return _Decision(R.STARTING_DOWN, health.reason or "")
    if health.vm == VM_DOWN_UNEXPECTED:
        decision, _ = _restart_locally(ctx)
        if decision is not None:
            return decision
    return _Decision(R.STARTING_VANISHED, health.vm)


def _outranked_by(cluster: ClusterView, own_score: int, timing: TimingConfig) -> PeerRecord | None:
    """The live peer beating our score by the yield threshold, judged on a fresh view only."""
    rival = cluster.best_score_host
    if cluster.stale or rival is None:
        return None
    return rival if rival.score >= own_score + timing.yield_threshold else None


def _engine_up(ctx: _Ctx) -> _Decision:
    health = ctx.health
    assert health is not None
    if health.vm == VM_DOWN:
        return _Decision(R.UP_VM_DOWN, health.reason or "")
    if health.vm == VM_DOWN_UNEXPECTED:
        return _crashed(ctx, R.UP_VM_CRASHED)
    if not health.running:
        return _Decision(R.UP_VM_NOT_UP, health.vm)
    cluster = ctx.cluster
    if not cluster.stale and cluster.best_engine_host != ctx.own_id:
        return _Decision(R.UP_ENGINE_ELSEWHERE, f"host {cluster.best_engine_host} runs a better-ranked engine")
    healthy = health.health == HEALTH_GOOD
    maintenance_note = ""
    if ctx.local.local_maintenance:
        decision = _migrate_away(ctx, R.UP_MIGRATE, R.UP_NO_TARGET, R.UP_EVACUATE)
        if decision.rule is not R.UP_NO_TARGET or healthy:
            return decision
        maintenance_note = f"local maintenance ({decision.note}); "
    rival = None if ctx.local.local_maintenance else _outranked_by(cluster, ctx.score.total, ctx.timing)
    if rival is not None and ctx.outranked_since is not None:
        waited = ctx.now - ctx.outranked_since
        if waited >= ctx.timing.yield_dwell:
            why = f"host {rival.host_id} scores {rival.score} vs {ctx.score.total} for {waited:g} s"
            return _move_away(ctx, _migration_target(ctx), R.UP_YIELD_MIGRATE, R.UP_YIELD, why)
    if not healthy:
        if ctx.state.name is S.ENGINE_UP_BAD_HEALTH and _ceiling_reached(ctx, ctx.timing.bad_health_timeout):
            ceiling = _ceiling(ctx, ctx.timing.bad_health_timeout)
            return _Decision(R.UP_NOT_READY_CEILING, f"not healthy for {ceiling:g} s ({health.liveness})")
        if health.liveness == LIVENESS_NOT_READY:
            rule = R.UP_NOT_READY
        else:
            rule = R.UP_BAD_HEALTH if ctx.state.name is S.ENGINE_UP else R.UP_BAD_HEALTH_PERSISTS
        return _Decision(rule, maintenance_note + (health.reason or health.detail))
    if rival is not None:
        return _Decision(R.UP_OUTRANKED, f"host {rival.host_id} scores {rival.score} vs {ctx.score.total}")
    if ctx.state.name is S.ENGINE_UP and not ctx.local.local_maintenance:
        failback = _failback(ctx)
        if failback is not None:
            return failback
    return _Decision(R.UP_OK)


def _failback(ctx: _Ctx) -> _Decision | None:
    """Failback (configured, issue 14): a healthy engine moves to a better-priority host once
    that host was eligible and ready, inside the band, for failback_dwell: by live migration,
    or through the yield path (shut down here, it starts the VM) after a failed migration. Not
    again for failback_retry_delay after a cold failback that did not take."""
    target, since, timing = ctx.failback_target, ctx.failback_since, ctx.timing
    if target is None or since is None:
        return None
    who = f"host {target.host_id} (priority {target.priority} > {ctx.priority}, score {target.score})"
    failed = ctx.state.failback_failed_at
    if failed is not None and ctx.now < failed + timing.failback_retry_delay:
        return _Decision(
            R.UP_FAILBACK_DWELL,
            f"{who}: the last failback did not take; next attempt in "
            f"{failed + timing.failback_retry_delay - ctx.now:g} s",
        )
    waited = ctx.now - since
    if waited < timing.failback_dwell:
        return _Decision(R.UP_FAILBACK_DWELL, f"{who} eligible for {waited:g} of {timing.failback_dwell:g} s")
    return _move_away(ctx, target, R.UP_FAILBACK_MIGRATE, R.UP_FAILBACK, f"{who} eligible for {waited:g} s")


def _maybe_away(ctx: _Ctx) -> _Decision:
    health = ctx.health
    assert health is not None
    if health.vm == VM_DOWN:
        return _Decision(R.AWAY_VM_DOWN)
    if health.vm == VM_DOWN_UNEXPECTED:
        return _crashed(ctx, R.AWAY_VM_CRASHED)
    if health.running:
        return _Decision(R.AWAY_VM_UP)
    best = ctx.cluster.best_engine
    if best is not None and best.running and ctx.cluster.best_engine_host != ctx.own_id:
        return _Decision(R.AWAY_ELSEWHERE, f"engine on host {ctx.cluster.best_engine_host}")
    return _Decision(R.AWAY_WAIT)


def _unexpectedly_down(ctx: _Ctx) -> _Decision:
    best = ctx.cluster.best_engine
    if best is not None and best.running and ctx.cluster.best_engine_host == ctx.own_id:
        return _Decision(R.UD_ENGINE_HERE)
    return _Decision(R.UD_WAIT)


def _engine_stop(ctx: _Ctx) -> _Decision:
    health = ctx.health
    assert health is not None
    if not health.running:
        return _Decision(R.STOP_VM_GONE, health.vm)
    if health.detail == "Paused":
        return _Decision(R.STOP_PAUSED)
    if ctx.result is not None and ctx.result.outcome is not Outcome.OK:
        return _Decision(R.STOP_FAILED, ctx.result.reason)
    return _Decision(R.STOP_AWAIT)


def _engine_force_stop(ctx: _Ctx) -> _Decision:
    result = ctx.result
    if result is not None:
        if result.outcome is Outcome.OK:
            return _Decision(R.FORCE_DONE)
        return _Decision(R.FORCE_FAILED, result.reason)
    if _pending_overdue(ctx):
        return _Decision(R.FORCE_TIMEOUT)
    return _Decision(R.FORCE_AWAIT)


def _global_maintenance(ctx: _Ctx) -> _Decision:
    return _Decision(R.GM_CLEARED)  # the hold guard ran first: the flag is off


def _local_maintenance(ctx: _Ctx) -> _Decision:
    if not ctx.local.local_maintenance:
        return _Decision(R.LM_CLEARED)
    if ctx.health is not None and ctx.health.running:
        if ctx.global_on:  # hands off (issue 14): no migration, no shutdown
            return _Decision(R.LM_GLOBAL_HANDS_OFF)
        return _migrate_away(ctx, R.LM_MIGRATE, R.LM_NO_TARGET, R.LM_EVACUATE)
    return _Decision(R.LM_IDLE)


@dataclass(frozen=True, slots=True)
class _MigrationRules:
    """One migrating state's outcomes (LocalMaintenanceMigrateVm, EngineMigratingAway)."""

    done: Rule
    failed: Rule
    vm_lost: Rule
    timeout: Rule
    await_: Rule


_LM_MIGRATION = _MigrationRules(R.MIGRATE_DONE, R.MIGRATE_FAILED, R.MIGRATE_VM_LOST, R.MIGRATE_TIMEOUT, R.MIGRATE_AWAIT)
# EngineMigratingAway: the better host takes the VM live. A failure goes back to EngineUp with
# the migration back-off set (the cold path follows there if the host is still better).
_AWAY_MIGRATION = _MigrationRules(
    R.MIGRATING_AWAY_DONE,
    R.MIGRATING_AWAY_FAILED,
    R.MIGRATING_AWAY_VM_LOST,
    R.MIGRATING_AWAY_TIMEOUT,
    R.MIGRATING_AWAY_AWAIT,
)


def _migration(ctx: _Ctx, rules: _MigrationRules) -> _Decision:
    health, result = ctx.health, ctx.result
    assert health is not None
    if result is not None and result.outcome is not Outcome.OK:
        if health.running:
            return _Decision(rules.failed, result.reason, migrate_failed=True)
        return _Decision(rules.vm_lost, result.reason)
    if health.gone:
        return _Decision(rules.done, f"to host {ctx.state.migrate_target}")
    entered = ctx.state.entered_at
    if entered is not None and ctx.now >= entered + ctx.timing.migrate_timeout:
        return _Decision(rules.timeout, migrate_failed=True)
    return _Decision(rules.await_, "reported done, the VM has not left yet" if result else "")


def _migrating(ctx: _Ctx) -> _Decision:
    return _migration(ctx, _LM_MIGRATION)


def _migrating_away(ctx: _Ctx) -> _Decision:
    return _migration(ctx, _AWAY_MIGRATION)


def _unknown_vm_state(ctx: _Ctx) -> _Decision:
    return _Decision(R.ULVS_KNOWN)  # the hold guard ran first: the state is known


_BODIES = {
    S.REINITIALIZE: _reinitialize,
    S.ENGINE_DOWN: _engine_down,
    S.ENGINE_START: _engine_start,
    S.ENGINE_STARTING: _engine_starting,
    S.ENGINE_UP: _engine_up,
    S.ENGINE_UP_BAD_HEALTH: _engine_up,
    S.ENGINE_MAYBE_AWAY: _maybe_away,
    S.ENGINE_UNEXPECTEDLY_DOWN: _unexpectedly_down,
    S.ENGINE_STOP: _engine_stop,
    S.ENGINE_FORCE_STOP: _engine_force_stop,
    S.GLOBAL_MAINTENANCE: _global_maintenance,
    S.LOCAL_MAINTENANCE: _local_maintenance,
    S.LOCAL_MAINTENANCE_MIGRATE_VM: _migrating,
    S.ENGINE_MIGRATING_AWAY: _migrating_away,
    S.UNKNOWN_LOCAL_VM_STATE: _unknown_vm_state,
}


# --- putting one step together ----------------------------------------------------------------------------------


def _context(state: FsmState, obs: Observation) -> _Ctx:
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
    known_global = obs.whiteboard.global_maintenance if obs.whiteboard is not None else None
    global_on = state.global_maintenance if known_global is None else known_global
    failures = tuple(t for t in state.start_failures if now < t + timing.retry_window)
    restarts = tuple(t for t in state.restarts if now < t + timing.retry_window)
    pending = state.pending
    result = obs.result if pending is not None and obs.result is not None and obs.result.seq == pending.seq else None
    score = compute_score(state.name, obs.local, len(failures), cfg.score, timing.max_retries, len(restarts))
    outranked_since = None
    if state.name in _OUTRANK_KEPT and _outranked_by(cluster, score.total, timing) is not None:
        outranked_since = state.outranked_since if state.outranked_since is not None else now
    ctx = _Ctx(
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
        global_on=global_on,
        failures=failures,
        restarts=restarts,
        score=score,
        result=result,
        pending=pending if result is None else None,
        outranked_since=outranked_since,
        priority=cfg.priority,
        failback_target=None,
        failback_since=None,
    )
    if state.name not in UP_FAMILY:
        return ctx
    target = _failback_target(ctx, score.total)
    if target is None:
        return ctx
    since = (
        state.failback_since if state.failback_target == target.host_id and state.failback_since is not None else now
    )
    return replace(ctx, failback_target=target, failback_since=since)


# The outranked timer survives a yield migration that fails, so the cold path follows at once.
_OUTRANK_KEPT = UP_FAMILY | {S.ENGINE_MIGRATING_AWAY}


def _decide(ctx: _Ctx) -> _Decision:
    return _foreign_lease(ctx) or _guards(ctx) or _BODIES[ctx.state.name](ctx)


# --- alerts (he_ha.fsm.alerts) ----------------------------------------------------------------------------


def _engine_runs_somewhere(ctx: _Ctx) -> bool:
    """The VM runs here, a live peer reports it up, or a live host holds its lease."""
    health, best = ctx.health, ctx.cluster.best_engine
    if health is None or health.running or health.unknown:
        return True  # here, or it may be
    return (best is not None and best.running) or _lease_blocks_start(ctx) is not None


def _cannot_start_here(ctx: _Ctx, score: ScoreBreakdown) -> str | None:
    if ctx.local.local_maintenance:
        return "this host is in local maintenance"
    if ctx.local.storage_ok is not True:
        return "storage is not usable here"
    if score.total <= 0:
        return f"this host's score is 0 ({score.override or 'penalties'})"
    return None


def _gave_up(ctx: _Ctx, decision: _Decision, dest: S, score: ScoreBreakdown) -> tuple[str, str] | None:
    """HA gives up: the engine VM runs nowhere and no host can start it. Returns the alert
    kind and its reason, or None. Judged only on a mature, fresh view outside global
    maintenance, never while this host's own start (or local restart) is under way."""
    cluster = ctx.cluster
    if ctx.global_on or not cluster.mature or cluster.stale or cluster.too_new or _engine_runs_somewhere(ctx):
        return None
    if _eligible_peers(ctx):
        return None
    starting = (
        decision.restart or dest in (S.ENGINE_START, S.ENGINE_STARTING) or decision.rule is R.DOWN_RESTART_BACKOFF
    )
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


def _alerts(ctx: _Ctx, decision: _Decision, dest: S, score: ScoreBreakdown) -> tuple[tuple[Alert, ...], float | None]:
    """The alerts active after this step, and the new ``no_host_since``."""
    now, found = ctx.now, {}
    health, lease = ctx.health, ctx.obs.lease
    if ctx.global_on and decision.rule in (R.SAFETY_FOREIGN_LEASE, R.SAFETY_FOREIGN_LEASE_HOLD):
        found[A.SECOND_COPY_DESTROYED] = f"global maintenance, but a second copy: {decision.note}; destroyed"
    elif (
        ctx.global_on
        and health is not None
        and health.running
        and lease is not None
        and not lease.held_here
        and (lease.owner in (None, ctx.own_id) or ctx.sanlock.get(lease.owner) in (SanlockHost.DEAD, SanlockHost.FREE))
    ):
        owner = "none" if lease.owner is None else f"host {lease.owner}"
        found[A.VM_WITHOUT_LEASE] = (
            f"the engine VM runs here without its lease (recorded owner: {owner}, not live); global maintenance: "
            "he-ha leaves it alone. When global maintenance ends it is destroyed (safety.lease-lost) unless it "
            "holds its lease by then"
        )
    no_host_since = None
    gave_up = _gave_up(ctx, decision, dest, score)
    if gave_up is not None:
        kind, reason = gave_up
        if kind == A.GAVE_UP_RETRY_LIMIT:
            found[kind] = reason
        else:
            no_host_since = ctx.state.no_host_since if ctx.state.no_host_since is not None else now
            lowest = all(ctx.own_id < p.host_id for p in ctx.cluster.alive)  # one report per cluster
            waited = now - no_host_since
            if lowest and waited >= ctx.timing.no_host_alert_after:
                found[kind] = f"{reason} (for {waited:g} s)"
    before = {a.kind: a for a in ctx.state.alerts}
    alerts = tuple(Alert(kind, reason, before[kind].since if kind in before else now) for kind, reason in found.items())
    return alerts, no_host_since


def _counts_as_failed_start(state: FsmState, dest: S, health: EngineHealth | None) -> bool:
    """Leaving EngineStarting without reaching EngineUp after our own start (B1's intent)."""
    if state.name is not S.ENGINE_STARTING or state.start_attempt_at is None:
        return False
    if dest not in (S.ENGINE_STOP, S.ENGINE_FORCE_STOP, S.ENGINE_MAYBE_AWAY):
        return False
    return not (health is not None and health.reason == REASON_LOCKED)  # lost a lease race: not our fault


def _entry_action(dest: S, seq: int, now: float, ctx: _Ctx, decision: _Decision) -> tuple[Action, Pending] | None:
    if dest is S.ENGINE_START:
        return AcquireLeaseAndStartVm(seq), Pending(seq, "start", now)
    if dest is S.ENGINE_STOP:
        return ShutdownVm(seq, ctx.timing.stop_timeout), Pending(seq, "shutdown", now)
    if dest is S.ENGINE_FORCE_STOP:
        reason = f"{decision.rule.id}: {decision.note}" if decision.note else decision.rule.id
        return DestroyVm(seq, reason), Pending(seq, "destroy", now)
    if dest in MIGRATING:
        target = decision.migrate_target
        assert target is not None
        deadline = _migrate_deadline(ctx.timing)
        return MigrateVm(seq, target.host_id, target.hostname, deadline), Pending(seq, "migrate", now)
    return None


def _migrate_deadline(timing: TimingConfig) -> float:
    """The hypervisor's migration job ends (aborted if need be) one loop before the FSM's
    migrate_timeout, so its result, not the timer, decides; at least 1 s."""
    return max(timing.migrate_timeout - timing.loop_delay, 1.0)


def _timeout_at(name: S, entered_at: float | None, alive_at: float | None, timing: TimingConfig) -> float | None:
    """When the state's timer fires if nothing changes: for the silence timers, the engine's
    last sign of life plus the timeout, but never after the not-ready ceiling."""
    if entered_at is None:
        return None
    for guard in STATE_GUARDS.get(name, ()):
        if guard.kind is GuardKind.TIMEOUT and guard.timeout is not None:
            limit = getattr(timing, guard.timeout)
            if not guard.silence:
                return entered_at + limit
            start = entered_at if alive_at is None else max(entered_at, alive_at)
            return min(start + limit, entered_at + max(timing.not_ready_timeout, limit))
    return None


def _inputs(ctx: _Ctx) -> DecisionInputs:
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


def step(state: FsmState, obs: Observation) -> tuple[FsmState, tuple[Action, ...], DecisionRecord]:
    """Decide one tick. Pure: the same (state, observation) always gives the same output."""
    if state.name is S.AGENT_STOPPED:
        raise ValueError("AgentStopped is final: build a new state with initial_state() after a restart")
    ctx = _context(state, obs)
    decision = _decide(ctx)
    now, timing = ctx.now, ctx.timing
    dest = decision.rule.target(state.name)
    changed = dest is not state.name
    entered_at = now if changed else state.entered_at

    failures = ctx.failures
    if decision.failure or (changed and _counts_as_failed_start(state, dest, ctx.health)):
        failures = (*failures, now)
    if changed and dest is S.ENGINE_UP:
        failures = ()  # the engine runs here: this host can start it after all
    # Crash restarts are not cleared by EngineUp: a VM that boots and crashes again and again
    # must reach the retry limit.
    restarts = (*ctx.restarts, now) if decision.restart else ctx.restarts
    if decision.rule is R.START_OK:
        start_attempt_at: float | None = now
    else:
        start_attempt_at = state.start_attempt_at if dest is S.ENGINE_STARTING else None

    health = ctx.health
    alive_at = now if health is not None and health.alive else (None if changed else state.alive_at)

    actions: list[Action] = []
    next_seq, pending = state.next_seq, (None if changed else ctx.pending)
    entry = _entry_action(dest, next_seq, now, ctx, decision) if changed else None
    if entry is not None:
        vm_action, pending = entry
        next_seq += 1
    new_state = FsmState(
        config=state.config,
        name=dest,
        entered_at=entered_at,
        view=obs.whiteboard if obs.whiteboard is not None else state.view,
        history=ctx.history,
        global_maintenance=ctx.global_on,
        start_failures=failures,
        start_attempt_at=start_attempt_at,
        pending=pending,
        next_seq=next_seq,
        outranked_since=ctx.outranked_since if dest in _OUTRANK_KEPT else None,
        lease_busy_at=now if decision.lease_busy else state.lease_busy_at,
        migrate_failed_at=now if decision.migrate_failed else state.migrate_failed_at,
        migrate_target=(
            (decision.migrate_target.host_id if decision.migrate_target else state.migrate_target)
            if dest in MIGRATING
            else None
        ),
        alive_at=alive_at,
        restarts=restarts,
        **_priority_fields(ctx, decision, dest),
    )
    if changed or failures != ctx.failures or restarts != ctx.restarts:
        score = compute_score(dest, obs.local, len(failures), state.config.score, timing.max_retries, len(restarts))
    else:
        score = ctx.score
    alerts, no_host_since = _alerts(ctx, decision, dest, score)
    new_state = replace(new_state, alerts=alerts, no_host_since=no_host_since)
    timeout_at = _timeout_at(dest, entered_at, alive_at, timing)
    actions.append(Publish(_published(now, dest, score, ctx.health, timeout_at, priority=ctx.priority)))
    if entry is not None:
        actions.append(vm_action)
    release = _release_lease(ctx, dest, pending)
    if release is not None:
        actions.append(release)
    if changed:
        actions.append(Notify(f"{state.name.value}-{dest.value}"))
    raised = {a.kind for a in state.alerts}
    actions.extend(Notify(alert=a.kind, reason=a.reason) for a in alerts if a.kind not in raised)
    record = DecisionRecord(
        host_id=ctx.own_id,
        now=now,
        from_state=state.name.value,
        to_state=dest.value,
        rule=decision.rule.id,
        note=decision.note,
        actions=tuple(actions),
        score=score,
        inputs=_inputs(ctx),
        # After a VM action the executor's result triggers the next tick.
        tick_after=0.0 if decision.rule.nowait and entry is None else timing.loop_delay,
        timeout_at=timeout_at,
        alerts=alerts,
    )
    return new_state, record.actions, record


class _PriorityFields(TypedDict):
    """The FsmState fields _priority_fields sets, passed on with ``**``."""

    priority_wait_since: float | None
    failback_target: int | None
    failback_since: float | None
    failback_at: float | None
    failback_failed_at: float | None


def _priority_fields(ctx: _Ctx, decision: _Decision, dest: S) -> _PriorityFields:
    """The host-priority bookkeeping (issue 14) carried to the next state.

    priority_wait_since: set by the first down.priority-defer in EngineDown, kept while this host
    stays in EngineDown (so a flapping condition cannot extend the wait), dropped when the
    engine is seen running or EngineDown is left. failback_at: set by up.failback, kept until the
    engine runs elsewhere (it took) or this host starts it again itself (start.ok: it did not,
    failback_failed_at), or the host leaves the stop/down/start path."""
    state, rule = ctx.state, decision.rule
    wait = None
    if dest is S.ENGINE_DOWN and rule not in (R.DOWN_ENGINE_ELSEWHERE, R.DOWN_ENGINE_HERE):
        wait = state.priority_wait_since
        if wait is None and rule is R.DOWN_PRIORITY_DEFER:
            wait = ctx.now
    failback_at, failed_at = state.failback_at, state.failback_failed_at
    if rule is R.UP_FAILBACK:
        failback_at = ctx.now
    elif failback_at is not None:
        if rule is R.START_OK:
            failback_at, failed_at = None, ctx.now
        elif rule is R.DOWN_ENGINE_ELSEWHERE or dest not in _FAILBACK_PATH:
            failback_at = None
    # The failback dwell survives a failback migration that fails, so the cold path follows.
    kept = dest in _OUTRANK_KEPT
    target: int | None = None
    since: float | None = None
    if kept and ctx.failback_target is not None:
        target, since = ctx.failback_target.host_id, ctx.failback_since
    elif kept and state.name is S.ENGINE_MIGRATING_AWAY:
        target, since = state.failback_target, state.failback_since
    return _PriorityFields(
        priority_wait_since=wait,
        failback_target=target,
        failback_since=since,
        failback_at=failback_at,
        failback_failed_at=failed_at,
    )


_FAILBACK_PATH = frozenset({S.ENGINE_STOP, S.ENGINE_FORCE_STOP, S.ENGINE_DOWN, S.ENGINE_START})


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


def _release_lease(ctx: _Ctx, dest: S, pending: Pending | None) -> ReleaseLease | None:
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


def stop(state: FsmState, obs: Observation) -> tuple[FsmState, tuple[Action, ...], DecisionRecord]:
    """The supervisor is exiting: publish AgentStopped (score 0, stopped=1) and nothing else.

    The VM is left alone, whatever runs: stopping the supervisor never stops the engine.
    """
    ctx = _context(state, obs)
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
        rule=R.AGENT_STOPPED.id,
        note="",
        actions=(publish,),
        score=score,
        inputs=_inputs(ctx),
        tick_after=timing.loop_delay,
        timeout_at=None,
    )
    return new_state, record.actions, record
