"""EngineForceStop: its entry action destroys the VM; this waits for the result."""

from __future__ import annotations

from he_ha.fsm.observation import Outcome
from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict, pending_overdue

_FORCE = {S.ENGINE_FORCE_STOP}
FORCE_DONE = rule("force-stop.done", _FORCE, S.ENGINE_DOWN, "the VM was destroyed")
FORCE_FAILED = rule("force-stop.failed", _FORCE, S.REINITIALIZE, "destroying the VM failed")
FORCE_TIMEOUT = rule("force-stop.timeout", _FORCE, S.REINITIALIZE, "no destroy result within action_timeout")
FORCE_AWAIT = rule("force-stop.await", _FORCE, None, "waiting for the destroy result")


def engine_force_stop(ctx: StepContext) -> Verdict:
    result = ctx.result
    if result is not None:
        if result.outcome is Outcome.OK:
            return Verdict(FORCE_DONE)
        return Verdict(FORCE_FAILED, result.reason)
    if pending_overdue(ctx):
        return Verdict(FORCE_TIMEOUT)
    return Verdict(FORCE_AWAIT)
