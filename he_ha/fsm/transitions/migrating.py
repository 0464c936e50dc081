"""LocalMaintenanceMigrateVm and EngineMigratingAway: a live migration away is under way."""

from __future__ import annotations

from dataclasses import dataclass

from he_ha.fsm.observation import Outcome
from he_ha.fsm.rules import Rule, rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict


@dataclass(frozen=True, slots=True)
class _MigrationRules:
    """One migrating state's outcomes (LocalMaintenanceMigrateVm, EngineMigratingAway)."""

    done: Rule
    failed: Rule
    vm_lost: Rule
    timeout: Rule
    await_: Rule


# LocalMaintenanceMigrateVm: the admin asked to vacate this host.
_MIGRATE = {S.LOCAL_MAINTENANCE_MIGRATE_VM}
MIGRATE_DONE = rule("migrate.done", _MIGRATE, S.LOCAL_MAINTENANCE, "the VM left this host")
MIGRATE_FAILED = rule("migrate.failed", _MIGRATE, S.ENGINE_UP, "the migration failed; the VM stays up here")
MIGRATE_TIMEOUT = rule("migrate.timeout", _MIGRATE, S.ENGINE_UP, "no migration result within migrate_timeout")
MIGRATE_VM_LOST = rule("migrate.vm-lost", _MIGRATE, S.REINITIALIZE, "the migration failed and the VM is not up")
MIGRATE_AWAIT = rule("migrate.await", _MIGRATE, None, "migration under way")
_LM_MIGRATION = _MigrationRules(MIGRATE_DONE, MIGRATE_FAILED, MIGRATE_VM_LOST, MIGRATE_TIMEOUT, MIGRATE_AWAIT)


# EngineMigratingAway (issue 14): the yield and failback paths by live migration. A failed or
# timed-out migration goes back to EngineUp with the migration back-off set, where the same
# rule then takes the cold path (up.yield / up.failback: shut down, the better host starts).
_AWAY_MIGRATE = {S.ENGINE_MIGRATING_AWAY}
MIGRATING_AWAY_DONE = rule(
    "migrating-away.done", _AWAY_MIGRATE, S.ENGINE_DOWN, "the VM left this host for the better one"
)
MIGRATING_AWAY_FAILED = rule(
    "migrating-away.failed",
    _AWAY_MIGRATE,
    S.ENGINE_UP,
    "the migration failed; the VM stays up here (the cold path follows if the better host still is)",
)
MIGRATING_AWAY_TIMEOUT = rule(
    "migrating-away.timeout", _AWAY_MIGRATE, S.ENGINE_UP, "no migration result within migrate_timeout"
)
MIGRATING_AWAY_VM_LOST = rule(
    "migrating-away.vm-lost", _AWAY_MIGRATE, S.REINITIALIZE, "the migration failed and the VM is not up"
)
MIGRATING_AWAY_AWAIT = rule("migrating-away.await", _AWAY_MIGRATE, None, "migration under way")
_AWAY_MIGRATION = _MigrationRules(
    MIGRATING_AWAY_DONE,
    MIGRATING_AWAY_FAILED,
    MIGRATING_AWAY_VM_LOST,
    MIGRATING_AWAY_TIMEOUT,
    MIGRATING_AWAY_AWAIT,
)


def _migration(ctx: StepContext, rules: _MigrationRules) -> Verdict:
    """How the migration went: failed (the VM still here, or lost), done (the VM left), timed
    out, or still under way."""
    health, result = ctx.health, ctx.result
    assert health is not None  # the vm-unknown hold guard ran first
    if result is not None and result.outcome is not Outcome.OK:
        if health.running:
            return Verdict(rules.failed, result.reason, migrate_failed=True)
        return Verdict(rules.vm_lost, result.reason)
    if health.gone:
        return Verdict(rules.done, f"to host {ctx.state.migrate_target}")
    entered = ctx.state.entered_at
    if entered is not None and ctx.now >= entered + ctx.timing.migrate_timeout:
        return Verdict(rules.timeout, migrate_failed=True)
    return Verdict(rules.await_, "reported done, the VM has not left yet" if result else "")


def migrating(ctx: StepContext) -> Verdict:
    return _migration(ctx, _LM_MIGRATION)


def migrating_away(ctx: StepContext) -> Verdict:
    return _migration(ctx, _AWAY_MIGRATION)
