"""Peer liveness from the whiteboard history (spec §2.10), sanlock's host status, and the
best-engine / best-score choices (spec §3.3–3.4)."""

from __future__ import annotations

from collections.abc import Sequence

from he_ha.fsm import ClusterView, EngineHealth, PeerFault, SanlockHost, TimingConfig, WhiteboardView
from he_ha.fsm.cluster_view import Snapshot, extend_history, judge
from tests.unit.fsm.builders import DOWN, OWN, PAUSED, UNKNOWN, UP_BAD, UP_GOOD, Peer, peer

TIMING = TimingConfig()

Reads = list[tuple[float, tuple[Peer, ...]]]  # whiteboard reads: (time, peers)


def run(
    reads: Sequence[tuple[float, tuple[Peer, ...]]],
    sanlock: dict[int, SanlockHost] | None = None,
    local: EngineHealth | None = DOWN,
) -> ClusterView:
    """Feed whiteboard reads (time, peers) in order and judge after the last one."""
    history: tuple[Snapshot, ...] = ()
    view: WhiteboardView | None = None
    for read_at, peers in reads:
        view = WhiteboardView(read_at, peers, False)
        history = extend_history(history, view, TIMING)
    return judge(
        own_id=OWN,
        now=reads[-1][0],
        history=history,
        view=view,
        sanlock=sanlock or {},
        local_health=local,
        timing=TIMING,
    )


def ticking(
    *peer_ids: int,
    start: float = 0.0,
    end: float = 100.0,
    step: float = 10.0,
    frozen_after: dict[int, float] | None = None,
) -> Reads:
    """Reads every `step` s; each peer's host-ts follows its own clock, frozen after a time."""
    frozen_after = frozen_after or {}
    reads: Reads = []
    t = start
    while t <= end:
        peers = tuple(peer(i, ts=int(7 * i + min(t, frozen_after.get(i, t)))) for i in peer_ids)
        reads.append((t, peers))
        t += step
    return reads


def test_no_peer_alive_without_old_enough_snapshot() -> None:
    view = run(ticking(2, 3, end=60.0))
    assert not view.mature and view.alive == ()


def test_peers_alive_once_history_is_older_than_liveness() -> None:
    view = run(ticking(2, 3, end=70.0))
    assert view.mature and [p.host_id for p in view.alive] == [2, 3]


def test_peer_dead_when_its_timestamp_stopped_longer_than_liveness() -> None:
    # Host 3's timestamp freezes at its t=100 value (121).
    reads = ticking(2, 3, end=160.0, frozen_after={3: 100.0})
    assert [p.host_id for p in run(reads).alive] == [2, 3]  # historic is the t=90 read: 111 != 121
    reads = ticking(2, 3, end=170.0, frozen_after={3: 100.0})
    assert [p.host_id for p in run(reads).alive] == [2]  # historic is the t=100 read: 121 == 121


def test_new_peer_is_alive_at_once_when_absent_from_historic() -> None:
    reads = [*ticking(2, end=100.0), (110.0, (peer(2, ts=124), peer(4, ts=3)))]
    assert [p.host_id for p in run(reads).alive] == [2, 4]


def test_clocks_are_never_compared_across_hosts() -> None:
    """A peer's timestamps may be far below ours, or reset by a reboot: only change counts."""
    reads: Reads = [(t, (peer(2, ts=int(5 + t)),)) for t in range(0, 100, 10)]
    reads.append((100.0, (peer(2, ts=3),)))  # rebooted: its monotonic clock restarted
    assert [p.host_id for p in run(reads).alive] == [2]


def test_history_trimmed_to_window() -> None:
    history: tuple = ()
    for t in range(0, 1000, 10):
        history = extend_history(history, WhiteboardView(float(t), (), False), TIMING)
    assert history[0].read_at == 990.0 - 890.0  # read_at > 990 - 900 is kept
    assert all(s.read_at > 990 - TIMING.history for s in history)


def test_same_read_is_not_appended_twice() -> None:
    view = WhiteboardView(10.0, (), False)
    history = extend_history((), view, TIMING)
    assert extend_history(history, view, TIMING) is history
    assert extend_history(history, None, TIMING) is history


def test_sanlock_dead_overrides_a_changing_whiteboard() -> None:
    view = run(ticking(2, 3, end=70.0), sanlock={2: SanlockHost.DEAD, 3: SanlockHost.LIVE})
    assert [p.host_id for p in view.alive] == [3] and view.fenced == (2,)


def test_sanlock_live_alone_makes_a_peer_silent_not_alive() -> None:
    reads = ticking(2, end=200.0, frozen_after={2: 100.0})
    view = run(reads, sanlock={2: SanlockHost.LIVE})
    assert view.alive == () and view.silent == (2,)
    assert run(reads, sanlock={2: SanlockHost.FREE}).silent == ()


def test_unparsable_peers_live_by_fingerprint() -> None:
    reads: Reads = [
        (float(t), (PeerFault(5, "too_new", f"crc{t}"), PeerFault(6, "corrupt", "same"))) for t in range(0, 80, 10)
    ]
    view = run(reads)
    assert view.too_new == (5,) and view.unreadable == () and view.alive == ()
    reads = [(float(t), (PeerFault(6, "corrupt", f"crc{t}"),)) for t in range(0, 80, 10)]
    assert run(reads).unreadable == (6,)


def _with_status(*statuses: EngineHealth) -> Reads:
    reads: Reads = []
    for t in range(0, 80, 10):
        reads.append((float(t), tuple(peer(i + 2, ts=t, status=s) for i, s in enumerate(statuses))))
    return reads


def test_best_engine_is_local_on_ties() -> None:
    view = run(_with_status(UP_GOOD), local=UP_GOOD)
    assert view.best_engine_host == OWN


def test_best_engine_remote_when_strictly_better() -> None:
    view = run(_with_status(UP_BAD, UP_GOOD, UP_GOOD), local=DOWN)
    assert view.best_engine_host == 3 and view.best_engine == UP_GOOD  # lowest id among the tied


def test_ranking_order() -> None:
    """unknown < down < paused < bad health < good health."""
    assert [h.rank for h in (UNKNOWN, DOWN, PAUSED, UP_BAD, UP_GOOD)] == [0, 1, 2, 3, 4]
    view = run(_with_status(PAUSED), local=None)  # no local reading yet (B14): ranks as unknown
    assert view.best_engine_host == 2


def test_best_score_ignores_zero_and_breaks_ties_by_id() -> None:
    reads: Reads = [
        (float(t), (peer(2, ts=t, score=0), peer(3, ts=t, score=2000), peer(4, ts=t, score=2000)))
        for t in range(0, 80, 10)
    ]
    view = run(reads)
    assert view.best_score_host is not None and view.best_score_host.host_id == 3
    reads = [(float(t), (peer(2, ts=t, score=0),)) for t in range(0, 80, 10)]
    assert run(reads).best_score_host is None
