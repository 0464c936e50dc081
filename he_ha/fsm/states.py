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
    UNKNOWN_LOCAL_VM_STATE = "UnknownLocalVmState"
    AGENT_STOPPED = "AgentStopped"  # final publish only, never a decision state


S = StateName
UP_FAMILY = frozenset({S.ENGINE_UP, S.ENGINE_UP_BAD_HEALTH})
