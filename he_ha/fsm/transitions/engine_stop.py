"""EngineStop: its entry action asks the guest to shut down; this watches the VM go."""

from __future__ import annotations

from he_ha.fsm.observation import Outcome
from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict

_STOP = {S.ENGINE_STOP}
STOP_VM_GONE = rule("stop.vm-gone", _STOP, S.ENGINE_DOWN, "the VM is no longer up here")
STOP_PAUSED = rule("stop.paused", _STOP, S.ENGINE_FORCE_STOP, "the VM is paused: force it off", nowait=True)
STOP_FAILED = rule("stop.failed", _STOP, S.REINITIALIZE, "the shutdown request failed")
STOP_AWAIT = rule("stop.await", _STOP, None, "waiting for the guest to shut down")


def engine_stop(ctx: StepContext) -> Verdict:
    health = ctx.health
    assert health is not None
    if not health.running:
        return Verdict(STOP_VM_GONE, health.vm)
    if health.detail == "Paused":
        return Verdict(STOP_PAUSED)
    if ctx.result is not None and ctx.result.outcome is not Outcome.OK:
        return Verdict(STOP_FAILED, ctx.result.reason)
    return Verdict(STOP_AWAIT)
