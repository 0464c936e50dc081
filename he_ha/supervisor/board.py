"""Reading the whiteboard for the state machine, and telling when a peer's slot changed.

One ``BoardReader`` serves both the tick and the peer poll: concurrent callers share one
read, and a read younger than the caller's ``max_age`` is reused, so a poll that woke the
ticker does not cost a second 8 MB read. Conversions to the FSM's values are pure functions.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from he_ha.config import DEFAULT_PRIORITY
from he_ha.fsm import EngineHealth, PeerFault, PeerRecord
from he_ha.fsm import WhiteboardView as FsmView
from he_ha.storage.codec import HostSlot
from he_ha.storage.codec import WhiteboardView as RawView
from he_ha.storage.whiteboard import Whiteboard
from he_ha.storage.whiteboard_errors import MetadataTooNew, SlotError, WhiteboardError


@dataclass(frozen=True)
class BoardRead:
    raw: RawView
    read_at: float  # monotonic time the read completed
    duration: float


class BoardReader:
    def __init__(self, whiteboard: Whiteboard) -> None:
        self.whiteboard = whiteboard
        self.latest: BoardRead | None = None
        self.error: str | None = None  # the last read's error while reads keep failing
        self.error_since: float | None = None
        self._inflight: asyncio.Task[BoardRead] | None = None

    async def read(self, max_age: float = 0.0) -> BoardRead:
        """A read finished at most ``max_age`` seconds ago, or a new one (WhiteboardError)."""
        latest = self.latest
        if latest is not None and time.monotonic() - latest.read_at <= max_age:
            return latest
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._read(), name="whiteboard-read")
        return await asyncio.shield(self._inflight)

    async def _read(self) -> BoardRead:
        start = time.monotonic()
        try:
            raw = await self.whiteboard.read_all()
        except WhiteboardError as exc:
            self.error = str(exc)
            self.error_since = self.error_since or time.monotonic()
            raise
        done = time.monotonic()
        self.latest = BoardRead(raw, done, done - start)
        self.error = self.error_since = None
        return self.latest


def engine_health_of(slot: HostSlot) -> EngineHealth:
    """A peer's engine status; text that is not a JSON object ranks as unknown."""
    try:
        data = json.loads(slot.engine_status)
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
    kind = "too_new" if isinstance(error, MetadataTooNew) else "corrupt"
    return PeerFault(host_id, kind, fingerprint, detail=error.problem)


def fsm_view(read: BoardRead, own_id: int) -> FsmView:
    """The state machine's view of one read: every used slot but ours, by host id."""
    raw = read.raw
    peers: list[PeerRecord | PeerFault] = [
        PeerRecord(
            host_id=slot.host_id,
            host_ts=slot.host_ts,
            score=slot.score,
            engine_status=engine_health_of(slot),
            hostname=slot.hostname,
            maintenance=slot.maintenance,
            stopped=slot.stopped,
            priority=peer_priority(slot),
        )
        for host_id, slot in raw.hosts.items()
        if host_id != own_id
    ]
    peers += [
        fault_of(host_id, error, raw.fingerprints[host_id]) for host_id, error in raw.errors.items() if host_id != own_id
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
