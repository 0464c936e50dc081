"""EngineStarting: the VM runs here; wait for the engine to be healthy."""

from __future__ import annotations

from he_ha.fsm.health import HEALTH_GOOD, LIVENESS_NOT_READY, VM_DOWN, VM_DOWN_UNEXPECTED
from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict, ceiling_reached, not_ready_ceiling
from he_ha.fsm.transitions.crash_restart import restart_locally

_STARTING = {S.ENGINE_STARTING}
STARTING_UP = rule("starting.up", _STARTING, S.ENGINE_UP, "the VM is up and the engine healthy")
STARTING_POWERING_UP = rule("starting.powering-up", _STARTING, None, "the VM is up, the engine not healthy yet")
STARTING_NOT_READY = rule(
    "starting.not-ready",
    _STARTING,
    None,
    "the engine answers but is not ready (alive): the starting timeout counts silence only",
)
STARTING_NOT_READY_CEILING = rule(
    "starting.not-ready-ceiling",
    _STARTING,
    S.ENGINE_STOP,
    "the engine was not healthy for not_ready_timeout (its ceiling) since the VM started",
)
STARTING_DOWN = rule(
    "starting.vm-down", _STARTING, S.ENGINE_FORCE_STOP, "the VM went down: another host took over", nowait=True
)
STARTING_VANISHED = rule(
    "starting.vm-vanished", _STARTING, S.ENGINE_MAYBE_AWAY, "the VM went down unexpectedly", nowait=True
)


def engine_starting(ctx: StepContext) -> Verdict:
    health = ctx.health
    assert health is not None  # the vm-unknown guard ran first
    if health.running:
        if health.health == HEALTH_GOOD:
            return Verdict(STARTING_UP, health.detail)
        if ceiling_reached(ctx, ctx.timing.starting_timeout):
            ceiling = not_ready_ceiling(ctx, ctx.timing.starting_timeout)
            return Verdict(STARTING_NOT_READY_CEILING, f"not healthy for {ceiling:g} s ({health.liveness})")
        if health.liveness == LIVENESS_NOT_READY:
            return Verdict(STARTING_NOT_READY, f"{health.detail}: {health.reason}")
        return Verdict(STARTING_POWERING_UP, health.detail)
    if health.vm == VM_DOWN:
        return Verdict(STARTING_DOWN, health.reason or "")
    if health.vm == VM_DOWN_UNEXPECTED:
        verdict, _ = restart_locally(ctx)
        if verdict is not None:
            return verdict
    return Verdict(STARTING_VANISHED, health.vm)
