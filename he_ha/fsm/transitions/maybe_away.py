"""EngineMaybeAway: the VM is missing here; did it go elsewhere?"""

from __future__ import annotations

from he_ha.fsm.health import VM_DOWN, VM_DOWN_UNEXPECTED
from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict
from he_ha.fsm.transitions.crash_restart import crashed

_AWAY = {S.ENGINE_MAYBE_AWAY}
AWAY_VM_DOWN = rule("maybe-away.vm-down", _AWAY, S.ENGINE_DOWN, "the VM is down here")
AWAY_VM_CRASHED = rule("maybe-away.vm-crashed", _AWAY, S.ENGINE_UNEXPECTEDLY_DOWN, "the VM went down unexpectedly")
AWAY_VM_UP = rule("maybe-away.vm-up", _AWAY, S.ENGINE_UP, "the VM is up here again")
AWAY_ELSEWHERE = rule("maybe-away.engine-elsewhere", _AWAY, S.ENGINE_DOWN, "a live peer runs the engine")
AWAY_WAIT = rule("maybe-away.wait", _AWAY, None, "the VM is missing here and runs nowhere else yet")


def maybe_away(ctx: StepContext) -> Verdict:
    health = ctx.health
    assert health is not None
    if health.vm == VM_DOWN:
        return Verdict(AWAY_VM_DOWN)
    if health.vm == VM_DOWN_UNEXPECTED:
        return crashed(ctx, AWAY_VM_CRASHED)
    if health.running:
        return Verdict(AWAY_VM_UP)
    best = ctx.cluster.best_engine
    if best is not None and best.running and ctx.cluster.best_engine_host != ctx.own_id:
        return Verdict(AWAY_ELSEWHERE, f"engine on host {ctx.cluster.best_engine_host}")
    return Verdict(AWAY_WAIT)
