"""The state names. They are published in the whiteboard ``state=`` line and in mails, so
they are exactly the original's class names (spec §3.6)."""

from __future__ import annotations

from enum import StrEnum


class StateName(StrEnum):
    REINITIALIZE = "ReinitializeFSM"
    ENGINE_DOWN = "EngineDown"
    ENGINE_START = "EngineStart"
    ENGINE_STARTING = "EngineStarting"
    ENGINE_UP = "EngineUp"
    ENGINE_UP_BAD_HEALTH = "EngineUpBadHealth"
    ENGINE_MAYBE_AWAY = "EngineMaybeAway"
    ENGINE_UNEXPECTEDLY_DOWN = "EngineUnexpectedlyDown"
    ENGINE_STOP = "EngineStop"
    ENGINE_FORCE_STOP = "EngineForceStop"
    GLOBAL_MAINTENANCE = "GlobalMaintenance"
    LOCAL_MAINTENANCE = "LocalMaintenance"
    LOCAL_MAINTENANCE_MIGRATE_VM = "LocalMaintenanceMigrateVm"
    # A better host (by the yield threshold, or a failback) takes the VM by live migration
    # (issue 14). The original had a state of this name until 2019 (spec §3).
    ENGINE_MIGRATING_AWAY = "EngineMigratingAway"
    UNKNOWN_LOCAL_VM_STATE = "UnknownLocalVmState"
    AGENT_STOPPED = "AgentStopped"  # final publish only, never a decision state


S = StateName
UP_FAMILY = frozenset({S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH})
# States that live-migrate the VM away: a MigrateVm is issued on entry, the lease may be on
# its way to the target while they last.
MIGRATING = frozenset({S.LOCAL_MAINTENANCE_MIGRATE_VM, S.ENGINE_MIGRATING_AWAY})
