"""GlobalMaintenance: hands off until the flag clears (the hold guard keeps it here meanwhile)."""

from __future__ import annotations

from he_ha.fsm.rules import rule
from he_ha.fsm.states import StateName as S
from he_ha.fsm.step_context import StepContext, Verdict

GM_CLEARED = rule("global-maintenance.cleared", {S.GLOBAL_MAINTENANCE}, S.REINITIALIZE, "global maintenance cleared")


def global_maintenance(ctx: StepContext) -> Verdict:
    return Verdict(GM_CLEARED)  # the hold guard ran first: the flag is off
