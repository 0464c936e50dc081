"""The cluster view: which peers are alive, which host runs the best engine, which has the
best score. Pure functions over the whiteboard history kept in the FSM state.

Liveness follows spec §2.10 exactly, measured on this host's monotonic clock only:
  * every new whiteboard read appends a snapshot of each peer's host-ts (or, for slots
    we cannot parse, a fingerprint of the slot's bytes) stamped with the local read time;
    snapshots older than ``history`` are dropped;
  * *historic* is the newest snapshot strictly older than ``liveness`` seconds before the
    latest read; a peer is alive if it is absent from *historic* or its stamp changed;
  * with no such snapshot no peer is alive, and the view is "immature". The same predicate
    gates starting in EngineDown, which fixes the original's off-by-one (B31).

sanlock's own host status, when available, is combined as follows:
  * whiteboard alive + sanlock DEAD -> not alive. DEAD means host_dead_seconds passed
    without a renewal, so the host has been fenced; its whiteboard slot is history.
  * whiteboard not alive + sanlock LIVE/FAIL -> "silent", not alive. We cannot read its
    engine status, so it does not rank; and sanlock liveness alone never blocks or enables
    a start: if a silent host runs the engine it holds the VM lease, and the lease check
    (and ultimately sanlock's acquire) stops us. Blocking on it instead could stop
    failover forever behind a host whose supervisor died while its VM did not run.
  * every other combination: the whiteboard decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from he_ha.fsm.health import EngineHealth, rank_of
from he_ha.fsm.observation import PeerFault, PeerRecord, SanlockHost, WhiteboardView
from he_ha.fsm.timing import TimingConfig

Stamp = int | str  # a peer's host-ts, or a fingerprint of a slot we cannot parse


@dataclass(frozen=True, slots=True)
class Snapshot:
    read_at: float
    stamps: tuple[tuple[int, Stamp], ...]


@dataclass(frozen=True, slots=True)
class ClusterView:
    mature: bool  # a snapshot older than `liveness` exists: liveness can be judged
    view_age: float | None  # now - time of the latest read; None when never read
    stale: bool  # no read, or the latest is older than view_max_age
    alive: tuple[PeerRecord, ...]  # readable live peers, by host id
    too_new: tuple[int, ...]  # live peers writing a newer metadata version (B13)
    unreadable: tuple[int, ...]  # live peers whose slot is corrupt: excluded, as the original
    silent: tuple[int, ...]  # sanlock LIVE/FAIL, whiteboard not alive
    fenced: tuple[int, ...]  # whiteboard alive but sanlock DEAD
    best_engine_host: int  # our own id unless a live peer ranks strictly higher
    best_engine: EngineHealth | None
    best_score_host: PeerRecord | None  # live peer with the highest score > 0


def _stamp(peer: PeerRecord | PeerFault) -> Stamp:
    return peer.host_ts if isinstance(peer, PeerRecord) else peer.fingerprint


def extend_history(
    history: tuple[Snapshot, ...], view: WhiteboardView | None, timing: TimingConfig
) -> tuple[Snapshot, ...]:
    """Append a snapshot for a read newer than the last one, then trim to the window."""
    if view is None or (history and view.read_at <= history[-1].read_at):
        return history
    snap = Snapshot(view.read_at, tuple(sorted((p.host_id, _stamp(p)) for p in view.peers)))
    horizon = view.read_at - timing.history
    first = 0
    while first < len(history) and history[first].read_at <= horizon:  # oldest first
        first += 1
    return (*history[first:], snap)


def historic_snapshot(history: tuple[Snapshot, ...], liveness: float) -> Snapshot | None:
    """The newest snapshot strictly older than ``liveness`` before the latest one."""
    if not history:
        return None
    limit = history[-1].read_at - liveness
    for snap in reversed(history):
        if snap.read_at < limit:
            return snap
    return None


def judge(
    *,
    own_id: int,
    now: float,
    history: tuple[Snapshot, ...],
    view: WhiteboardView | None,
    sanlock: dict[int, SanlockHost],
    local_health: EngineHealth | None,
    timing: TimingConfig,
) -> ClusterView:
    historic = historic_snapshot(history, timing.liveness)
    alive: list[PeerRecord] = []
    too_new: list[int] = []
    unreadable: list[int] = []
    silent: list[int] = []
    fenced: list[int] = []
    if view is not None:
        before = dict(historic.stamps) if historic is not None else None
        for peer in view.peers:
            status = sanlock.get(peer.host_id)
            by_board = before is not None and (peer.host_id not in before or before[peer.host_id] != _stamp(peer))
            if by_board and status is SanlockHost.DEAD:
                fenced.append(peer.host_id)
            elif by_board and isinstance(peer, PeerRecord):
                alive.append(peer)
            elif by_board and isinstance(peer, PeerFault):
                (too_new if peer.kind == "too_new" else unreadable).append(peer.host_id)
            elif not by_board and status in (SanlockHost.LIVE, SanlockHost.FAIL):
                silent.append(peer.host_id)
    alive.sort(key=lambda p: p.host_id)
    view_age = None if view is None else now - view.read_at

    best_engine_host, best_engine = own_id, local_health
    if alive:
        top = max(alive, key=lambda p: (p.engine_status.rank, -p.host_id))
        if top.engine_status.rank > rank_of(local_health):  # ties favour this host (spec §3.3)
            best_engine_host, best_engine = top.host_id, top.engine_status
    scored = [p for p in alive if p.score > 0]
    best_score = max(scored, key=lambda p: (p.score, -p.host_id)) if scored else None
    return ClusterView(
        mature=historic is not None,
        view_age=view_age,
        stale=view_age is None or view_age > timing.view_max_age,
        alive=tuple(alive),
        too_new=tuple(sorted(too_new)),
        unreadable=tuple(sorted(unreadable)),
        silent=tuple(sorted(silent)),
        fenced=tuple(sorted(fenced)),
        best_engine_host=best_engine_host,
        best_engine=best_engine,
        best_score_host=best_score,
    )
