"""Who is alive, as seen from shared storage alone (no daemon, no lockspace membership).

The repair commands must not trust a host's own report ("stopped" in its slot) nor need the
local daemons: a crashed host never says it stopped, and the local daemon may be the broken
part. So they watch storage for a while, reading everything with O_DIRECT:

- each host's **delta lease** in the lockspace (sanlock renews it every 2 x io_timeout
  while the host holds its id): a timestamp that moves during the window is a live host;
  one that stays put but is not 0 belongs to a host that crashed or lost storage; 0 is a
  clean leave;
- each **metadata slot** (a host rewrites it on every publish, with a new host timestamp):
  bytes that change during the window are a live agent, even when we cannot decode them;
- the **VM lease**'s leader: which host id last took it and whether it still holds it.

The window defaults to 3 x the largest io timeout found in the lockspace (each host writes
its own into its delta lease; 30 s in production, 3 s in tests with io_timeout 1), long
enough to see at least one renewal of a live host. It ends early
once every host of interest has been seen alive (a refusal is certain by then).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from he_ha.lease import (
    DEFAULT_IO_TIMEOUT,
    LOCKSPACE_NAME,
    MIB,
    LeaderRecord,
    LockspaceGeometry,
    RecordError,
    RecordKind,
    find_geometry,
    parse_delta_lease,
    parse_leader,
)
from he_ha.provision.area_io import AreaError, AreaIo, all_zero
from he_ha.whiteboard import SLOT_BYTES, SLOT_COUNT, WHITEBOARD_BYTES, GlobalBlock, decode_whiteboard

WINDOW_FACTOR = 3  # x io_timeout: a live host renews at least once (every 2 x io_timeout)
PROBE_BYTES = 1 * MIB  # read first to find the geometry (holds sector 0 at any alignment)


class LeaseState(enum.Enum):
    RENEWING = "renewing"  # timestamp (or the sector's bytes) changed during the window: alive
    NOT_RENEWING = "not renewing"  # held but unchanged: the host crashed or lost storage
    RELEASED = "released"  # timestamp 0 after use: the host left the lockspace cleanly
    UNUSED = "unused"  # never joined since the lockspace was written
    UNREADABLE = "unreadable"  # not a delta lease of this lockspace, and nothing rewrites it


@dataclass(frozen=True)
class LeaseSeen:
    host_id: int
    state: LeaseState
    host_name: str | None
    generation: int | None
    first_timestamp: int | None
    last_timestamp: int | None
    problem: str | None = None


@dataclass(frozen=True)
class SlotSeen:
    """A non-empty metadata slot over the window (index 0: the global block)."""

    index: int
    changed: bool
    hostname: str | None
    first_ts: int | None
    last_ts: int | None
    stopped: bool | None
    problem: str | None  # why it does not decode; None when it does
    last_bytes: bytes  # what was read last: clearing refuses if storage no longer holds this


@dataclass(frozen=True)
class VmLeaseSeen:
    path: Path
    offset: int
    resource: str | None
    owner_id: int | None  # the last host to take it
    generation: int | None
    held: bool  # the leader's timestamp is not 0: taken and not released
    problem: str | None


@dataclass(frozen=True)
class StorageWatch:
    seconds: float  # how long storage was watched
    lockspace_path: Path
    geometry: LockspaceGeometry | None
    lockspace_problem: str | None  # the area holds no lockspace, or could not be read
    lockspace_read_failed: bool  # the problem is an I/O failure: liveness there is unknown
    leases: Mapping[int, LeaseSeen]  # every host id whose delta lease is not UNUSED
    slots: Mapping[int, SlotSeen]  # every non-empty metadata slot
    global_block: GlobalBlock | None  # decoded slot 0 (None: empty or unreadable, see slots[0])
    vm_lease: VmLeaseSeen | None

    def name(self, host_id: int) -> str:
        """``host 2 (host-b)``: the host name from its slot, else from its delta lease."""
        slot, lease = self.slots.get(host_id), self.leases.get(host_id)
        found = (slot.hostname if slot else None) or (lease.host_name if lease else None)
        return f"host {host_id} ({found})" if found else f"host {host_id}"

    def alive_evidence(self, host_id: int) -> list[str]:
        """Why ``host_id`` looks alive on storage; empty when nothing suggests it."""
        evidence = []
        lease, slot = self.leases.get(host_id), self.slots.get(host_id)
        if lease is not None and lease.state is LeaseState.RENEWING:
            moved = _moved("timestamp", lease.first_timestamp, lease.last_timestamp)
            evidence.append(
                f"{self.name(host_id)} renewed its delta lease in lockspace {self._ls_name!r} during "
                f"the {self.seconds:.1f} s observed ({moved})"
            )
        if slot is not None and slot.changed:
            what = (
                _moved("host timestamp", slot.first_ts, slot.last_ts)
                if slot.problem is None
                else "content changed although it does not decode"
            )
            evidence.append(
                f"the metadata slot of {self.name(host_id)} changed during the {self.seconds:.1f} s observed ({what})"
            )
        return evidence

    def live_host_ids(self) -> list[int]:
        ids = set(self.leases) | set(self.slots)
        return sorted(i for i in ids if i > 0 and self.alive_evidence(i))

    def notes(self, host_id: int) -> list[str]:
        """What storage says about a host that is not alive (for dry runs and overrides)."""
        lease = self.leases.get(host_id)
        if lease is None:
            return []
        if lease.state is LeaseState.NOT_RENEWING:
            return [
                f"{self.name(host_id)} holds its delta lease but did not renew it during the "
                f"{self.seconds:.1f} s observed (timestamp {lease.last_timestamp}): "
                "crashed or cut off from storage"
            ]
        if lease.state is LeaseState.UNREADABLE:
            return [f"the delta lease of {self.name(host_id)} is unreadable: {lease.problem}"]
        return []

    @property
    def _ls_name(self) -> str:
        return self.geometry.name if self.geometry else LOCKSPACE_NAME


def _moved(what: str, first: int | None, last: int | None) -> str:
    return f"{what} {first} -> {last}" if first != last else "rewritten"


@dataclass
class _Reading:
    lockspace: bytes
    metadata: bytes
    vm_leader: bytes


class _Observer:
    def __init__(
        self, io: AreaIo, lockspace: Path, metadata: Path, lease_path: Path | None, lease_offset: int | None
    ) -> None:
        self.io, self.lockspace, self.metadata = io, lockspace, metadata
        self.lease_path, self.lease_offset = lease_path or lockspace, lease_offset
        self.geometry: LockspaceGeometry | None = None
        self.problem: str | None = None
        self.read_failed = False

    @property
    def lease_at(self) -> int:
        """The VM lease's offset: as configured, else right after the lockspace area."""
        assert self.geometry is not None
        return self.geometry.align if self.lease_offset is None else self.lease_offset

    async def first(self) -> _Reading:
        try:
            probe = await self.io.read(self.lockspace, PROBE_BYTES)
        except AreaError as exc:
            self.problem, self.read_failed = str(exc), True
            return await self.read()
        self.geometry = find_geometry(probe)
        if self.geometry is None:
            state = "is all zero" if all_zero(probe) else "holds no valid delta lease"
            self.problem = f"{self.lockspace} {state} in its first {len(probe)} bytes: no lockspace {LOCKSPACE_NAME!r}"
        return await self.read()

    async def read(self) -> _Reading:
        """One O_DIRECT reading of everything watched (the VM lease's leader comes with the
        lockspace area when it is on the same volume)."""
        if self.geometry is None or self.problem is not None:
            return _Reading(b"", await self._metadata(), b"")
        leader_end = self.lease_at + self.geometry.sector_size
        same_volume = self.lease_path == self.lockspace
        area = await self.io.read(
            self.lockspace, max(self.geometry.align, leader_end) if same_volume else self.geometry.align
        )
        metadata = await self._metadata()
        if same_volume:
            return _Reading(area, metadata, area[self.lease_at : leader_end])
        try:
            leader = (await self.io.read(self.lease_path, leader_end))[self.lease_at :]
        except AreaError:
            leader = b""  # reported as "no VM lease there" by _vm_lease_seen
        return _Reading(area, metadata, leader)

    async def _metadata(self) -> bytes:
        return (await self.io.read(self.metadata, WHITEBOARD_BYTES)).ljust(WHITEBOARD_BYTES, b"\0")


async def observe(
    io: AreaIo,
    lockspace: Path,
    metadata: Path,
    *,
    window: float | None = None,
    interest: Collection[int] | None = None,
    vm_lease_path: Path | None = None,
    vm_lease_offset: int | None = None,
    poll: float | None = None,
    announce: Callable[[float], None] | None = None,
    fallback_io_timeout: int | None = None,
) -> StorageWatch:
    """Watch the lockspace, the metadata and the VM lease for ``window`` seconds (default
    3 x the largest io timeout in the lockspace). ``interest``: host ids whose liveness matters; the
    watch ends early once all of them were seen alive (None: every host id).
    ``vm_lease``: (path, offset) of the VM lease when not at the default place (offset =
    alignment on the lockspace volume). ``announce`` gets the window's length once known.
    ``fallback_io_timeout`` sets the window when no lockspace record tells the io timeout
    (else 10 s); no host can be renewing there then, only slots are watched.
    Raises AreaError when the metadata cannot be read."""
    observer = _Observer(io, lockspace, metadata, vm_lease_path, vm_lease_offset)
    start = time.monotonic()
    first = await observer.first()
    io_timeout = slowest_io_timeout(observer.geometry, first.lockspace) or fallback_io_timeout or DEFAULT_IO_TIMEOUT
    length = WINDOW_FACTOR * io_timeout if window is None else window
    step = min(1.0, io_timeout / 2) if poll is None else poll
    if announce is not None:
        announce(length)
    last = first
    while (elapsed := time.monotonic() - start) < length:
        await asyncio.sleep(min(step, length - elapsed))
        last = await observer.read()
        if interest is not None and interest and _all_moved(observer.geometry, first, last, interest):
            break
    seconds = time.monotonic() - start
    view = decode_whiteboard(last.metadata)
    return StorageWatch(
        seconds=seconds,
        lockspace_path=lockspace,
        geometry=observer.geometry,
        lockspace_problem=observer.problem,
        lockspace_read_failed=observer.read_failed,
        leases=_leases(observer.geometry, first.lockspace, last.lockspace),
        slots=_slots(first.metadata, last.metadata),
        global_block=view.global_block,
        vm_lease=_vm_lease_seen(observer, last.vm_leader),
    )


def slowest_io_timeout(geometry: LockspaceGeometry | None, area: bytes) -> int | None:
    """The largest io timeout on storage: each host writes its own into its delta lease at
    every renewal (every 2 x that), and the lockspace was written with one: a window sized
    from the smallest would take a slow renewer for a dead host."""
    if geometry is None:
        return None
    found = [geometry.io_timeout]
    for host_id in range(1, geometry.max_host_id + 1):
        record = parse_delta_lease(area, geometry, host_id).record
        if record is not None and record.held:
            found.append(record.io_timeout)
    return max(found) or None


def _all_moved(geometry: LockspaceGeometry | None, first: _Reading, last: _Reading, ids: Collection[int]) -> bool:
    def moved(host_id: int) -> bool:
        slot = slice(host_id * SLOT_BYTES, (host_id + 1) * SLOT_BYTES)
        if first.metadata[slot] != last.metadata[slot]:
            return True
        if geometry is None or not 1 <= host_id <= geometry.max_host_id:
            return False
        sector = slice(geometry.sector_of(host_id), geometry.sector_of(host_id) + geometry.sector_size)
        return first.lockspace[sector] != last.lockspace[sector]

    return all(moved(i) for i in ids)


def _leases(geometry: LockspaceGeometry | None, first: bytes, last: bytes) -> dict[int, LeaseSeen]:
    if geometry is None or not last:
        return {}
    seen = {}
    size = geometry.sector_size
    for host_id in range(1, geometry.max_host_id + 1):
        start = geometry.sector_of(host_id)
        now = last[start : start + size]
        if all_zero(now) and first[start : start + size] == now:
            continue
        changed = first[start : start + size] != now
        after = parse_delta_lease(last, geometry, host_id)
        before = parse_delta_lease(first, geometry, host_id) if changed else after
        lease = _lease_seen(host_id, before.record, after.record, after.problem, changed)
        if lease.state is not LeaseState.UNUSED:
            seen[host_id] = lease
    return seen


def _lease_seen(
    host_id: int, before: LeaderRecord | None, after: LeaderRecord | None, problem: str | None, changed: bool
) -> LeaseSeen:
    first_ts = before.timestamp if before is not None else None
    if after is None:
        state = LeaseState.RENEWING if changed else (LeaseState.UNREADABLE if problem else LeaseState.UNUSED)
        return LeaseSeen(host_id, state, None, None, first_ts, None, problem)
    if after.timestamp == 0:
        state = LeaseState.RELEASED if after.owner_id else LeaseState.UNUSED
    else:
        state = LeaseState.RENEWING if changed else LeaseState.NOT_RENEWING
    return LeaseSeen(host_id, state, after.resource_name or None, after.generation, first_ts, after.timestamp)


def _slots(first: bytes, last: bytes) -> dict[int, SlotSeen]:
    before, after = decode_whiteboard(first), decode_whiteboard(last)
    seen = {}
    for index in range(SLOT_COUNT):
        chunk = last[index * SLOT_BYTES : (index + 1) * SLOT_BYTES]
        if all_zero(chunk):
            continue
        old = before.hosts.get(index)
        new = after.hosts.get(index)
        error = after.global_error if index == 0 else after.errors.get(index)
        seen[index] = SlotSeen(
            index=index,
            changed=first[index * SLOT_BYTES : (index + 1) * SLOT_BYTES] != chunk,
            hostname=new.hostname if new else None,
            first_ts=old.host_ts if old else None,
            last_ts=new.host_ts if new else None,
            stopped=new.stopped if new else None,
            problem=str(error) if error is not None else None,
            last_bytes=chunk,
        )
    return seen


def _vm_lease_seen(observer: _Observer, leader: bytes) -> VmLeaseSeen | None:
    geometry = observer.geometry
    if geometry is None:
        return None
    path, offset = observer.lease_path, observer.lease_at
    try:
        record = parse_leader(leader)
    except RecordError as exc:
        return VmLeaseSeen(path, offset, None, None, None, False, exc.problem)
    if record is None or record.kind is not RecordKind.PAXOS or record.space_name != geometry.name:
        what = "nothing" if record is None else f"a {record.kind.value} of {record.space_name!r}"
        return VmLeaseSeen(path, offset, None, None, None, False, f"no VM lease of {geometry.name!r} there ({what})")
    return VmLeaseSeen(
        path,
        offset,
        record.resource_name,
        record.owner_id or None,
        record.generation,
        record.held and record.owner_id != 0,
        None,
    )
