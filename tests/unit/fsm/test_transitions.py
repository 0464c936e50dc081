"""Every rule of the transition table, one row each (at least): from a state and an
observation, the rule that fires, the state reached and the VM action emitted."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from he_ha.fsm import (
    AcquireLeaseAndStartVm,
    DestroyVm,
    FsmState,
    LeaseStatus,
    MigrateVm,
    Notify,
    Observation,
    Outcome,
    PeerFault,
    Publish,
    ReleaseLease,
    SanlockHost,
    ShutdownVm,
    TimingConfig,
    step,
)
from he_ha.fsm import StateName as S
from he_ha.fsm.rules import RULES
from tests.unit.fsm.builders import (
    DOWN,
    DOWN_MISSING,
    DOWN_UNEXPECTED,
    INCOMING,
    NOT_READY,
    OWN,
    PAUSED,
    POWERING_UP,
    T0,
    UNKNOWN,
    UP_BAD,
    UP_GOOD,
    LocalFields,
    obs,
    peer,
    pending,
    result,
    state_in,
)

ACTION_TIMEOUT = TimingConfig().action_timeout


@dataclass(frozen=True)
class Case:
    rule: str
    state: FsmState
    observation: Observation
    dest: S
    vm_action: type | None = None

    def __str__(self) -> str:
        return self.rule


FOREIGN = LeaseStatus(owner=2, held_here=False)
LOST = LeaseStatus(owner=None, held_here=False)  # the holder died: sanlock freed the lease
LOST_OWN = LeaseStatus(owner=OWN, held_here=False)  # storage still names us, nobody here holds it


def migrating(**fields: object) -> FsmState:
    """LocalMaintenanceMigrateVm with a migration to host 2 under way."""
    return state_in(S.LOCAL_MAINTENANCE_MIGRATE_VM, **{"pending": pending("migrate"), "migrate_target": 2, **fields})  # type: ignore[arg-type]


def migrating_away(**fields: object) -> FsmState:
    """EngineMigratingAway with a yield migration to host 2 under way."""
    return state_in(S.ENGINE_MIGRATING_AWAY, **{"pending": pending("migrate"), "migrate_target": 2, **fields})  # type: ignore[arg-type]


PEER_UP = peer(status=UP_GOOD)
INELIGIBLE = peer(maintenance=True, score=0)  # a live peer in local maintenance
LOW_NET: LocalFields = {"network": 0.0}  # own score 1800: a 3400 peer beats it by 1600
BETTER_PRIO = peer(priority=1)  # host 2, down, 3400, priority 1 (ours is 0)
BETTER_PRIO_LOWER = peer(priority=1, score=2700)  # ...with a score inside the band, below ours
FAILBACK = TimingConfig(failback=True)

CASES = [
    # --- safety (invariant 4) ---
    Case("safety.foreign-lease", state_in(S.ENGINE_UP), obs(UP_GOOD, lease=FOREIGN), S.ENGINE_FORCE_STOP, DestroyVm),
    Case(
        "safety.foreign-lease",
        state_in(S.GLOBAL_MAINTENANCE),
        obs(UP_GOOD, lease=FOREIGN, global_maintenance=True),
        S.ENGINE_FORCE_STOP,
        DestroyVm,
    ),
    Case(
        "safety.foreign-lease.hold",
        state_in(S.ENGINE_FORCE_STOP, pending=pending("destroy")),
        obs(UP_GOOD, lease=FOREIGN),
        S.ENGINE_FORCE_STOP,
    ),
    # --- safety (invariants 1 and 2): the VM runs here, the lease is not held here ---
    Case("safety.lease-lost", state_in(S.ENGINE_UP), obs(UP_GOOD, lease=LOST), S.ENGINE_FORCE_STOP, DestroyVm),
    Case("safety.lease-lost", state_in(S.REINITIALIZE), obs(UP_GOOD, lease=LOST_OWN), S.ENGINE_FORCE_STOP, DestroyVm),
    # --- hands-off global maintenance (issue 14): reported, not destroyed, unless a second copy ---
    Case(
        "global-maintenance.vm-without-lease",
        state_in(S.GLOBAL_MAINTENANCE),
        obs(UP_GOOD, lease=LOST, global_maintenance=True),
        S.GLOBAL_MAINTENANCE,
    ),
    Case(
        "global-maintenance.vm-without-lease",
        state_in(S.GLOBAL_MAINTENANCE),
        obs(UP_GOOD, lease=FOREIGN, global_maintenance=True, sanlock={2: SanlockHost.DEAD}),
        S.GLOBAL_MAINTENANCE,
    ),
    Case(
        "guard.global", state_in(S.ENGINE_UP), obs(UP_GOOD, lease=LOST, global_maintenance=True), S.GLOBAL_MAINTENANCE
    ),
    Case(
        "safety.foreign-lease",
        state_in(S.GLOBAL_MAINTENANCE),
        obs(UP_GOOD, lease=FOREIGN, global_maintenance=True, sanlock={2: SanlockHost.LIVE}),
        S.ENGINE_FORCE_STOP,
        DestroyVm,
    ),
    Case(
        "safety.lease-lost.hold",
        state_in(S.ENGINE_FORCE_STOP, pending=pending("destroy")),
        obs(UP_GOOD, lease=LOST),
        S.ENGINE_FORCE_STOP,
    ),
    # --- ReinitializeFSM ---
    Case("reinit.await-health", state_in(S.REINITIALIZE), obs(None), S.REINITIALIZE),
    Case("reinit.vm-up", state_in(S.REINITIALIZE), obs(UP_GOOD), S.ENGINE_STARTING),
    Case("reinit.vm-down", state_in(S.REINITIALIZE), obs(DOWN), S.ENGINE_DOWN),
    # --- guards ---
    Case("guard.global", state_in(S.ENGINE_DOWN), obs(DOWN, global_maintenance=True), S.GLOBAL_MAINTENANCE),
    Case("guard.global", state_in(S.ENGINE_UP), obs(UP_GOOD, global_maintenance=True), S.GLOBAL_MAINTENANCE),
    Case("guard.global.hold", state_in(S.GLOBAL_MAINTENANCE), obs(DOWN, global_maintenance=True), S.GLOBAL_MAINTENANCE),
    Case("guard.local", state_in(S.ENGINE_DOWN), obs(DOWN, local_maintenance=True), S.LOCAL_MAINTENANCE),
    Case("guard.local", state_in(S.GLOBAL_MAINTENANCE), obs(DOWN, local_maintenance=True), S.LOCAL_MAINTENANCE),
    Case("guard.vm-unknown", state_in(S.ENGINE_DOWN), obs(UNKNOWN), S.UNKNOWN_LOCAL_VM_STATE),
    Case("guard.vm-unknown", state_in(S.ENGINE_UP), obs(None), S.UNKNOWN_LOCAL_VM_STATE),
    Case("guard.vm-unknown.hold", state_in(S.UNKNOWN_LOCAL_VM_STATE), obs(UNKNOWN), S.UNKNOWN_LOCAL_VM_STATE),
    Case(
        "guard.vm-unknown.hold",
        migrating(pending=None),
        obs(UNKNOWN, local_maintenance=True),
        S.LOCAL_MAINTENANCE_MIGRATE_VM,
    ),
    Case(
        "timeout.EngineStarting",
        state_in(S.ENGINE_STARTING, entered_at=T0 - 600),
        obs(POWERING_UP),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case(
        "timeout.EngineUpBadHealth",
        state_in(S.ENGINE_UP_BAD_HEALTH, entered_at=T0 - 300),
        obs(UP_BAD),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case(
        "timeout.EngineMaybeAway",
        state_in(S.ENGINE_MAYBE_AWAY, entered_at=T0 - 40),
        obs(DOWN_MISSING),
        S.ENGINE_UNEXPECTEDLY_DOWN,
    ),
    Case(
        "timeout.EngineUnexpectedlyDown",
        state_in(S.ENGINE_UNEXPECTEDLY_DOWN, entered_at=T0 - 560),
        obs(DOWN_UNEXPECTED),
        S.ENGINE_DOWN,
    ),
    Case(
        "timeout.EngineStop", state_in(S.ENGINE_STOP, entered_at=T0 - 300), obs(UP_GOOD), S.ENGINE_FORCE_STOP, DestroyVm
    ),
    # --- EngineDown ---
    Case("down.engine-here", state_in(S.ENGINE_DOWN), obs(UP_GOOD), S.ENGINE_STARTING),
    Case("down.engine-elsewhere", state_in(S.ENGINE_DOWN), obs(DOWN, peers=(PEER_UP,)), S.ENGINE_DOWN),
    Case("down.view-immature", state_in(S.ENGINE_DOWN, history_age=60.0), obs(DOWN), S.ENGINE_DOWN),
    Case("down.view-stale", state_in(S.ENGINE_DOWN, view_age=30.5), obs(DOWN, peers=None), S.ENGINE_DOWN),
    Case("down.incoming-migration", state_in(S.ENGINE_DOWN, peers=()), obs(INCOMING, peers=()), S.ENGINE_DOWN),
    Case("down.storage-bad", state_in(S.ENGINE_DOWN), obs(DOWN, storage_ok=False), S.ENGINE_DOWN),
    Case("down.storage-bad", state_in(S.ENGINE_DOWN), obs(DOWN, storage_ok=None), S.ENGINE_DOWN),
    Case(
        "down.peer-too-new",
        state_in(S.ENGINE_DOWN, peers=(PeerFault(3, "too_new", "abc"),)),
        obs(DOWN, peers=(PeerFault(3, "too_new", "abc"),)),
        S.ENGINE_DOWN,
    ),
    Case(
        "down.lease-held",
        state_in(S.ENGINE_DOWN),
        obs(DOWN, lease=FOREIGN, sanlock={2: SanlockHost.LIVE}),
        S.ENGINE_DOWN,
    ),
    Case(
        "down.lease-held", state_in(S.ENGINE_DOWN), obs(DOWN, lease=FOREIGN), S.ENGINE_DOWN
    ),  # owner alive on the board
    Case("down.lease-backoff", state_in(S.ENGINE_DOWN, lease_busy_at=T0 - 19.9), obs(DOWN), S.ENGINE_DOWN),
    Case("down.start", state_in(S.ENGINE_DOWN), obs(DOWN), S.ENGINE_START, AcquireLeaseAndStartVm),
    Case(
        "down.start",
        state_in(S.ENGINE_DOWN),
        obs(DOWN, lease=FOREIGN, sanlock={2: SanlockHost.DEAD}),
        S.ENGINE_START,
        AcquireLeaseAndStartVm,
    ),
    Case("down.start", state_in(S.ENGINE_DOWN, peers=()), obs(DOWN, peers=()), S.ENGINE_START, AcquireLeaseAndStartVm),
    Case("down.better-host", state_in(S.ENGINE_DOWN), obs(DOWN, network=0.8), S.ENGINE_DOWN),
    # --- host priorities (issue 14): inside the band (yield_threshold of the best score) ---
    Case(
        "down.better-host",  # a better priority does not beat a score higher by the threshold
        state_in(S.ENGINE_DOWN, priority=1),
        obs(DOWN, network=0.5),
        S.ENGINE_DOWN,
    ),
    Case(
        "down.start.preferred",  # peer 3400 at priority 0, own 3081 at priority 1
        state_in(S.ENGINE_DOWN, priority=1),
        obs(DOWN, network=0.8),
        S.ENGINE_START,
        AcquireLeaseAndStartVm,
    ),
    Case(
        "down.priority-defer",
        state_in(S.ENGINE_DOWN, peers=(BETTER_PRIO,)),
        obs(DOWN, peers=(BETTER_PRIO,)),
        S.ENGINE_DOWN,
    ),
    Case(
        "down.priority-defer",
        state_in(S.ENGINE_DOWN, peers=(BETTER_PRIO_LOWER,), priority_wait_since=T0 - 29.9),
        obs(DOWN, peers=(BETTER_PRIO_LOWER,)),
        S.ENGINE_DOWN,
    ),
    Case(
        "down.priority-defer.expired",
        state_in(S.ENGINE_DOWN, peers=(BETTER_PRIO,), priority_wait_since=T0 - 30),
        obs(DOWN, peers=(BETTER_PRIO,)),
        S.ENGINE_START,
        AcquireLeaseAndStartVm,
    ),
    Case(
        "down.restart-backoff",
        state_in(S.ENGINE_DOWN, restarts=(T0 - 30, T0 - 5)),  # the 2nd restart waits 10 s
        obs(DOWN_UNEXPECTED, peers=()),
        S.ENGINE_DOWN,
    ),
    # --- restart locally first: the VM crashed here, no live peer can take it (issue 14) ---
    Case(
        "vm-crashed.restart-here",
        state_in(S.ENGINE_UP),
        obs(DOWN_UNEXPECTED, peers=()),
        S.ENGINE_START,
        AcquireLeaseAndStartVm,
    ),
    Case(
        "vm-crashed.restart-here",
        state_in(S.ENGINE_UP_BAD_HEALTH, peers=(INELIGIBLE,)),
        obs(DOWN_UNEXPECTED, peers=(INELIGIBLE,)),
        S.ENGINE_START,
        AcquireLeaseAndStartVm,
    ),
    Case(
        "vm-crashed.restart-here",
        state_in(S.ENGINE_STARTING, peers=()),
        obs(DOWN_UNEXPECTED, peers=()),
        S.ENGINE_START,
        AcquireLeaseAndStartVm,
    ),
    Case(
        "vm-crashed.restart-here",
        state_in(S.ENGINE_MAYBE_AWAY, peers=(peer(score=0),)),
        obs(DOWN_UNEXPECTED, peers=(peer(score=0),)),
        S.ENGINE_START,
        AcquireLeaseAndStartVm,
    ),
    Case(
        "vm-crashed.restart-backoff",
        state_in(S.ENGINE_UP, restarts=(T0 - 100,)),
        obs(DOWN_UNEXPECTED, peers=()),
        S.ENGINE_DOWN,
    ),
    # --- EngineStart ---
    Case("start.await", state_in(S.ENGINE_START, pending=pending("start")), obs(DOWN), S.ENGINE_START),
    Case(
        "start.ok",
        state_in(S.ENGINE_START, pending=pending("start")),
        obs(POWERING_UP, result=result(Outcome.OK)),
        S.ENGINE_STARTING,
    ),
    Case(
        "start.failed",
        state_in(S.ENGINE_START, pending=pending("start")),
        obs(DOWN, result=result(Outcome.FAILED, reason="libvirt error")),
        S.ENGINE_DOWN,
    ),
    Case(
        "start.lease-busy",
        state_in(S.ENGINE_START, pending=pending("start")),
        obs(DOWN, result=result(Outcome.LEASE_BUSY)),
        S.ENGINE_DOWN,
    ),
    Case(
        "start.timeout",
        state_in(S.ENGINE_START, pending=pending("start", issued_at=T0 - ACTION_TIMEOUT)),
        obs(DOWN),
        S.ENGINE_DOWN,
    ),
    # --- EngineStarting ---
    Case("starting.up", state_in(S.ENGINE_STARTING), obs(UP_GOOD), S.ENGINE_UP),
    Case("starting.powering-up", state_in(S.ENGINE_STARTING), obs(POWERING_UP), S.ENGINE_STARTING),
    Case(
        "starting.powering-up", state_in(S.ENGINE_STARTING), obs(POWERING_UP, local_maintenance=True), S.ENGINE_STARTING
    ),
    Case("starting.not-ready", state_in(S.ENGINE_STARTING, entered_at=T0 - 3000), obs(NOT_READY), S.ENGINE_STARTING),
    Case(
        "starting.not-ready-ceiling",
        state_in(S.ENGINE_STARTING, entered_at=T0 - 3600, alive_at=T0 - 10),
        obs(NOT_READY),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case("starting.vm-down", state_in(S.ENGINE_STARTING), obs(DOWN), S.ENGINE_FORCE_STOP, DestroyVm),
    Case("starting.vm-vanished", state_in(S.ENGINE_STARTING), obs(DOWN_UNEXPECTED), S.ENGINE_MAYBE_AWAY),
    Case("starting.vm-vanished", state_in(S.ENGINE_STARTING), obs(DOWN_MISSING), S.ENGINE_MAYBE_AWAY),
    # --- EngineUp / EngineUpBadHealth ---
    Case("up.vm-down", state_in(S.ENGINE_UP), obs(DOWN), S.ENGINE_MAYBE_AWAY),
    Case("up.vm-crashed", state_in(S.ENGINE_UP), obs(DOWN_UNEXPECTED), S.ENGINE_UNEXPECTEDLY_DOWN),
    Case("up.vm-crashed", state_in(S.ENGINE_UP_BAD_HEALTH), obs(DOWN_UNEXPECTED), S.ENGINE_UNEXPECTEDLY_DOWN),
    Case("up.vm-not-up", state_in(S.ENGINE_UP), obs(DOWN_MISSING), S.ENGINE_MAYBE_AWAY),
    Case("up.engine-elsewhere", state_in(S.ENGINE_UP), obs(UP_BAD, peers=(PEER_UP,)), S.ENGINE_STOP, ShutdownVm),
    Case(
        "up.local-maintenance.migrate",
        state_in(S.ENGINE_UP),
        obs(UP_GOOD, local_maintenance=True),
        S.LOCAL_MAINTENANCE_MIGRATE_VM,
        MigrateVm,
    ),
    Case(
        "up.local-maintenance.no-target",
        state_in(S.ENGINE_UP, peers=()),
        obs(UP_GOOD, peers=(), local_maintenance=True),
        S.ENGINE_UP,
    ),
    Case(
        "up.local-maintenance.no-target",
        state_in(S.ENGINE_UP),
        obs(UP_GOOD, peers=(peer(maintenance=True, score=0),), local_maintenance=True),
        S.ENGINE_UP,
    ),
    Case(
        "up.local-maintenance.evacuate",
        state_in(S.ENGINE_UP, migrate_failed_at=T0 - 59),
        obs(UP_GOOD, local_maintenance=True),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case(
        "up.yield.migrate",
        state_in(S.ENGINE_UP, outranked_since=T0 - 60),
        obs(UP_GOOD, **LOW_NET),
        S.ENGINE_MIGRATING_AWAY,
        MigrateVm,
    ),
    Case(
        "up.yield.migrate",
        state_in(S.ENGINE_UP_BAD_HEALTH, outranked_since=T0 - 60),
        obs(UP_BAD, **LOW_NET),
        S.ENGINE_MIGRATING_AWAY,
        MigrateVm,
    ),
    Case(  # a yield migration failed moments ago: the cold path
        "up.yield",
        state_in(S.ENGINE_UP, outranked_since=T0 - 60, migrate_failed_at=T0 - 1),
        obs(UP_GOOD, **LOW_NET),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case(  # no host can take the VM live (the better one reports it is stopping): the cold path
        "up.yield",
        state_in(S.ENGINE_UP_BAD_HEALTH, outranked_since=T0 - 60, peers=(peer(stopped=True),)),
        obs(UP_BAD, peers=(peer(stopped=True, ts=5001),), **LOW_NET),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case("up.bad-health", state_in(S.ENGINE_UP), obs(UP_BAD), S.ENGINE_UP_BAD_HEALTH),
    Case("up.bad-health", state_in(S.ENGINE_UP), obs(PAUSED), S.ENGINE_UP_BAD_HEALTH),
    Case("up.bad-health.persists", state_in(S.ENGINE_UP_BAD_HEALTH), obs(UP_BAD), S.ENGINE_UP_BAD_HEALTH),
    Case("up.not-ready", state_in(S.ENGINE_UP), obs(NOT_READY), S.ENGINE_UP_BAD_HEALTH),
    Case(
        "up.not-ready", state_in(S.ENGINE_UP_BAD_HEALTH, entered_at=T0 - 3000), obs(NOT_READY), S.ENGINE_UP_BAD_HEALTH
    ),
    Case(
        "up.not-ready-ceiling",
        state_in(S.ENGINE_UP_BAD_HEALTH, entered_at=T0 - 3600, alive_at=T0 - 10),
        obs(NOT_READY),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case("up.outranked", state_in(S.ENGINE_UP), obs(UP_GOOD, **LOW_NET), S.ENGINE_UP),
    # --- failback (issue 14): configured, to a better-priority host eligible for the dwell ---
    Case(
        "up.failback.migrate",
        state_in(S.ENGINE_UP, peers=(BETTER_PRIO,), timing=FAILBACK, failback_target=2, failback_since=T0 - 300),
        obs(UP_GOOD, peers=(BETTER_PRIO,)),
        S.ENGINE_MIGRATING_AWAY,
        MigrateVm,
    ),
    Case(  # a failback migration failed moments ago: the cold path
        "up.failback",
        state_in(
            S.ENGINE_UP,
            peers=(BETTER_PRIO,),
            timing=FAILBACK,
            failback_target=2,
            failback_since=T0 - 300,
            migrate_failed_at=T0 - 1,
        ),
        obs(UP_GOOD, peers=(BETTER_PRIO,)),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case(
        "up.failback.dwell",
        state_in(S.ENGINE_UP, peers=(BETTER_PRIO,), timing=FAILBACK, failback_target=2, failback_since=T0 - 299),
        obs(UP_GOOD, peers=(BETTER_PRIO,)),
        S.ENGINE_UP,
    ),
    Case(
        "up.failback.dwell",  # the last failback did not take: backing off
        state_in(
            S.ENGINE_UP,
            peers=(BETTER_PRIO,),
            timing=FAILBACK,
            failback_target=2,
            failback_since=T0 - 900,
            failback_failed_at=T0 - 3599,
        ),
        obs(UP_GOOD, peers=(BETTER_PRIO,)),
        S.ENGINE_UP,
    ),
    Case("up.ok", state_in(S.ENGINE_UP), obs(UP_GOOD), S.ENGINE_UP),
    Case("up.ok", state_in(S.ENGINE_UP_BAD_HEALTH), obs(UP_GOOD), S.ENGINE_UP),
    # --- EngineMaybeAway / EngineUnexpectedlyDown ---
    Case("maybe-away.vm-down", state_in(S.ENGINE_MAYBE_AWAY), obs(DOWN), S.ENGINE_DOWN),
    Case("maybe-away.vm-crashed", state_in(S.ENGINE_MAYBE_AWAY), obs(DOWN_UNEXPECTED), S.ENGINE_UNEXPECTEDLY_DOWN),
    Case("maybe-away.vm-up", state_in(S.ENGINE_MAYBE_AWAY), obs(UP_GOOD), S.ENGINE_UP),
    Case(
        "maybe-away.engine-elsewhere", state_in(S.ENGINE_MAYBE_AWAY), obs(DOWN_MISSING, peers=(PEER_UP,)), S.ENGINE_DOWN
    ),
    Case("maybe-away.wait", state_in(S.ENGINE_MAYBE_AWAY), obs(DOWN_MISSING), S.ENGINE_MAYBE_AWAY),
    Case("unexpectedly-down.engine-here", state_in(S.ENGINE_UNEXPECTEDLY_DOWN), obs(UP_GOOD), S.ENGINE_UP),
    Case(
        "unexpectedly-down.wait",
        state_in(S.ENGINE_UNEXPECTEDLY_DOWN),
        obs(DOWN_UNEXPECTED, peers=(PEER_UP,)),
        S.ENGINE_UNEXPECTEDLY_DOWN,
    ),
    Case(
        "unexpectedly-down.wait", state_in(S.ENGINE_UNEXPECTEDLY_DOWN), obs(DOWN_UNEXPECTED), S.ENGINE_UNEXPECTEDLY_DOWN
    ),
    # --- EngineStop / EngineForceStop ---
    Case("stop.vm-gone", state_in(S.ENGINE_STOP, pending=pending("shutdown")), obs(DOWN), S.ENGINE_DOWN),
    Case("stop.paused", state_in(S.ENGINE_STOP), obs(PAUSED), S.ENGINE_FORCE_STOP, DestroyVm),
    Case(
        "stop.failed",
        state_in(S.ENGINE_STOP, pending=pending("shutdown")),
        obs(UP_GOOD, result=result(Outcome.FAILED)),
        S.REINITIALIZE,
    ),
    Case(
        "stop.await",
        state_in(S.ENGINE_STOP, pending=pending("shutdown")),
        obs(UP_GOOD, result=result(Outcome.OK)),
        S.ENGINE_STOP,
    ),
    Case("stop.await", state_in(S.ENGINE_STOP, pending=pending("shutdown")), obs(UP_GOOD), S.ENGINE_STOP),
    Case(
        "force-stop.done",
        state_in(S.ENGINE_FORCE_STOP, pending=pending("destroy")),
        obs(DOWN, result=result(Outcome.OK)),
        S.ENGINE_DOWN,
    ),
    Case(
        "force-stop.failed",
        state_in(S.ENGINE_FORCE_STOP, pending=pending("destroy")),
        obs(UP_GOOD, result=result(Outcome.FAILED)),
        S.REINITIALIZE,
    ),
    Case(
        "force-stop.timeout",
        state_in(S.ENGINE_FORCE_STOP, pending=pending("destroy", issued_at=T0 - ACTION_TIMEOUT)),
        obs(UP_GOOD),
        S.REINITIALIZE,
    ),
    Case(
        "force-stop.await", state_in(S.ENGINE_FORCE_STOP, pending=pending("destroy")), obs(UP_GOOD), S.ENGINE_FORCE_STOP
    ),
    # --- maintenance ---
    Case("global-maintenance.cleared", state_in(S.GLOBAL_MAINTENANCE), obs(DOWN), S.REINITIALIZE),
    Case("local-maintenance.cleared", state_in(S.LOCAL_MAINTENANCE), obs(DOWN), S.REINITIALIZE),
    Case(
        "local-maintenance.idle", state_in(S.LOCAL_MAINTENANCE), obs(DOWN, local_maintenance=True), S.LOCAL_MAINTENANCE
    ),
    Case(
        "local-maintenance.idle",  # LocalMaintenance ignores global maintenance, as the original
        state_in(S.LOCAL_MAINTENANCE),
        obs(DOWN, local_maintenance=True, global_maintenance=True),
        S.LOCAL_MAINTENANCE,
    ),
    Case(
        "local-maintenance.migrate",
        state_in(S.LOCAL_MAINTENANCE),
        obs(UP_GOOD, local_maintenance=True),
        S.LOCAL_MAINTENANCE_MIGRATE_VM,
        MigrateVm,
    ),
    Case(
        "local-maintenance.global-hands-off",
        state_in(S.LOCAL_MAINTENANCE, migrate_failed_at=T0 - 10),
        obs(UP_GOOD, local_maintenance=True, global_maintenance=True),
        S.LOCAL_MAINTENANCE,
    ),
    Case(
        "local-maintenance.no-target",
        state_in(S.LOCAL_MAINTENANCE, peers=()),
        obs(UP_GOOD, peers=(), local_maintenance=True),
        S.LOCAL_MAINTENANCE,
    ),
    Case(
        "local-maintenance.evacuate",
        state_in(S.LOCAL_MAINTENANCE, migrate_failed_at=T0 - 10),
        obs(UP_GOOD, local_maintenance=True),
        S.ENGINE_STOP,
        ShutdownVm,
    ),
    Case(
        "migrate.done",
        migrating(),
        obs(DOWN, local_maintenance=True, result=result(Outcome.OK)),
        S.LOCAL_MAINTENANCE,
    ),
    Case(
        "migrate.failed",
        migrating(),
        obs(UP_GOOD, local_maintenance=True, result=result(Outcome.FAILED, reason="target refused")),
        S.ENGINE_UP,
    ),
    Case(
        "migrate.vm-lost",
        migrating(),
        obs(DOWN_UNEXPECTED, local_maintenance=True, result=result(Outcome.FAILED)),
        S.REINITIALIZE,
    ),
    Case(
        "migrate.timeout",
        migrating(entered_at=T0 - 300, pending=None),
        obs(UP_GOOD, local_maintenance=True),
        S.ENGINE_UP,
    ),
    Case(
        "migrate.await",
        migrating(),
        obs(UP_GOOD, local_maintenance=True, lease=FOREIGN),  # the lease moving to the target is no foreign lease
        S.LOCAL_MAINTENANCE_MIGRATE_VM,
    ),
    # --- EngineMigratingAway (issue 14): yield and failback by live migration ---
    Case("migrating-away.done", migrating_away(), obs(DOWN, result=result(Outcome.OK)), S.ENGINE_DOWN),
    Case(
        "migrating-away.failed",
        migrating_away(),
        obs(UP_GOOD, result=result(Outcome.FAILED, reason="target refused")),
        S.ENGINE_UP,
    ),
    Case(
        "migrating-away.vm-lost", migrating_away(), obs(DOWN_UNEXPECTED, result=result(Outcome.FAILED)), S.REINITIALIZE
    ),
    Case("migrating-away.timeout", migrating_away(entered_at=T0 - 300, pending=None), obs(UP_GOOD), S.ENGINE_UP),
    Case(
        "migrating-away.await",
        migrating_away(),
        obs(UP_GOOD, lease=FOREIGN),  # the lease moving to the target is no foreign lease
        S.ENGINE_MIGRATING_AWAY,
    ),
    Case("unknown-vm-state.known", state_in(S.UNKNOWN_LOCAL_VM_STATE), obs(DOWN), S.REINITIALIZE),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rule_fires(case: Case) -> None:
    new, actions, record = step(case.state, case.observation)
    assert record.rule == case.rule, record.note
    assert new.name is case.dest
    assert record.from_state == case.state.name.value and record.to_state == case.dest.value
    rule = RULES[record.rule]
    assert case.state.name in rule.sources and rule.target(case.state.name) is case.dest
    vm_actions = [a for a in actions if isinstance(a, (AcquireLeaseAndStartVm, ShutdownVm, DestroyVm, MigrateVm))]
    assert [type(a) for a in vm_actions] == ([case.vm_action] if case.vm_action else [])
    assert isinstance(actions[0], Publish) and actions[0].record.state == case.dest.value
    notifies = [a for a in actions if isinstance(a, Notify) and a.alert is None]
    changed = case.dest is not case.state.name
    assert notifies == ([Notify(f"{case.state.name.value}-{case.dest.value}")] if changed else [])
    assert new.entered_at == (T0 if changed else case.state.entered_at)  # timers start at entry (B23)


def test_every_rule_has_a_row() -> None:
    covered = {case.rule for case in CASES}
    assert set(RULES) - covered == {"agent.stopped"}  # test_fsm_misc covers stop()


def test_entry_action_sequence_numbers_and_pending() -> None:
    state = state_in(S.ENGINE_DOWN, next_seq=41)
    new, actions, _ = step(state, obs(DOWN))
    start = next(a for a in actions if isinstance(a, AcquireLeaseAndStartVm))
    assert start.seq == 41 and new.next_seq == 42
    assert new.pending is not None and (new.pending.seq, new.pending.kind, new.pending.issued_at) == (41, "start", T0)


def test_stale_result_is_ignored() -> None:
    state = state_in(S.ENGINE_START, pending=pending("start", seq=7))
    new, _, record = step(state, obs(DOWN, result=result(Outcome.OK, seq=6)))
    assert record.rule == "start.await" and new.pending == state.pending and record.inputs.result is None


def test_migration_targets_best_eligible_host() -> None:
    peers = (
        peer(2, score=2000),
        peer(3, score=3400, status=UP_GOOD),  # runs a VM: not a target
        peer(4, score=3000),
        peer(5, score=3400, maintenance=True),
    )
    state = state_in(S.ENGINE_UP, peers=peers)
    new, actions, _ = step(state, obs(UP_GOOD, peers=peers, local_maintenance=True))
    migrate = next(a for a in actions if isinstance(a, MigrateVm))
    assert (migrate.target_host_id, migrate.target_hostname) == (4, "host4") and new.migrate_target == 4
    # The hypervisor's job ends one loop before the FSM's own timer would give up on it.
    assert (
        migrate.deadline == TimingConfig().migrate_timeout - TimingConfig().loop_delay == MigrateVm(0, 0, "").deadline
    )


def test_foreign_lease_kills_whatever_the_owner_liveness() -> None:
    for status in SanlockHost:
        _, actions, record = step(state_in(S.ENGINE_UP), obs(UP_GOOD, lease=FOREIGN, sanlock={2: status}))
        assert record.rule == "safety.foreign-lease"
        assert any(isinstance(a, DestroyVm) for a in actions)


def test_no_safety_rule_while_the_lease_is_held_here_or_unknown() -> None:
    for lease in (LeaseStatus(OWN, True), None):
        _, _, record = step(state_in(S.ENGINE_UP), obs(UP_GOOD, lease=lease))
        assert record.rule == "up.ok"


def test_lease_lost_rule_needs_a_running_vm() -> None:
    for health in (DOWN, DOWN_MISSING, UNKNOWN):
        _, actions, record = step(state_in(S.ENGINE_MAYBE_AWAY), obs(health, lease=LOST))
        assert not record.rule.startswith("safety."), record.rule
        assert not any(isinstance(a, DestroyVm) for a in actions)


def test_own_migration_under_way_is_no_lost_lease() -> None:
    # With libvirt's sanlock plugin the lease is between source and target for a moment.
    _, _, record = step(migrating(), obs(UP_GOOD, local_maintenance=True, lease=LOST))
    assert record.rule == "migrate.await"
    _, _, record = step(migrating(pending=None), obs(UP_GOOD, local_maintenance=True, lease=LOST))
    assert record.rule == "safety.lease-lost"


def test_release_lease_only_when_vm_confirmed_gone() -> None:
    held = LeaseStatus(OWN, True)
    _, actions, _ = step(state_in(S.ENGINE_DOWN, peers=(PEER_UP,)), obs(DOWN, peers=(PEER_UP,), lease=held))
    assert any(isinstance(a, ReleaseLease) for a in actions)
    for health in (UNKNOWN, UP_GOOD, None):
        _, actions, _ = step(state_in(S.ENGINE_DOWN, peers=(PEER_UP,)), obs(health, peers=(PEER_UP,), lease=held))
        assert not any(isinstance(a, ReleaseLease) for a in actions)
    # Never while a start is pending: the executor may hold the lease for the VM it launches.
    _, actions, _ = step(state_in(S.ENGINE_START, pending=pending("start")), obs(DOWN, lease=held))
    assert not any(isinstance(a, ReleaseLease) for a in actions)


def test_release_lease_as_soon_as_the_vm_is_gone_in_any_state() -> None:
    # A keeper-held lease does not end with the VM: keeping it through EngineUnexpectedlyDown
    # (560 s) would block every other host's start.
    held = LeaseStatus(OWN, True)
    for name, health in (
        (S.ENGINE_UNEXPECTEDLY_DOWN, DOWN_UNEXPECTED),
        (S.ENGINE_MAYBE_AWAY, DOWN_MISSING),
        (S.GLOBAL_MAINTENANCE, DOWN),
    ):
        _, actions, _ = step(state_in(name), obs(health, lease=held, global_maintenance=name is S.GLOBAL_MAINTENANCE))
        assert any(isinstance(a, ReleaseLease) for a in actions), name
    # ... but never with a VM action pending (a destroy not yet answered).
    _, actions, _ = step(state_in(S.ENGINE_FORCE_STOP, pending=pending("destroy")), obs(DOWN, lease=held))
    assert not any(isinstance(a, ReleaseLease) for a in actions)
