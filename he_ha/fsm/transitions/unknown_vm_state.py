"""UnknownLocalVmState: the hold guard keeps it here until the local VM state is known."""

from __future__ import annotations

from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict

ULVS_KNOWN = rule(
    "unknown-vm-state.known",
    {S.UNKNOWN_LOCAL_VM_STATE},
    S.REINITIALIZE,
    "the local VM state is known again",
    nowait=True,
)


def unknown_vm_state(ctx: StepContext) -> Verdict:
    return Verdict(ULVS_KNOWN)  # the hold guard ran first: the state is known
