"""The structured record of one ``step``: the inputs that mattered, the rule that fired,
the transition, the actions and the score breakdown. Serialisable with ``he_ha.fsm.record_codec``."""

from __future__ import annotations

from dataclasses import dataclass

from he_ha.fsm.actions import Action
from he_ha.fsm.alerts import Alert
from he_ha.fsm.cluster_view import ClusterView
from he_ha.fsm.health import EngineHealth
from he_ha.fsm.observation import ActionResult
from he_ha.fsm.score import ScoreBreakdown


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    local_health: EngineHealth | None
    local_maintenance: bool
    global_maintenance: bool  # effective value (the last known one if slot 0 is unreadable)
    storage_ok: bool | None
    cluster: ClusterView  # liveness, best engine, best score, as judged this step
    own_score: int  # the score of the state we decided in
    lease_owner: int | None
    lease_held_here: bool | None
    result: ActionResult | None  # the action result consumed by this step
    start_failures: int  # failed starts inside the retry window
    outranked_since: float | None
    # The local engine: healthy / not-ready / silent (he_ha.fsm.health LIVENESS_*), None when
    # no VM runs here or there is no reading.
    engine_liveness: str | None = None
    local_restarts: int = 0  # local restarts after a VM crash inside the retry window (issue 14)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    host_id: int
    now: float
    from_state: str
    to_state: str
    rule: str  # stable id, see he_ha.fsm.rules
    note: str  # human explanation of this particular decision
    actions: tuple[Action, ...]
    score: ScoreBreakdown  # the published score, of the new state
    inputs: DecisionInputs
    tick_after: float  # tick again within this many seconds (0: at once)
    timeout_at: float | None  # when the new state's timer fires, local monotonic
    alerts: tuple[Alert, ...] = ()  # the alerts active after this step (he_ha.fsm.alerts)
