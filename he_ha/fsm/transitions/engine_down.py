"""EngineDown: start the VM here, or wait for a better host (the start order, issue 14)."""

from __future__ import annotations

from he_ha.fsm.health import DETAIL_MIGRATION_DESTINATION
from he_ha.fsm.observation import PeerRecord
from he_ha.fsm.peer_choice import beats, lease_blocks_start, preferred_peers
from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict
from he_ha.fsm.transitions.crash_restart import restart_delay

_DOWN = {S.ENGINE_DOWN}
DOWN_ENGINE_HERE = rule("down.engine-here", _DOWN, S.ENGINE_STARTING, "the best engine runs here", nowait=True)
DOWN_ENGINE_ELSEWHERE = rule("down.engine-elsewhere", _DOWN, None, "a live peer runs the engine")
DOWN_INCOMING_MIGRATION = rule(
    "down.incoming-migration",
    _DOWN,
    None,
    "the VM is arriving here by live migration (health detail 'Migration Destination'): wait for it to run here",
)
DOWN_VIEW_IMMATURE = rule("down.view-immature", _DOWN, None, "not enough whiteboard history to judge liveness")
DOWN_VIEW_STALE = rule("down.view-stale", _DOWN, None, "the whiteboard view is stale")
DOWN_STORAGE = rule("down.storage-bad", _DOWN, None, "storage is not usable here")
DOWN_TOO_NEW = rule("down.peer-too-new", _DOWN, None, "a live peer writes newer metadata (B13)")
DOWN_LEASE_HELD = rule("down.lease-held", _DOWN, None, "a live peer holds the VM lease")
DOWN_LEASE_BACKOFF = rule("down.lease-backoff", _DOWN, None, "the lease was busy moments ago")
DOWN_RESTART_BACKOFF = rule(
    "down.restart-backoff", _DOWN, None, "a local restart after a VM crash waits its back-off (restart_backoff)"
)


def engine_down(ctx: StepContext) -> Verdict:
    return _engine_runs(ctx) or _cannot_start_yet(ctx) or _start_order(ctx)


def _engine_runs(ctx: StepContext) -> Verdict | None:
    cluster = ctx.cluster
    best = cluster.best_engine
    if best is None or not best.running:
        return None
    if cluster.best_engine_host == ctx.own_id:
        return Verdict(DOWN_ENGINE_HERE)
    return Verdict(DOWN_ENGINE_ELSEWHERE, f"engine on host {cluster.best_engine_host}")


def _cannot_start_yet(ctx: StepContext) -> Verdict | None:
    """What keeps this host from starting the VM now, whatever the other hosts' scores."""
    cluster = ctx.cluster
    # A migration's target reads "down" until its vCPUs run, and the source may already
    # publish the VM gone: a start now would only race the arriving VM (libvirt refuses it).
    # No bound needed: libvirt ends the incoming domain if the migration fails.
    if ctx.health is not None and ctx.health.detail == DETAIL_MIGRATION_DESTINATION:
        return Verdict(DOWN_INCOMING_MIGRATION)
    if not cluster.mature:
        return Verdict(DOWN_VIEW_IMMATURE)
    if cluster.stale:
        return Verdict(DOWN_VIEW_STALE, f"view age {cluster.view_age}")
    if ctx.local.storage_ok is not True:
        return Verdict(DOWN_STORAGE, f"storage_ok={ctx.local.storage_ok}")
    if cluster.too_new:
        return Verdict(DOWN_TOO_NEW, f"hosts {list(cluster.too_new)}")
    held = lease_blocks_start(ctx)
    if held:
        return Verdict(DOWN_LEASE_HELD, held)
    busy = ctx.state.lease_busy_at
    if busy is not None and ctx.now < busy + ctx.timing.lease_busy_backoff:
        return Verdict(DOWN_LEASE_BACKOFF)
    return _restart_backoff(ctx)


def _restart_backoff(ctx: StepContext) -> Verdict | None:
    if not ctx.restarts:
        return None
    ready_at = ctx.restarts[-1] + restart_delay(ctx.timing, len(ctx.restarts) - 1)
    if ctx.now < ready_at:
        return Verdict(DOWN_RESTART_BACKOFF, f"local restart in {ready_at - ctx.now:g} s")
    return None


# --- the start order -----------------------------------------------------------------------------

DOWN_START = rule("down.start", _DOWN, S.ENGINE_START, "no live peer has a higher score", nowait=True)
DOWN_BETTER_HOST = rule("down.better-host", _DOWN, None, "a live peer has a higher score")

# Host priorities (issue 14; docs/fsm.md "Host priorities"). The band: hosts whose score is
# within yield_threshold of the best live score (this host's included). Inside it the better
# priority starts the VM; a lower-priority host defers to a better one that is ready, bounded.
DOWN_START_PREFERRED = rule(
    "down.start.preferred",
    _DOWN,
    S.ENGINE_START,
    "a live peer scores higher, by less than yield_threshold, but has a lower priority: this host starts",
    nowait=True,
)
DOWN_PRIORITY_DEFER = rule(
    "down.priority-defer",
    _DOWN,
    None,
    "a live eligible peer with a better priority, inside the band, is down and ready to start the VM: "
    "let it, for priority_start_delay at most",
)
DOWN_PRIORITY_EXPIRED = rule(
    "down.priority-defer.expired",
    _DOWN,
    S.ENGINE_START,
    "the better-priority peer did not start the VM within priority_start_delay: this host starts",
    nowait=True,
)


def _start_order(ctx: StepContext) -> Verdict:
    """EngineDown, nothing else in the way: start here, or let a better host start (issue 14).

    With equal priorities this is the original's rule: start unless a live peer scores strictly
    higher (ties all try; the lease admits one). With priorities, among the hosts whose score is
    within yield_threshold of the best (the band) the better priority goes first: a higher score
    no longer wins against a better priority inside the band, and a host defers to a ready
    better-priority peer for priority_start_delay at most, then starts anyway."""
    own, prio, timing = ctx.score.total, ctx.priority, ctx.timing
    scored = [p for p in ctx.cluster.alive if p.score > 0]
    beaten_by = [p for p in scored if beats(p.score, p.priority, own, prio, timing.yield_threshold)]
    if beaten_by:
        winner = max(beaten_by, key=lambda p: (p.score, -p.host_id))
        return Verdict(DOWN_BETTER_HOST, f"host {winner.host_id} scores {winner.score} > {own}")
    preferred = preferred_peers(ctx, own)
    if preferred:
        return _defer(ctx, preferred[0])
    rival = ctx.cluster.best_score_host
    if rival is not None and rival.score > own:  # inside the band, with a lower priority
        return Verdict(
            DOWN_START_PREFERRED,
            f"own score {own} priority {prio}; host {rival.host_id} scores {rival.score} at priority {rival.priority}",
        )
    rival_text = "no live peer" if rival is None else f"best peer host {rival.host_id} scores {rival.score}"
    return Verdict(DOWN_START, f"own score {own}, {rival_text}")


def _defer(ctx: StepContext, better: PeerRecord) -> Verdict:
    """Let a ready better-priority peer start the VM, for priority_start_delay at most since
    the first such step in this EngineDown (a flapping condition cannot extend the wait)."""
    delay = ctx.timing.priority_start_delay
    who = f"host {better.host_id} (priority {better.priority} > {ctx.priority}, score {better.score})"
    since = ctx.state.priority_wait_since
    waited = ctx.now - (ctx.now if since is None else since)
    if waited < delay:
        return Verdict(DOWN_PRIORITY_DEFER, f"{who} is ready to start it; waiting {delay - waited:g} s more at most")
    return Verdict(DOWN_PRIORITY_EXPIRED, f"{who} did not start it within {delay:g} s")
