"""What the state machine remembers between steps (``FsmState``), and its configuration."""

from __future__ import annotations

from dataclasses import dataclass

from he_ha.config import ScoreConfig
from he_ha.fsm.alerts import Alert
from he_ha.fsm.cluster_view import Snapshot
from he_ha.fsm.observation import WhiteboardView
from he_ha.fsm.states import StateName as S
from he_ha.fsm.timing import TimingConfig


@dataclass(frozen=True, slots=True)
class FsmConfig:
    host_id: int
    timing: TimingConfig = TimingConfig()
    score: ScoreConfig = ScoreConfig()
    # Host priority (issue 14): higher is preferred; hosted-engine.conf he_ha_priority, default 0.
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Pending:
    """A VM action whose result has not been reported yet."""

    seq: int
    kind: str  # start | shutdown | destroy | migrate
    issued_at: float


@dataclass(frozen=True, slots=True)
class FsmState:
    config: FsmConfig
    name: S = S.REINITIALIZE
    entered_at: float | None = None  # when the current state was entered: its timer start
    view: WhiteboardView | None = None  # the last successful whiteboard read
    history: tuple[Snapshot, ...] = ()
    global_maintenance: bool = False  # last known global flag
    start_failures: tuple[float, ...] = ()  # times of failed starts inside the retry window
    start_attempt_at: float | None = None  # our start succeeded; the engine is not up yet
    pending: Pending | None = None
    next_seq: int = 1
    outranked_since: float | None = None  # a peer beats us by the yield threshold since
    lease_busy_at: float | None = None
    migrate_failed_at: float | None = None
    migrate_target: int | None = None
    alive_at: float | None = None  # the local engine last showed life (healthy or not ready) in this state
    restarts: tuple[float, ...] = ()  # local restarts after a VM crash inside the retry window (issue 14)
    alerts: tuple[Alert, ...] = ()  # active alerts (he_ha.fsm.alerts)
    no_host_since: float | None = None  # since when no host can start the engine VM, which runs nowhere
    # Host priorities (issue 14): since when EngineDown defers its start to a better-priority peer
    priority_wait_since: float | None = None
    failback_target: int | None = None  # the better-priority host a failback would go to...
    failback_since: float | None = None  # ...eligible and ready since then (the failback dwell)
    failback_at: float | None = None  # this host stopped the VM for a failback; not settled yet
    failback_failed_at: float | None = None  # a failback did not take: this host started the VM again


def initial_state(
    host_id: int, timing: TimingConfig | None = None, score: ScoreConfig | None = None, priority: int = 0
) -> FsmState:
    return FsmState(FsmConfig(host_id, timing or TimingConfig(), score or ScoreConfig(), priority))
