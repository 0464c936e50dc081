"""Judgements about the peers that several states share: where the VM could go, who starts
first (issue 14 host priorities), whether the lease is held elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

from he_ha.fsm.cluster_view import ClusterView
from he_ha.fsm.observation import PeerRecord, SanlockHost
from he_ha.fsm.timing import TimingConfig

if TYPE_CHECKING:  # the context is built with these judgements
    from he_ha.fsm.step_context import StepContext


def migration_target(ctx: StepContext) -> PeerRecord | None:
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


def migrate_backoff(ctx: StepContext) -> bool:
    failed = ctx.state.migrate_failed_at
    return failed is not None and ctx.now < failed + ctx.timing.migrate_retry_delay


def eligible_peers(ctx: StepContext) -> list[PeerRecord]:
    """Live peers that could run the VM: positive score, not in maintenance, not stopped."""
    return [p for p in ctx.cluster.alive if p.score > 0 and not p.maintenance and not p.stopped]


def beats(score: int, priority: int, own_score: int, own_priority: int, threshold: int) -> bool:
    """A host with ``score``/``priority`` goes before one with ``own_score``/``own_priority`` in
    the start order (issue 14): a score higher by the threshold, whatever the priorities; else a
    higher score at no worse a priority (with equal priorities: the original's "strictly
    higher score"). A better priority with a score inside the threshold is the other way round:
    see ``preferred_peers``."""
    return score >= own_score + threshold or (score > own_score and priority >= own_priority)


def _band_floor(ctx: StepContext, own_score: int) -> int:
    """Scores above this are inside the band: within yield_threshold of the best live score."""
    best = max([own_score, *(p.score for p in ctx.cluster.alive if p.score > 0)])
    return best - ctx.timing.yield_threshold


def preferred_peers(ctx: StepContext, own_score: int) -> list[PeerRecord]:
    """Live eligible peers with a better priority than ours, inside the band, whose VM is
    confirmed down (ready to start it), best first: priority, score, lowest id."""
    floor = _band_floor(ctx, own_score)
    fit = [p for p in eligible_peers(ctx) if p.priority > ctx.priority and p.score > floor and p.engine_status.gone]
    return sorted(fit, key=lambda p: (-p.priority, -p.score, p.host_id))


def failback_target(ctx: StepContext, own_score: int) -> PeerRecord | None:
    """Failback configured: the better-priority peer the VM would move to now, or None. It must
    be what the start order picks once the VM stops here: eligible, ready, inside the band, and
    no live peer goes before it (``beats``). Judged on a fresh view only."""
    if not ctx.timing.failback or ctx.cluster.stale:
        return None
    preferred = preferred_peers(ctx, own_score)
    if not preferred:
        return None
    target, threshold = preferred[0], ctx.timing.yield_threshold
    if any(
        p.host_id != target.host_id
        and p.score > 0
        and beats(p.score, p.priority, target.score, target.priority, threshold)
        for p in ctx.cluster.alive
    ):
        return None  # another live host would start before it (a better score, not ready yet)
    return target


def lease_blocks_start(ctx: StepContext) -> str | None:
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


def outranked_by(cluster: ClusterView, own_score: int, timing: TimingConfig) -> PeerRecord | None:
    """The live peer beating our score by the yield threshold, judged on a fresh view only."""
    rival = cluster.best_score_host
    if cluster.stale or rival is None:
        return None
    return rival if rival.score >= own_score + timing.yield_threshold else None
