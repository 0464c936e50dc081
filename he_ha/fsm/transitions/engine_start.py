"""EngineStart: its entry action takes the lease and launches the VM; this waits for the result."""

from __future__ import annotations

from he_ha.fsm.observation import Outcome
from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict, pending_overdue

_START = {S.ENGINE_START}
START_AWAIT = rule("start.await", _START, None, "waiting for the start result")
START_OK = rule("start.ok", _START, S.ENGINE_STARTING, "lease acquired and VM launched")
START_FAILED = rule("start.failed", _START, S.ENGINE_DOWN, "the start failed")
START_LEASE_BUSY = rule("start.lease-busy", _START, S.ENGINE_DOWN, "another host holds the VM lease")
START_TIMEOUT = rule("start.timeout", _START, S.ENGINE_DOWN, "no start result within action_timeout")


def engine_start(ctx: StepContext) -> Verdict:
    result = ctx.result
    if result is not None:
        if result.outcome is Outcome.OK:
            return Verdict(START_OK)
        if result.outcome is Outcome.LEASE_BUSY:
            return Verdict(START_LEASE_BUSY, result.reason, lease_busy=True)
        return Verdict(START_FAILED, result.reason, failure=True)
    if pending_overdue(ctx):
        return Verdict(START_TIMEOUT, failure=True)
    return Verdict(START_AWAIT)
