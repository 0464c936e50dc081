"""Builders for FSM states and observations around a fixed local time ``T0``.

``state_in(name)`` gives a state whose whiteboard history is mature: one snapshot 100 s
old in which every peer had a different timestamp, so the peers in ``obs()`` are alive.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypedDict, Unpack

from he_ha.fsm import (
    ActionResult,
    EngineHealth,
    FsmState,
    LeaseStatus,
    LocalReadings,
    Observation,
    Outcome,
    PeerFault,
    PeerRecord,
    SanlockHost,
    StateName,
    TimingConfig,
    WhiteboardView,
    initial_state,
)
from he_ha.fsm.alerts import Alert
from he_ha.fsm.cluster_view import Snapshot
from he_ha.fsm.machine import Pending

OWN = 1
T0 = 10_000.0

UP_GOOD = EngineHealth("up", "good", "Up")
UP_BAD = EngineHealth("up", "bad", "Up", "failed liveliness check")
POWERING_UP = EngineHealth("up", "bad", "Powering up", "bad vm status")
PAUSED = EngineHealth("up", "bad", "Paused", "bad vm status")
DOWN = EngineHealth("down", "bad", "unknown", "vm not running on this host")
DOWN_UNEXPECTED = EngineHealth("down_unexpected", "bad", "Down", "bad vm status")
DOWN_MISSING = EngineHealth("down_missing", "bad", "unknown", "vm not running on this host")
INCOMING = EngineHealth("down", "bad", "Migration Destination", "bad vm status")  # a live migration arriving
UNKNOWN = EngineHealth("unknown", "unknown", "unknown", "failed to getVmStats")
NOT_READY = EngineHealth("up", "bad", "Up", "engine alive, not ready")  # answers, not "DB Up"
STARTING_NOT_READY = EngineHealth("up", "bad", "Powering up", "engine alive, not ready")

Peer = PeerRecord | PeerFault


class PeerFields(TypedDict, total=False):
    """PeerRecord's optional fields (hostname follows the host id)."""

    maintenance: bool
    stopped: bool
    priority: int


class LocalFields(TypedDict, total=False):
    """LocalReadings' fields other than the engine's health."""

    network: float | None
    bridge_up: bool | None
    free_memory_mib: float | None
    cpu_load: float | None
    storage_ok: bool | None
    local_maintenance: bool
    vm_memory_mib: int | None
    conf_up_to_date: bool


class StateFields(TypedDict, total=False):
    """FsmState's fields that ``state_in`` does not set itself."""

    global_maintenance: bool
    start_failures: tuple[float, ...]
    start_attempt_at: float | None
    next_seq: int
    outranked_since: float | None
    lease_busy_at: float | None
    migrate_failed_at: float | None
    migrate_target: int | None
    alive_at: float | None
    restarts: tuple[float, ...]
    alerts: tuple[Alert, ...]
    no_host_since: float | None
    priority_wait_since: float | None
    failback_target: int | None
    failback_since: float | None
    failback_at: float | None
    failback_failed_at: float | None


def peer(
    host_id: int = 2, score: int = 3400, status: EngineHealth = DOWN, ts: int = 5000, **kw: Unpack[PeerFields]
) -> PeerRecord:
    return PeerRecord(host_id, ts, score, status, f"host{host_id}", **kw)


def local(health: EngineHealth | None = DOWN, **kw: Unpack[LocalFields]) -> LocalReadings:
    base: LocalFields = {
        "network": 1.0,
        "bridge_up": True,
        "free_memory_mib": 16384.0,
        "cpu_load": 0.0,
        "vm_memory_mib": 4096,
    }
    base.update(kw)
    return LocalReadings(engine_health=health, **base)


def _stamp(p: Peer) -> int | str:
    return p.host_ts - 100 if isinstance(p, PeerRecord) else p.fingerprint + "-old"


def state_in(
    name: StateName,
    *,
    peers: tuple[Peer, ...] = (peer(),),
    entered_at: float | None = T0 - 5,
    pending: Pending | None = None,
    timing: TimingConfig | None = None,
    history_age: float = 100.0,
    view_age: float = 10.0,
    priority: int = 0,
    **fields: Unpack[StateFields],
) -> FsmState:
    """A state ``name`` with mature history (unless history_age <= liveness); ``priority``:
    this host's (issue 14)."""
    old = Snapshot(T0 - history_age, tuple(sorted((p.host_id, _stamp(p)) for p in peers)))
    previous = WhiteboardView(T0 - view_age, peers, False)
    recent = Snapshot(
        previous.read_at,
        tuple(sorted((p.host_id, p.host_ts if isinstance(p, PeerRecord) else p.fingerprint) for p in peers)),
    )
    history = (old, recent) if previous.read_at > old.read_at else (old,)
    base = initial_state(OWN, timing, priority=priority)
    return replace(base, name=name, entered_at=entered_at, view=previous, history=history, pending=pending, **fields)


def obs(
    health: EngineHealth | None = DOWN,
    *,
    peers: tuple[Peer, ...] | None = (peer(),),
    now: float = T0,
    global_maintenance: bool | None = False,
    lease: LeaseStatus | None = None,
    result: ActionResult | None = None,
    sanlock: dict[int, SanlockHost] | None = None,
    **local_kw: Unpack[LocalFields],
) -> Observation:
    """An observation at ``now``; ``peers=None`` means this tick's whiteboard read failed."""
    board = None if peers is None else WhiteboardView(now, peers, global_maintenance)
    return Observation(
        now=now,
        local=local(health, **local_kw),
        whiteboard=board,
        sanlock_hosts=None if sanlock is None else tuple(sorted(sanlock.items())),
        lease=lease,
        result=result,
    )


def pending(kind: str, seq: int = 7, issued_at: float = T0 - 5) -> Pending:
    return Pending(seq, kind, issued_at)


def result(outcome: Outcome, seq: int = 7, reason: str = "") -> ActionResult:
    return ActionResult(seq, outcome, reason)
