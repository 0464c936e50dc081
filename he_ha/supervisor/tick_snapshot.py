"""What the readers of a supervisor see: one immutable ``StatusSnapshot`` per tick.

The tick (core.py) works on its own mutable fields and, at its end, builds one frozen
``StatusSnapshot`` and publishes it with one assignment (``StatusFeed.publish``). The admin
API's status and metrics and the broker socket (controller.py) read ``StatusFeed.current``
and nothing of the supervisor itself, so a reader answering while a tick waits on storage
sees the previous tick complete, never a decision of this tick beside the slot of the last
one. Everything in a snapshot is in memory: reading one never waits on storage.

The whiteboard read is the one part written outside the tick: the peer poll and the
read-back of a global maintenance write read the whiteboard between ticks, and the broker
socket serves the newest read (``get_stats``). ``BoardReader`` tells the feed of every read
(``note_read``), which replaces the snapshot by a copy with the new read: again one
assignment of a whole value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from he_ha.durations import DurationHistogram
from he_ha.fsm import DecisionRecord, FsmState
from he_ha.supervisor.board import BoardRead
from he_ha.supervisor.observe import TickInputs
from he_ha.whiteboard import HostSlot


@dataclass(frozen=True)
class TickStats:
    """The tick counters as of a snapshot (the supervisor counts in its own mutable copy)."""

    count: int = 0
    durations: DurationHistogram = field(default_factory=DurationHistogram)
    sanlock_durations: DurationHistogram = field(default_factory=DurationHistogram)  # a tick's queries
    sanlock_errors: int = 0  # failed sanlock queries, all ticks
    transitions: int = 0
    publishes: int = 0
    publish_failures: int = 0
    started_at: float = 0.0  # the env's monotonic clock when the supervisor was made


def histogram_copy(histogram: DurationHistogram) -> DurationHistogram:
    """A private copy for a snapshot: the supervisor goes on observing into its own."""
    return DurationHistogram(histogram.bounds, list(histogram.counts), histogram.sum)


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything the admin API, the broker socket and the metrics take from the tick."""

    host_id: int
    taken_at: float  # the env's monotonic clock when the tick that made it ended
    state: FsmState  # the FSM's state after that tick
    inputs: TickInputs | None  # its observation and what it was built from (None: no tick yet)
    record: DecisionRecord | None  # its decision
    published: HostSlot | None  # our slot as last written
    publish_error: str | None  # why the last publish failed (None: it worked)
    board: BoardRead | None  # the newest whiteboard read: the tick's, the peer poll's or a read-back's
    board_error: str | None  # the last read's error while reads keep failing
    ticks: TickStats
    peer_changes: Mapping[int, tuple[int, float]]  # host id -> (host_ts, when it changed); read-only
    ready: bool  # systemd heard READY=1 (the first publish worked)

    @property
    def publishing(self) -> bool:
        """Our slot is being written: the last publish worked."""
        return self.publish_error is None and self.published is not None

    @property
    def storage_error(self) -> str | None:
        return self.board_error or self.publish_error

    def with_board(self, board: BoardRead | None, board_error: str | None) -> StatusSnapshot:
        """This snapshot with another whiteboard read (``dataclasses.replace``, spelled out:
        every whiteboard read makes one)."""
        return StatusSnapshot(
            host_id=self.host_id,
            taken_at=self.taken_at,
            state=self.state,
            inputs=self.inputs,
            record=self.record,
            published=self.published,
            publish_error=self.publish_error,
            board=board,
            board_error=board_error,
            ticks=self.ticks,
            peer_changes=self.peer_changes,
            ready=self.ready,
        )


def first_snapshot(host_id: int, state: FsmState, now: float) -> StatusSnapshot:
    """Before the first tick: nothing seen, nothing decided, nothing published."""
    return StatusSnapshot(
        host_id=host_id,
        taken_at=now,
        state=state,
        inputs=None,
        record=None,
        published=None,
        publish_error=None,
        board=None,
        board_error=None,
        ticks=TickStats(started_at=now),
        peer_changes=MappingProxyType({}),
        ready=False,
    )


class StatusFeed:
    """The newest ``StatusSnapshot`` of one supervisor. Each write replaces it whole."""

    def __init__(self, first: StatusSnapshot) -> None:
        self._current = first

    @property
    def current(self) -> StatusSnapshot:
        return self._current

    def publish(self, snapshot: StatusSnapshot) -> None:
        """The end of a tick (its ``board`` taken from ``current``: reads are noted as they end)."""
        self._current = snapshot

    def note_read(self, read: BoardRead | None, error: str | None) -> None:
        """A whiteboard read ended (BoardReader): ``read`` is the newest that worked, ``error``
        the last one's error (None: it worked)."""
        self._current = self._current.with_board(read, error)
