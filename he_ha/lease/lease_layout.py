"""Where the sanlock lockspace and the VM lease live on the lockspace volume (pure, no I/O).

Layout of the ``hosted-engine.lockspace`` volume (see docs/leases.md):

    [0, A)      lockspace ``hosted-engine``: one delta lease per host id (host id n in sector n-1)
    [A, 2A)     the VM resource lease (paxos): leader, request and one dblock per host id
    [2A, 3A)    the configuration-volume lock ``he-ha-conf`` (paxos), taken by a host while it
                rewrites the configuration archive (he_ha/ovirt/conf_volume.py)

A is the sanlock alignment. Sanlock only accepts the sector/alignment pairs 512/1M, 4K/1M,
4K/2M, 4K/4M and 4K/8M, which hold host ids up to 2000, 250, 500, 1000 and 2000 (the limits
``sanlock help`` prints; ``add_lockspace`` of a higher id fails with -231).
The original used the default 1 MiB everywhere, so 4K-sector storage stopped at host id 250
while host ids go up to 2000 (defect B27). We pick the smallest alignment that fits
``MAX_HOST_ID``: 1 MiB for 512-byte sectors, 8 MiB for 4096-byte sectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from he_ha.config import MAX_HOST_ID
from he_ha.lease.lease_errors import LeaseConfigError

LOCKSPACE_NAME = "hosted-engine"
CONF_LOCK_RESOURCE = "he-ha-conf"  # the configuration-volume lock's resource name
SECTOR_SIZES = (512, 4096)
MIB = 1024 * 1024
MAX_NAME_LENGTH = 48  # sanlock's limit for lockspace and resource names
DEFAULT_IO_TIMEOUT = 10  # sanlock's own default (daemon option -o)
WATCHDOG_FIRE_TIMEOUT = 60  # fixed in sanlock 3.8.5

# (sector size, alignment) -> highest host id; sanlock accepts no other pairs.
GEOMETRIES = {
    (512, 1 * MIB): 2000,
    (4096, 1 * MIB): 250,
    (4096, 2 * MIB): 500,
    (4096, 4 * MIB): 1000,
    (4096, 8 * MIB): 2000,
}


def max_host_id(sector_size: int, align: int) -> int:
    """The highest host id an area with this geometry can hold (sanlock's rule)."""
    _check_geometry(sector_size, align)
    return GEOMETRIES[(sector_size, align)]


def alignment_for(sector_size: int, hosts: int = MAX_HOST_ID) -> int:
    """The smallest valid alignment whose area holds host ids 1..``hosts``."""
    if sector_size not in SECTOR_SIZES:
        raise LeaseConfigError(f"sector size {sector_size} is not one of {SECTOR_SIZES}")
    fitting = [align for (sector, align), top in GEOMETRIES.items() if sector == sector_size and top >= hosts]
    if hosts < 1 or not fitting:
        raise LeaseConfigError(f"no sanlock alignment holds {hosts} hosts with {sector_size}-byte sectors")
    return min(fitting)


def host_dead_seconds(io_timeout: int) -> int:
    """How long after a host's last renewal sanlock declares it dead and frees its leases."""
    return 8 * io_timeout + WATCHDOG_FIRE_TIMEOUT


def wait_deadline(io_timeout: int) -> float:
    """A generous bound for the calls that may have to wait out another host's death inside
    sanlock: ``add_lockspace`` of a host id last renewed under another host name, and
    ``acquire`` of a lease whose owner stopped renewing (it blocks until that host is dead,
    then succeeds). Normally both take a few io timeouts or less."""
    return float(host_dead_seconds(io_timeout) + 6 * io_timeout + 10)


def _check_geometry(sector_size: int, align: int) -> None:
    if (sector_size, align) not in GEOMETRIES:
        raise LeaseConfigError(
            f"sector size {sector_size} with alignment {align} is not a sanlock geometry "
            "(valid: 512/1M, 4096/1M, 4096/2M, 4096/4M, 4096/8M)"
        )


def _check_name(kind: str, name: str) -> None:
    if not name or len(name.encode()) > MAX_NAME_LENGTH or "\0" in name or ":" in name:
        raise LeaseConfigError(f"{kind} name {name!r} must be 1..{MAX_NAME_LENGTH} bytes without ':' or NUL")


def _check_area(kind: str, name: str, offset: int, sector_size: int, align: int, io_timeout: int) -> None:
    _check_name(kind, name)
    _check_geometry(sector_size, align)
    if offset < 0 or offset % align:
        raise LeaseConfigError(f"offset {offset} is not a non-negative multiple of the alignment {align}")
    if not 1 <= io_timeout <= 300:
        raise LeaseConfigError(f"io timeout {io_timeout} s is outside 1..300")


@dataclass(frozen=True)
class Lockspace:
    """A sanlock lockspace: where its delta leases live and with what geometry."""

    path: Path
    name: str = LOCKSPACE_NAME
    offset: int = 0
    sector_size: int = 512
    align: int = MIB
    io_timeout: int = DEFAULT_IO_TIMEOUT

    def __post_init__(self) -> None:
        _check_area("lockspace", self.name, self.offset, self.sector_size, self.align, self.io_timeout)

    @property
    def max_host_id(self) -> int:
        return max_host_id(self.sector_size, self.align)

    def check_host_id(self, host_id: int) -> None:
        """Reject a host id this lockspace's geometry cannot hold, naming both."""
        if not 1 <= host_id <= self.max_host_id:
            raise LeaseConfigError(
                f"host id {host_id} is outside 1..{self.max_host_id} for lockspace {self.name!r} "
                f"({self.sector_size}-byte sectors, {self.align // MIB} MiB alignment)"
            )

    def describe(self) -> str:
        return f"lockspace {self.name!r} at {self.path}:{self.offset}"


@dataclass(frozen=True)
class VmLease:
    """A sanlock resource lease (the VM lease) inside a lockspace."""

    path: Path
    resource: str
    offset: int
    lockspace: str = LOCKSPACE_NAME
    sector_size: int = 512
    align: int = MIB
    io_timeout: int = DEFAULT_IO_TIMEOUT  # its lockspace's: how long acquire may wait

    def __post_init__(self) -> None:
        _check_name("resource", self.resource)
        _check_area("lockspace", self.lockspace, self.offset, self.sector_size, self.align, self.io_timeout)

    def describe(self) -> str:
        return f"lease {self.lockspace}:{self.resource} at {self.path}:{self.offset}"


@dataclass(frozen=True)
class LeaseLayout:
    """The lockspace and the VM lease of one volume, and the volume size they need."""

    lockspace: Lockspace
    vm_lease: VmLease

    @classmethod
    def on_volume(
        cls,
        path: Path,
        *,
        resource: str,
        sector_size: int,
        io_timeout: int = DEFAULT_IO_TIMEOUT,
        lockspace_name: str = LOCKSPACE_NAME,
        lease_path: Path | None = None,
        lease_offset: int | None = None,
    ) -> LeaseLayout:
        """The default layout: lockspace at offset 0; the VM lease right after the lockspace
        area (offset = alignment) on the same volume unless ``lease_path``/``lease_offset``
        say otherwise."""
        align = alignment_for(sector_size)
        lockspace = Lockspace(path, lockspace_name, 0, sector_size, align, io_timeout)
        vm_lease = VmLease(
            lease_path or path,
            resource,
            align if lease_offset is None else lease_offset,
            lockspace_name,
            sector_size,
            align,
            io_timeout,
        )
        layout = cls(lockspace, vm_lease)
        if vm_lease.path == path and vm_lease.offset < align:
            raise LeaseConfigError(f"VM lease offset {vm_lease.offset} overlaps the lockspace area [0, {align})")
        if vm_lease.path == path and vm_lease.offset == layout.conf_lock.offset:
            raise LeaseConfigError(f"VM lease offset {vm_lease.offset} is the configuration-volume lock's area")
        return layout

    @property
    def conf_lock(self) -> VmLease:
        return conf_lock_for(self.lockspace)

    def required_size(self, path: Path) -> int:
        """Bytes ``path`` must have to hold every area of this layout placed on it."""
        areas = (self.lockspace, self.vm_lease, self.conf_lock)
        ends = [area.offset + area.align for area in areas if area.path == path]
        return max(ends, default=0)


def conf_lock_for(lockspace: Lockspace) -> VmLease:
    """The configuration-volume lock of ``lockspace``: resource ``he-ha-conf`` on the
    lockspace's volume at 2 x alignment, right after the VM lease's default place."""
    return VmLease(
        lockspace.path,
        CONF_LOCK_RESOURCE,
        lockspace.offset + 2 * lockspace.align,
        lockspace.name,
        lockspace.sector_size,
        lockspace.align,
        lockspace.io_timeout,
    )
