"""Reading the whiteboard for the state machine, and telling when a peer's slot changed.

One ``BoardReader`` serves both the tick and the peer poll: concurrent callers share one
read, and a read younger than the caller's ``max_age`` is reused, so a poll that woke the
ticker does not cost a second read. Conversions to the FSM's values are pure functions.

What is read (``ScanRange``, issue 16 item 1): not the whole 8 MiB of 2001 slots at every
read, as the original does, but slots 0..N where N is the highest host id that can be in use
plus a margin: the highest id in sanlock's view of the lockspace (the observer asks sanlock
``hosts`` every tick) and the highest slot holding anything at the last full scan. A full
scan still runs every ``FULL_SCAN_PERIOD`` seconds, whenever a host id appears in sanlock's
view that was not there before, and whenever sanlock's view is unknown (query failed, not
joined).

Why no publishing host is missed: a host writes its slot only while it holds its host id in
the lockspace (he-ha: ``Supervisor._publish`` refuses otherwise, spec §12.3 item 5; the
original's agent joins the lockspace before its first publish). Holding the id means a
delta lease in the lockspace, which every member's sanlock reads at each renewal, so the id
is in our sanlock ``hosts`` answer at the latest one renewal (2 × io_timeout) after it
joined; from then on its slot is below N, and the new id also forces a full scan. Until
then the full scan period bounds the delay. Slots above N were empty at the last full scan,
so a partial read's view (and the broker socket's ``get_stats``, which serves its
``slot_bytes``) is the whole whiteboard as far as anyone can have written it.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from he_ha.config import DEFAULT_PRIORITY
from he_ha.fsm import EngineHealth, PeerFault, PeerRecord
from he_ha.fsm import WhiteboardView as FsmView
from he_ha.supervisor.env import SYSTEM_CLOCK, Clock, WhiteboardIO
from he_ha.whiteboard import SLOT_COUNT, HostSlot, MetadataTooNew, SlotError, WhiteboardError
from he_ha.whiteboard import DecodedBoard as RawView


@dataclass(frozen=True)
class BoardRead:
    raw: RawView
    read_at: float  # monotonic time the read completed
    duration: float


FULL_SCAN_PERIOD = 60.0  # seconds between full scans of all 2001 slots
SCAN_MARGIN = 8  # slots read above the highest host id that can be in use


class ScanRange:
    """How many slots the next read covers (module doc): all of them, or 0..N."""

    def __init__(self, own_id: int, *, period: float = FULL_SCAN_PERIOD, margin: int = SCAN_MARGIN) -> None:
        self.own_id = own_id
        self.period = period
        self.margin = margin
        self.lockspace_ids: frozenset[int] | None = None  # sanlock's view at the last tick
        self.highest_at_full: int | None = None  # highest used slot of the last full scan
        self.last_full_at: float | None = None  # monotonic start of the last full scan
        self.full_due: str | None = None  # why the next read must be full, if it must
        self.full_scans = 0
        self.partial_scans = 0

    def note_lockspace(self, host_ids: Iterable[int] | None) -> None:
        """Sanlock's lockspace host list of a tick (None: unknown, so read everything)."""
        if host_ids is None:
            self.lockspace_ids = None
            return
        ids = frozenset(host_ids)
        if self.lockspace_ids is not None and not ids <= self.lockspace_ids:
            self.full_due = f"host id {min(ids - self.lockspace_ids)} appeared in the lockspace"
        self.lockspace_ids = ids

    def next_slots(self, now: float) -> int:
        """The slot count of a read starting at ``now`` (monotonic); a full one is recorded."""
        if (
            self.full_due is not None
            or self.lockspace_ids is None
            or self.highest_at_full is None
            or self.last_full_at is None
            or now - self.last_full_at >= self.period
        ):
            self.full_due = None
            return SLOT_COUNT
        highest = max(self.highest_at_full, self.own_id, max(self.lockspace_ids, default=0))
        return min(SLOT_COUNT, highest + self.margin + 1)

    def done(self, raw: RawView, started: float) -> None:
        """A read that started at ``started`` succeeded."""
        if raw.scanned_slots >= SLOT_COUNT:
            self.full_scans += 1
            self.last_full_at = started
            self.highest_at_full = raw.highest_used
        else:
            self.partial_scans += 1
            if self.highest_at_full is not None:  # a slot seen in range keeps the range
                self.highest_at_full = max(self.highest_at_full, raw.highest_used)


class BoardReader:
    def __init__(
        self,
        whiteboard: WhiteboardIO,
        clock: Clock = SYSTEM_CLOCK,
        on_read: Callable[[BoardRead | None, str | None], None] | None = None,
    ) -> None:
        """``on_read(latest, error)``: told after every read (the status snapshot's board)."""
        self.whiteboard = whiteboard
        self._clock = clock
        self._on_read = on_read
        self.scan = ScanRange(whiteboard.own_host_id)
        self.latest: BoardRead | None = None
        self.error: str | None = None  # the last read's error while reads keep failing
        self.error_since: float | None = None
        self._inflight: asyncio.Task[BoardRead] | None = None

    async def read(self, max_age: float = 0.0) -> BoardRead:
        """A read finished at most ``max_age`` seconds ago, or a new one (WhiteboardError)."""
        latest = self.latest
        if latest is not None and self._clock.monotonic() - latest.read_at <= max_age:
            return latest
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._read(), name="whiteboard-read")
        return await asyncio.shield(self._inflight)

    def note_lockspace(self, host_ids: Iterable[int] | None) -> None:
        """Sanlock's lockspace host ids as of this tick: they bound the next reads."""
        self.scan.note_lockspace(host_ids)

    async def _read(self) -> BoardRead:
        start = self._clock.monotonic()
        try:
            raw = await self.whiteboard.read_all(self.scan.next_slots(start))
        except WhiteboardError as exc:
            self.error = str(exc)
            self.error_since = self.error_since or self._clock.monotonic()
            self._tell()
            raise
        done = self._clock.monotonic()
        self.scan.done(raw, start)
        self.latest = BoardRead(raw, done, done - start)
        self.error = self.error_since = None
        self._tell()
        return self.latest

    def _tell(self) -> None:
        if self._on_read is not None:
            self._on_read(self.latest, self.error)


@functools.lru_cache(maxsize=64)
def engine_health_of(text: str) -> EngineHealth:
    """A peer's engine-status text; text that is not a JSON object ranks as unknown. (Pure;
    cached: every publish is a new slot, but its status is one of a few texts.)"""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return EngineHealth.from_mapping(data)


def peer_priority(slot: HostSlot) -> int:
    """A peer's host priority (issue 14): the ``priority=`` line of its extra text; a slot
    without one (the original's agents, older he-ha) has the default."""
    priority = slot.priority
    return DEFAULT_PRIORITY if priority is None else priority


def fault_of(host_id: int, error: SlotError, fingerprint: str) -> PeerFault:
    """A slot we cannot use; ``fingerprint`` (the codec's crc of its bytes) gives it liveness."""
    kind: Literal["too_new", "corrupt"] = "too_new" if isinstance(error, MetadataTooNew) else "corrupt"
    return PeerFault(host_id, kind, fingerprint, detail=error.problem)


@functools.lru_cache(maxsize=64)
def peer_record(slot: HostSlot) -> PeerRecord:
    """A peer's slot as the state machine takes it (pure; cached: in the simulator every
    host parses the same slot objects)."""
    return PeerRecord(
        host_id=slot.host_id,
        host_ts=slot.host_ts,
        score=slot.score,
        engine_status=engine_health_of(slot.engine_status),
        hostname=slot.hostname,
        maintenance=slot.maintenance,
        stopped=slot.stopped,
        priority=peer_priority(slot),
    )


def fsm_view(read: BoardRead, own_id: int) -> FsmView:
    """The state machine's view of one read: every used slot but ours, by host id."""
    raw = read.raw
    peers: list[PeerRecord | PeerFault] = [
        peer_record(slot) for host_id, slot in raw.hosts.items() if host_id != own_id
    ]
    peers += [
        fault_of(host_id, error, raw.fingerprints[host_id])
        for host_id, error in raw.errors.items()
        if host_id != own_id
    ]
    peers.sort(key=lambda p: p.host_id)
    if raw.global_error is not None:
        global_maintenance: bool | None = None
    else:
        global_maintenance = raw.global_block.maintenance if raw.global_block is not None else False
    return FsmView(read_at=read.read_at, peers=tuple(peers), global_maintenance=global_maintenance)


def peer_signature(raw: RawView, own_id: int) -> tuple[object, ...]:
    """What a peer changing its mind looks like: every field but the timestamp (which changes
    at every publish) of every slot but ours, the bad slots' error kinds and the global block."""
    slots = tuple(
        (s.host_id, s.score, s.engine_status, s.hostname, s.maintenance, s.stopped)
        for host_id, s in sorted(raw.hosts.items())
        if host_id != own_id
    )
    errors = tuple((host_id, type(err).__name__) for host_id, err in sorted(raw.errors.items()) if host_id != own_id)
    if raw.global_error is not None:
        global_part: object = type(raw.global_error).__name__
    else:
        global_part = raw.global_block is not None and raw.global_block.maintenance
    return (slots, errors, global_part)
