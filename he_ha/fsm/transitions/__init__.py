"""Each state's own logic, one module per state: the rules it may fire, declared right above
the conditions that pick them, and the function that picks one.

``step`` (he_ha/fsm/machine.py) asks, in order: the safety rule (lease_safety.py), the
state's guards (guards.py), then the state's function from ``STATE_LOGIC``. Every function
here is pure: it reads the ``StepContext`` and returns a ``Verdict``; what the step then
remembers is worked out in one place, machine.py's ``_next_state``. Importing this package
declares every rule (he_ha.fsm.rules.RULES).
"""

from __future__ import annotations

from collections.abc import Callable

from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict
from he_ha.fsm.transitions.engine_down import engine_down
from he_ha.fsm.transitions.engine_start import engine_start
from he_ha.fsm.transitions.engine_starting import engine_starting
from he_ha.fsm.transitions.engine_stop import engine_stop
from he_ha.fsm.transitions.engine_up import engine_up
from he_ha.fsm.transitions.force_stop import engine_force_stop
from he_ha.fsm.transitions.global_maintenance import global_maintenance
from he_ha.fsm.transitions.guards import check_guards
from he_ha.fsm.transitions.lease_safety import foreign_lease
from he_ha.fsm.transitions.local_maintenance import local_maintenance
from he_ha.fsm.transitions.maybe_away import maybe_away
from he_ha.fsm.transitions.migrating import migrating, migrating_away
from he_ha.fsm.transitions.reinitialize import reinitialize
from he_ha.fsm.transitions.unexpectedly_down import unexpectedly_down
from he_ha.fsm.transitions.unknown_vm_state import unknown_vm_state

STATE_LOGIC: dict[S, Callable[[StepContext], Verdict]] = {
    S.REINITIALIZE: reinitialize,
    S.ENGINE_DOWN: engine_down,
    S.ENGINE_START: engine_start,
    S.ENGINE_STARTING: engine_starting,
    S.ENGINE_UP: engine_up,
    S.ENGINE_UP_BAD_HEALTH: engine_up,
    S.ENGINE_MAYBE_AWAY: maybe_away,
    S.ENGINE_UNEXPECTEDLY_DOWN: unexpectedly_down,
    S.ENGINE_STOP: engine_stop,
    S.ENGINE_FORCE_STOP: engine_force_stop,
    S.GLOBAL_MAINTENANCE: global_maintenance,
    S.LOCAL_MAINTENANCE: local_maintenance,
    S.LOCAL_MAINTENANCE_MIGRATE_VM: migrating,
    S.ENGINE_MIGRATING_AWAY: migrating_away,
    S.UNKNOWN_LOCAL_VM_STATE: unknown_vm_state,
}


def decide(ctx: StepContext) -> Verdict:
    """Safety first (invariant 4), then the state's guards, then its own logic."""
    return foreign_lease(ctx) or check_guards(ctx) or STATE_LOGIC[ctx.state.name](ctx)
