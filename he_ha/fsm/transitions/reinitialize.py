"""ReinitializeFSM: where every host starts; waits for a first engine-health reading (B14)."""

from __future__ import annotations

from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict

REINIT_AWAIT_HEALTH = rule("reinit.await-health", {S.REINITIALIZE}, None, "no engine-health reading yet (B14)")
REINIT_VM_UP = rule("reinit.vm-up", {S.REINITIALIZE}, S.ENGINE_STARTING, "the VM runs here", nowait=True)
REINIT_VM_DOWN = rule("reinit.vm-down", {S.REINITIALIZE}, S.ENGINE_DOWN, "the VM does not run here")


def reinitialize(ctx: StepContext) -> Verdict:
    if ctx.health is None:
        return Verdict(REINIT_AWAIT_HEALTH)
    return Verdict(REINIT_VM_UP if ctx.health.running else REINIT_VM_DOWN)
