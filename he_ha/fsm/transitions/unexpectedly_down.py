"""EngineUnexpectedlyDown: score 0 while other hosts take over."""

from __future__ import annotations

from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict

_UNEXPECTED = {S.ENGINE_UNEXPECTEDLY_DOWN}
UD_ENGINE_HERE = rule("unexpectedly-down.engine-here", _UNEXPECTED, S.ENGINE_UP, "the engine runs here again")
UD_WAIT = rule("unexpectedly-down.wait", _UNEXPECTED, None, "score 0 while other hosts take over")


def unexpectedly_down(ctx: StepContext) -> Verdict:
    best = ctx.cluster.best_engine
    if best is not None and best.running and ctx.cluster.best_engine_host == ctx.own_id:
        return Verdict(UD_ENGINE_HERE)
    return Verdict(UD_WAIT)
