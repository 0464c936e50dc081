"""The storage domain's own lockspace ``<SD>``, which holds the engine's disk lease.

oVirt puts the hosted-engine disk's volume lease (resource ``<VOL>``) in the lockspace named
after the storage domain, whose delta leases live in the domain's ``ids`` volume (spec
ovirt-host-integration.md §1.4, §1.7, §1.9, §4.5):

- file domain: lease ``<domain>/<SD>/images/<IMG>/<VOL>.lease`` (or a lease in
  ``<SD>/dom_md/leases``/``xleases``) → lockspace ``<SD>/dom_md/ids``;
- block domain: lease ``/dev/<SD>/leases`` (or ``xleases``) → lockspace ``/dev/<SD>/ids``.

The geometry is VDSM's for a version-4/5 domain on 512-byte sectors: offset 0, 1 MiB
alignment. The I/O timeout is the one he-ha joins with when no one has joined yet (VDSM uses
10 s; a lockspace already joined keeps the timeout it was joined with).
"""

from __future__ import annotations

from pathlib import Path

from he_ha.lease.lease_errors import LeaseConfigError
from he_ha.lease.lease_layout import MIB, Lockspace, VmLease

DOMAIN_SECTOR_SIZE = 512
DOMAIN_ALIGN = MIB
DOMAIN_LEASE_VOLUMES = ("leases", "xleases")  # the domain's own resource volumes, beside ids


def domain_ids_path(lockspace: str, lease_path: Path) -> Path:
    """The ``ids`` volume of storage domain ``lockspace``, found from the path of one of its
    leases. LeaseConfigError when the path is not in that domain's VDSM layout."""
    parts = lease_path.parts
    sd = lockspace.casefold()
    # <SD>/images/<IMG>/<VOL>.lease (file domain volume lease)
    if lease_path.suffix == ".lease" and len(parts) >= 4 and parts[-3] == "images" and parts[-4].casefold() == sd:
        return lease_path.parents[2] / "dom_md" / "ids"
    if lease_path.name in DOMAIN_LEASE_VOLUMES and len(parts) >= 2:
        # <SD>/dom_md/leases (file domain)
        if parts[-2] == "dom_md" and len(parts) >= 3 and parts[-3].casefold() == sd:
            return lease_path.parent / "ids"
        # /dev/<SD>/leases (block domain: VG <SD>)
        if parts[-2].casefold() == sd:
            return lease_path.parent / "ids"
    raise LeaseConfigError(
        f"lease path {lease_path} is not a lease volume of storage domain {lockspace} "
        "(<SD>/images/<IMG>/<VOL>.lease, <SD>/dom_md/leases or /dev/<SD>/leases): "
        "its lockspace's ids volume cannot be found"
    )


def domain_lockspace(lockspace: str, lease_path: Path, *, io_timeout: int) -> Lockspace:
    """Lockspace ``<SD>`` on the domain's ``ids`` volume, for the lease at ``lease_path``."""
    return Lockspace(domain_ids_path(lockspace, lease_path), lockspace, 0, DOMAIN_SECTOR_SIZE, DOMAIN_ALIGN, io_timeout)


def domain_resource(lockspace: str, key: str, path: Path, offset: int, *, io_timeout: int) -> VmLease:
    """The engine's disk lease as a ``VmLease`` (for owner queries and for writing it in tests)."""
    return VmLease(path, key, offset, lockspace, DOMAIN_SECTOR_SIZE, DOMAIN_ALIGN, io_timeout)
