"""What the lockspace and metadata areas hold right now, read straight from storage.

Storage initialisation decides from this whether it lays out a first host, verifies storage
for an additional host, or must refuse: an area is missing, all zero, in use by he-ha (or
the original agents, same format), or holds something else. Every finding carries the
evidence the command prints. Reads are O_DIRECT through ``AreaIo`` (deadline per call).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from he_ha.lease import LOCKSPACE_NAME, MIB, LockspaceGeometry, RecordError, RecordKind, find_geometry, parse_leader
from he_ha.provision.area_io import AreaIo, AreaStat, all_zero
from he_ha.whiteboard import WHITEBOARD_BYTES, GlobalBlock, decode_whiteboard

PROBE_BYTES = 1 * MIB  # holds host 1's delta lease at every alignment
LARGEST_LAYOUT = 24 * MIB  # lockspace + VM lease + configuration lock with 4096-byte sectors (8 MiB alignment)


class AreaState(enum.Enum):
    MISSING = "missing"
    ZERO = "all zero"
    IN_USE = "in use"  # holds what we would write (a lockspace, a VM lease, a whiteboard)
    FOREIGN = "unknown content"


@dataclass(frozen=True)
class LockspaceSurvey:
    stat: AreaStat
    state: AreaState
    geometry: LockspaceGeometry | None
    evidence: str
    lease_state: AreaState  # the VM lease area right after the lockspace (MISSING: beyond the end)
    lease_evidence: str
    vm_uuid: str | None  # the VM lease's resource name, when it is there


@dataclass(frozen=True)
class MetadataSurvey:
    stat: AreaStat
    state: AreaState
    evidence: str
    hostnames: dict[int, str] = field(default_factory=dict)  # readable host slots
    unreadable: tuple[int, ...] = ()  # slots that do not decode (0 = global block)
    global_block: GlobalBlock | None = None


async def survey_lockspace(io: AreaIo, path: Path) -> LockspaceSurvey:
    stat = await io.stat(path)
    if not stat.exists:
        return LockspaceSurvey(
            stat, AreaState.MISSING, None, f"{path} does not exist", AreaState.MISSING, "no volume", None
        )
    probe = await io.read(path, min(stat.size, PROBE_BYTES))
    geometry = find_geometry(probe)
    if geometry is None:
        data = await io.read(path, min(stat.size, LARGEST_LAYOUT))
        if all_zero(data):
            return LockspaceSurvey(
                stat,
                AreaState.ZERO,
                None,
                f"{path} is all zero ({len(data)} bytes read)",
                AreaState.ZERO,
                "all zero",
                None,
            )
        return LockspaceSurvey(
            stat,
            AreaState.FOREIGN,
            None,
            f"{path} {_foreign(data)}",
            AreaState.FOREIGN,
            "not checked: the lockspace area is not ours",
            None,
        )
    evidence = (
        f"{path} holds lockspace {geometry.name!r} ({geometry.sector_size}-byte sectors, "
        f"{geometry.align // MIB} MiB alignment, io timeout {geometry.io_timeout} s)"
    )
    lease_state, lease_evidence, vm_uuid = await survey_lease_area(io, path, stat, geometry, geometry.align)
    return LockspaceSurvey(stat, AreaState.IN_USE, geometry, evidence, lease_state, lease_evidence, vm_uuid)


async def survey_lease_area(
    io: AreaIo, path: Path, stat: AreaStat, geometry: LockspaceGeometry, start: int, what: str = "VM lease"
) -> tuple[AreaState, str, str | None]:
    """The resource lease area [start, start + alignment) of the lockspace's volume: its
    state, the evidence, and the resource name when a lease of this lockspace is there."""
    end = start + geometry.align
    if stat.size < end:
        return AreaState.MISSING, f"{path} ends at {stat.size} bytes; the {what} needs [{start}, {end})", None
    area = (await io.read(path, end))[start:]
    try:
        record = parse_leader(area)
    except RecordError as exc:
        return AreaState.FOREIGN, f"at offset {start}: {exc.problem}", None
    if record is None:
        if all_zero(area):
            return AreaState.ZERO, f"no {what} at offset {start} (all zero)", None
        return AreaState.FOREIGN, f"at offset {start}: {_foreign(area)}", None
    if record.kind is not RecordKind.PAXOS or record.space_name != geometry.name:
        return AreaState.FOREIGN, f"at offset {start}: a {record.kind.value} of lockspace {record.space_name!r}", None
    return AreaState.IN_USE, f"{what} {record.resource_name!r} at offset {start}", record.resource_name


def _foreign(data: bytes) -> str:
    """Evidence for bytes that are not ours: what sanlock record, or where the first byte is."""
    try:
        record = parse_leader(data)
    except RecordError:
        record = None
    if record is not None and record.space_name != LOCKSPACE_NAME:
        return f"holds a sanlock {record.kind.value} of lockspace {record.space_name!r}, not {LOCKSPACE_NAME!r}"
    first = len(data) - len(data.lstrip(b"\0"))
    return f"holds non-zero bytes (first at offset {first}) that are not a sanlock lockspace {LOCKSPACE_NAME!r}"


async def survey_metadata(io: AreaIo, path: Path) -> MetadataSurvey:
    stat = await io.stat(path)
    if not stat.exists:
        return MetadataSurvey(stat, AreaState.MISSING, f"{path} does not exist")
    data = await io.read(path, WHITEBOARD_BYTES)
    if all_zero(data):
        return MetadataSurvey(stat, AreaState.ZERO, f"{path} is all zero ({len(data)} bytes read)")
    view = decode_whiteboard(data)
    unreadable = tuple(sorted(view.errors) + ([0] if view.global_error else []))
    hostnames = {host_id: slot.hostname for host_id, slot in view.hosts.items()}
    if not hostnames and view.global_block is None:
        example = view.global_error or next(iter(view.errors.values()), None)
        detail = f"; e.g. {example}" if example else ""
        return MetadataSurvey(
            stat,
            AreaState.FOREIGN,
            f"{path} holds non-zero bytes but no readable metadata slot ({len(unreadable)} unreadable{detail})",
            unreadable=unreadable,
        )
    parts = [
        f"{len(hostnames)} host slot(s)"
        + (f" ({', '.join(f'{i}: {n}' for i, n in sorted(hostnames.items()))})" if hostnames else "")
    ]
    if view.global_block is not None:
        parts.append(f"global maintenance {'on' if view.global_block.maintenance else 'off'}")
    if unreadable:
        parts.append(f"unreadable slot(s) {', '.join(map(str, unreadable))}")
    return MetadataSurvey(
        stat, AreaState.IN_USE, f"{path} holds metadata: {'; '.join(parts)}", hostnames, unreadable, view.global_block
    )
