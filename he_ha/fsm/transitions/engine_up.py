"""EngineUp and EngineUpBadHealth: the engine runs here. In order: is the VM still here, local
maintenance, a better host (yield), the engine's health, a better priority (failback)."""

from __future__ import annotations

from he_ha.fsm.health import HEALTH_GOOD, LIVENESS_NOT_READY, VM_DOWN, VM_DOWN_UNEXPECTED, EngineHealth
from he_ha.fsm.observation import PeerRecord
from he_ha.fsm.peer_choice import migrate_backoff, migration_target, outranked_by
from he_ha.fsm.rules import Rule, rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict, ceiling_reached, not_ready_ceiling
from he_ha.fsm.transitions.crash_restart import crashed
from he_ha.fsm.transitions.local_maintenance import migrate_away

_UP = {S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH}

# --- is the VM still here -------------------------------------------------------------------------

UP_VM_DOWN = rule("up.vm-down", _UP, S.ENGINE_MAYBE_AWAY, "the VM went down (shut down or migrated away)")
UP_VM_CRASHED = rule("up.vm-crashed", _UP, S.ENGINE_UNEXPECTEDLY_DOWN, "the VM went down unexpectedly")
UP_VM_NOT_UP = rule("up.vm-not-up", _UP, S.ENGINE_MAYBE_AWAY, "the VM is not up here", nowait=True)
UP_ENGINE_ELSEWHERE = rule("up.engine-elsewhere", _UP, S.ENGINE_STOP, "a live peer runs a better-ranked engine")


def _not_here(ctx: StepContext, health: EngineHealth) -> Verdict | None:
    if health.vm == VM_DOWN:
        return Verdict(UP_VM_DOWN, health.reason or "")
    if health.vm == VM_DOWN_UNEXPECTED:
        return crashed(ctx, UP_VM_CRASHED)
    if not health.running:
        return Verdict(UP_VM_NOT_UP, health.vm)
    cluster = ctx.cluster
    if not cluster.stale and cluster.best_engine_host != ctx.own_id:
        return Verdict(UP_ENGINE_ELSEWHERE, f"host {cluster.best_engine_host} runs a better-ranked engine")
    return None


# --- local maintenance: vacate this host ------------------------------------------------------------

UP_MIGRATE = rule(
    "up.local-maintenance.migrate", _UP, S.LOCAL_MAINTENANCE_MIGRATE_VM, "local maintenance: migrate the VM away"
)
UP_NO_TARGET = rule(
    "up.local-maintenance.no-target", _UP, None, "local maintenance, but no live eligible host to migrate to"
)
UP_EVACUATE = rule(
    "up.local-maintenance.evacuate",
    _UP,
    S.ENGINE_STOP,
    "local maintenance: live migration failed, shut the VM down for an eligible peer to start it",
)


def _in_local_maintenance(ctx: StepContext, health: EngineHealth) -> Verdict:
    verdict = migrate_away(ctx, UP_MIGRATE, UP_NO_TARGET, UP_EVACUATE)
    if verdict.rule is not UP_NO_TARGET or health.health == HEALTH_GOOD:
        return verdict
    # Nowhere to go and not healthy either: the health rules decide, and say both.
    return _unhealthy(ctx, health, f"local maintenance ({verdict.note}); ")


# --- yield to a better host -------------------------------------------------------------------------

UP_YIELD_MIGRATE = rule(
    "up.yield.migrate",
    _UP,
    S.ENGINE_MIGRATING_AWAY,
    "a peer out-scored us by the threshold for the dwell time: migrate the VM to it live",
)
UP_YIELD = rule(
    "up.yield",
    _UP,
    S.ENGINE_STOP,
    "a peer out-scored us by the threshold for the dwell time and a live migration is not possible "
    "(it failed moments ago, or no eligible target): shut the VM down for it to start",
)


def _yield(ctx: StepContext, rival: PeerRecord | None) -> Verdict | None:
    """The rival has out-scored us by the threshold for yield_dwell: move the VM to it."""
    if rival is None or ctx.outranked_since is None:
        return None
    waited = ctx.now - ctx.outranked_since
    if waited < ctx.timing.yield_dwell:
        return None
    why = f"host {rival.host_id} scores {rival.score} vs {ctx.score.total} for {waited:g} s"
    return move_away(ctx, migration_target(ctx), UP_YIELD_MIGRATE, UP_YIELD, why)


# --- the engine's health ----------------------------------------------------------------------------

UP_BAD_HEALTH = rule("up.bad-health", {S.ENGINE_UP}, S.ENGINE_UP_BAD_HEALTH, "the engine is not healthy")
UP_BAD_HEALTH_PERSISTS = rule(
    "up.bad-health.persists", {S.ENGINE_UP_BAD_HEALTH}, None, "the engine is still not healthy"
)
UP_NOT_READY = rule(
    "up.not-ready",
    _UP,
    S.ENGINE_UP_BAD_HEALTH,
    "the engine answers but is not ready (alive): the bad-health timeout counts silence only",
)
UP_NOT_READY_CEILING = rule(
    "up.not-ready-ceiling",
    {S.ENGINE_UP_BAD_HEALTH},
    S.ENGINE_STOP,
    "the engine was not healthy for not_ready_timeout (its ceiling) in EngineUpBadHealth",
)


def _unhealthy(ctx: StepContext, health: EngineHealth, note: str) -> Verdict:
    if ctx.state.name is S.ENGINE_UP_BAD_HEALTH and ceiling_reached(ctx, ctx.timing.bad_health_timeout):
        ceiling = not_ready_ceiling(ctx, ctx.timing.bad_health_timeout)
        return Verdict(UP_NOT_READY_CEILING, f"not healthy for {ceiling:g} s ({health.liveness})")
    if health.liveness == LIVENESS_NOT_READY:
        chosen = UP_NOT_READY
    else:
        chosen = UP_BAD_HEALTH if ctx.state.name is S.ENGINE_UP else UP_BAD_HEALTH_PERSISTS
    return Verdict(chosen, note + (health.reason or health.detail))


# --- failback to a better priority -----------------------------------------------------------------

UP_FAILBACK_MIGRATE = rule(
    "up.failback.migrate",
    {S.ENGINE_UP},
    S.ENGINE_MIGRATING_AWAY,
    "failback (configured): a better-priority host inside the band was eligible and ready for failback_dwell: "
    "migrate the VM to it live",
)
UP_FAILBACK = rule(
    "up.failback",
    {S.ENGINE_UP},
    S.ENGINE_STOP,
    "failback (configured): a better-priority host inside the band was eligible and ready for failback_dwell; "
    "a live migration failed moments ago: shut the VM down for it to start",
)
UP_FAILBACK_DWELL = rule(
    "up.failback.dwell",
    {S.ENGINE_UP},
    None,
    "failback (configured): a better-priority host is eligible; its dwell is not over, or a failed failback backs off",
)


def _failback(ctx: StepContext) -> Verdict | None:
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
        return Verdict(
            UP_FAILBACK_DWELL,
            f"{who}: the last failback did not take; next attempt in "
            f"{failed + timing.failback_retry_delay - ctx.now:g} s",
        )
    waited = ctx.now - since
    if waited < timing.failback_dwell:
        return Verdict(UP_FAILBACK_DWELL, f"{who} eligible for {waited:g} of {timing.failback_dwell:g} s")
    return move_away(ctx, target, UP_FAILBACK_MIGRATE, UP_FAILBACK, f"{who} eligible for {waited:g} s")


# --- the state's logic ------------------------------------------------------------------------------

UP_OUTRANKED = rule("up.outranked", _UP, S.ENGINE_UP, "a peer out-scores us by the threshold; dwell not over")
UP_OK = rule("up.ok", _UP, S.ENGINE_UP, "the engine is up and healthy here")


def engine_up(ctx: StepContext) -> Verdict:
    health = ctx.health
    assert health is not None  # the vm-unknown guard ran first
    gone = _not_here(ctx, health)
    if gone is not None:
        return gone
    if ctx.local.local_maintenance:
        return _in_local_maintenance(ctx, health)
    rival = outranked_by(ctx.cluster, ctx.score.total, ctx.timing)
    yielding = _yield(ctx, rival)
    if yielding is not None:
        return yielding
    if health.health != HEALTH_GOOD:
        return _unhealthy(ctx, health, "")
    if rival is not None:
        return Verdict(UP_OUTRANKED, f"host {rival.host_id} scores {rival.score} vs {ctx.score.total}")
    failback = _failback(ctx) if ctx.state.name is S.ENGINE_UP else None
    return failback or Verdict(UP_OK)


def move_away(ctx: StepContext, target: PeerRecord | None, migrate: Rule, cold: Rule, why: str) -> Verdict:
    """The VM should run on a better host (yield, failback): live-migrate it there, unless a
    migration failed moments ago or no host can take it live; then the cold path (shut down
    here, the better host starts it)."""
    if target is None:
        return Verdict(cold, f"{why}; no live host can take the VM by migration: shut it down here")
    if migrate_backoff(ctx):
        return Verdict(cold, f"{why}; live migration failed moments ago: shut the VM down for it to start")
    return Verdict(migrate, f"{why}: migrate to host {target.host_id}", migrate_target=target)
