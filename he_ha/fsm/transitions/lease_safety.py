"""The safety rule (invariant 4), checked before any guard: a VM running here without this
host holding its lease is destroyed, or, in global maintenance, reported."""

from __future__ import annotations

from typing import NamedTuple

from he_ha.fsm.observation import SanlockHost
from he_ha.fsm.rules import DECISION_STATES, Rule, rule
from he_ha.fsm.states import MIGRATING
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict


def _destroy_now(rule_id: str, text: str) -> Rule:
    """A safety rule: from any state but EngineForceStop, to EngineForceStop at once."""
    return rule(rule_id, DECISION_STATES - {S.ENGINE_FORCE_STOP}, S.ENGINE_FORCE_STOP, text, nowait=True)


SAFETY_FOREIGN_LEASE = _destroy_now(
    "safety.foreign-lease", "the VM runs here while another host owns its lease: destroy it now (invariant 4)"
)
SAFETY_FOREIGN_LEASE_HOLD = rule(
    "safety.foreign-lease.hold", {S.ENGINE_FORCE_STOP}, None, "foreign lease: destroy already under way"
)
SAFETY_LEASE_LOST = _destroy_now(
    "safety.lease-lost", "the VM runs here but this host does not hold its lease: destroy it now (invariants 1, 2)"
)
SAFETY_LEASE_LOST_HOLD = rule(
    "safety.lease-lost.hold", {S.ENGINE_FORCE_STOP}, None, "lease lost: destroy already under way"
)


def foreign_lease(ctx: StepContext) -> Verdict | None:
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
    breach = _lease_lost(ctx) if lease.owner in (None, ctx.own_id) else _lease_foreign(ctx, lease.owner)
    if breach is None:
        return None  # our own migration moves the lease
    if breach.hands_off:
        return _hands_off(ctx, breach.note)
    if ctx.state.name is S.ENGINE_FORCE_STOP:
        # The destroy is under way: hold. Once answered, ForceStop's own logic decides.
        return Verdict(breach.hold, breach.note) if ctx.pending is not None else None
    return Verdict(breach.go, breach.note)


class _Breach(NamedTuple):
    go: Rule  # destroy the VM
    hold: Rule  # the destroy is under way
    note: str
    hands_off: bool  # global maintenance: report, do not destroy


def _lease_lost(ctx: StepContext) -> _Breach | None:
    """No owner, or our own id while this host does not hold the lease."""
    if ctx.state.name in MIGRATING and ctx.pending is not None:
        return None
    lease = ctx.obs.lease
    assert lease is not None
    owner = "no host" if lease.owner is None else "this host's previous holder"
    note = f"VM runs here but this host does not hold its lease (recorded owner: {owner})"
    return _Breach(SAFETY_LEASE_LOST, SAFETY_LEASE_LOST_HOLD, note, ctx.global_on)


def _lease_foreign(ctx: StepContext, owner: int) -> _Breach | None:
    """Another host is recorded as the lease's owner."""
    if ctx.state.name in MIGRATING and ctx.state.migrate_target == owner:
        return None
    status = ctx.sanlock.get(owner, SanlockHost.UNKNOWN)
    note = f"VM runs here but host {owner} (sanlock: {status.value}) owns its lease"
    hands_off = ctx.global_on and status in (SanlockHost.DEAD, SanlockHost.FREE)
    return _Breach(SAFETY_FOREIGN_LEASE, SAFETY_FOREIGN_LEASE_HOLD, note, hands_off)


GM_VM_WITHOUT_LEASE = rule(
    "global-maintenance.vm-without-lease",
    {S.GLOBAL_MAINTENANCE},
    None,
    "global maintenance: the VM runs here without its lease and no live host holds it: reported, not destroyed",
)


def _hands_off(ctx: StepContext, note: str) -> Verdict | None:
    """Global maintenance: nothing is done to the VM. GlobalMaintenance says so in its record;
    any other state first reaches GlobalMaintenance by its guard (LocalMaintenance, which has
    none, holds: local-maintenance.global-hands-off)."""
    if ctx.state.name is S.GLOBAL_MAINTENANCE:
        return Verdict(GM_VM_WITHOUT_LEASE, f"{note}; global maintenance: reported, not destroyed")
    return None
