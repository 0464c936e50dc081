"""LocalMaintenance: vacate this host (migrate the VM away, or shut it down), then idle."""

from __future__ import annotations

from he_ha.fsm.peer_choice import migrate_backoff, migration_target
from he_ha.fsm.rules import Rule, rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict

_LM = {S.LOCAL_MAINTENANCE}
LM_CLEARED = rule("local-maintenance.cleared", _LM, S.REINITIALIZE, "local maintenance cleared")
LM_MIGRATE = rule("local-maintenance.migrate", _LM, S.LOCAL_MAINTENANCE_MIGRATE_VM, "a VM runs here: migrate it away")
LM_NO_TARGET = rule("local-maintenance.no-target", _LM, None, "a VM runs here, but no live eligible host to migrate to")
LM_EVACUATE = rule(
    "local-maintenance.evacuate",
    _LM,
    S.ENGINE_STOP,
    "a VM runs here and live migration failed: shut it down for an eligible peer to start it",
)
LM_IDLE = rule("local-maintenance.idle", _LM, None, "in local maintenance")
LM_GLOBAL_HANDS_OFF = rule(
    "local-maintenance.global-hands-off",
    _LM,
    None,
    "a VM runs here, but global maintenance is set: it is neither migrated nor shut down",
)


def local_maintenance(ctx: StepContext) -> Verdict:
    if not ctx.local.local_maintenance:
        return Verdict(LM_CLEARED)
    if ctx.health is not None and ctx.health.running:
        if ctx.global_on:  # hands off (issue 14): no migration, no shutdown
            return Verdict(LM_GLOBAL_HANDS_OFF)
        return migrate_away(ctx, LM_MIGRATE, LM_NO_TARGET, LM_EVACUATE)
    return Verdict(LM_IDLE)


def migrate_away(ctx: StepContext, go: Rule, no_target: Rule, evacuate: Rule) -> Verdict:
    """Local maintenance with the VM here: migrate it live to the best eligible peer; if the
    last live migration failed (or the hypervisor cannot migrate), shut the VM down so that
    peer starts it. The host is vacated either way, as the admin asked; without an eligible
    peer the VM stays up here and the record says why."""
    target = migration_target(ctx)
    if target is None:
        why = "whiteboard view is stale" if ctx.cluster.stale else "no live host with a positive score and no VM"
        return Verdict(no_target, f"the VM stays up here: {why}")
    if migrate_backoff(ctx):
        return Verdict(evacuate, f"live migration failed; host {target.host_id} will start the VM")
    return Verdict(go, f"migrate to host {target.host_id}", migrate_target=target)
