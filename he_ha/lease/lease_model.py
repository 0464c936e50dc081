"""Values the lease API returns, built from what the sanlock binding reports (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from he_ha.lease.lease_errors import LeaseProtocolError


class HostStatus(enum.Enum):
    """A host's state in the lockspace as this host's sanlock daemon judges it.

    UNKNOWN: just joined, not watched long enough. FREE: the host id is not in use (never
    used, or released cleanly). LIVE: renewing. FAIL: renewals stopped, not yet dead.
    DEAD: host-dead time passed; its leases can be taken.
    """

    UNKNOWN = 1
    FREE = 2
    LIVE = 3
    FAIL = 4
    DEAD = 5


class LockspaceState(enum.Enum):
    JOINED = "joined"
    JOINING = "joining"
    LEAVING = "leaving"
    NOT_JOINED = "not-joined"


class JoinOutcome(enum.Enum):
    JOINED = "joined"  # this call acquired the host id
    ALREADY_JOINED = "already-joined"  # the daemon held it already (e.g. the supervisor restarted)


@dataclass(frozen=True)
class HostInfo:
    """One host id's delta lease: ``timestamp`` is the owner's monotonic renewal time (seconds
    on ITS clock, only comparable with itself); ``generation`` grows with each join."""

    host_id: int
    status: HostStatus
    generation: int
    timestamp: int
    io_timeout: int


@dataclass(frozen=True)
class LeaseOwner:
    """A host id recorded as owning a resource lease. Sanlock does not filter these: the owner
    may be failing or dead, or an older generation; compare with ``hosts()``."""

    host_id: int
    generation: int
    timestamp: int


@dataclass(frozen=True)
class HeldResource:
    """A resource lease held by a registered process on this host."""

    lockspace: str
    resource: str
    version: int
    disks: tuple[tuple[Path, int], ...]


@dataclass(frozen=True)
class VolumeInfo:
    """A lease volume as the worker sees it: size in bytes, block device or file, and the
    O_DIRECT sector size (BLKSSZGET for a device, probed with a 512-byte read for a file)."""

    path: Path
    size: int
    block: bool
    sector_size: int


def _field(record: dict[str, Any], key: str, kind: type) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise LeaseProtocolError(f"sanlock record {record!r} lacks a {kind.__name__} {key!r}")
    return value


def host_info(record: dict[str, Any]) -> HostInfo:
    flags = _field(record, "flags", int)
    try:
        status = HostStatus(flags)
    except ValueError:
        raise LeaseProtocolError(f"unknown sanlock host status flag {flags} in {record!r}") from None
    return HostInfo(
        _field(record, "host_id", int),
        status,
        _field(record, "generation", int),
        _field(record, "timestamp", int),
        _field(record, "io_timeout", int),
    )


def lease_owner(record: dict[str, Any]) -> LeaseOwner:
    return LeaseOwner(
        _field(record, "host_id", int), _field(record, "generation", int), _field(record, "timestamp", int)
    )


def held_resource(record: dict[str, Any]) -> HeldResource:
    disks = tuple((Path(path), int(offset)) for path, offset in _field(record, "disks", list))
    return HeldResource(
        _field(record, "lockspace", str), _field(record, "resource", str), _field(record, "version", int), disks
    )


def lockspace_state(inq: bool | None, adding: bool) -> LockspaceState:
    """From ``inq_lockspace`` (None = in transition) and whether the transition is an add."""
    if inq is None:
        return LockspaceState.JOINING if adding else LockspaceState.LEAVING
    return LockspaceState.JOINED if inq else LockspaceState.NOT_JOINED


def volume_info(path: Path, record: dict[str, Any]) -> VolumeInfo:
    return VolumeInfo(
        path, _field(record, "size", int), _field(record, "block", bool), _field(record, "sector_size", int)
    )
