"""The state machine and the score: pure code, no I/O, no asyncio, no clock reads.

The supervisor builds an ``Observation`` each tick, calls ``step`` and executes the
returned actions; see docs/fsm.md.
"""

from he_ha.fsm.actions import (
    AcquireLeaseAndStartVm,
    Action,
    DestroyVm,
    MigrateVm,
    Notify,
    Publish,
    PublishedRecord,
    ReleaseLease,
    ShutdownVm,
)
from he_ha.fsm.cluster_view import ClusterView
from he_ha.fsm.decision import DecisionInputs, DecisionRecord
from he_ha.fsm.health import EngineHealth
from he_ha.fsm.machine import FsmConfig, FsmState, initial_state, step, stop
from he_ha.fsm.observation import (
    ActionResult,
    LeaseStatus,
    LocalReadings,
    Observation,
    Outcome,
    PeerFault,
    PeerRecord,
    SanlockHost,
    WhiteboardView,
)
from he_ha.fsm.record_codec import CodecError, from_json, to_json
from he_ha.fsm.replay import log_entry, replay, replay_matches
from he_ha.fsm.rules import RULES, Rule
from he_ha.fsm.score import Penalty, ScoreBreakdown, compute_score
from he_ha.fsm.states import StateName
from he_ha.fsm.timing import TimingConfig, TimingError

__all__ = [
    "RULES",
    "AcquireLeaseAndStartVm",
    "Action",
    "ActionResult",
    "ClusterView",
    "CodecError",
    "DecisionInputs",
    "DecisionRecord",
    "DestroyVm",
    "EngineHealth",
    "FsmConfig",
    "FsmState",
    "LeaseStatus",
    "LocalReadings",
    "MigrateVm",
    "Notify",
    "Observation",
    "Outcome",
    "PeerFault",
    "PeerRecord",
    "Penalty",
    "Publish",
    "PublishedRecord",
    "ReleaseLease",
    "Rule",
    "SanlockHost",
    "ScoreBreakdown",
    "ShutdownVm",
    "StateName",
    "TimingConfig",
    "TimingError",
    "WhiteboardView",
    "compute_score",
    "from_json",
    "initial_state",
    "log_entry",
    "replay",
    "replay_matches",
    "step",
    "stop",
    "to_json",
]
