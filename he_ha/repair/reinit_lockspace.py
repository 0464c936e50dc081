"""Rewrite the ``hosted-engine`` lockspace (``hosted-engine --reinitialize-lockspace``).

Rewriting the lockspace resets every host's delta lease: a host still holding its id loses
it under its feet, and a VM lease owned by a host that still runs the VM could be taken by
another host at once (two engines on one disk, defect B26). So, unless forced, it is
refused outside global maintenance (slot 0 of the metadata) and while storage shows anyone
active: a delta lease that renews, a metadata slot that changes, or a VM lease whose owner
still holds its delta lease (renewing or not: a host that stopped renewing without
releasing may be cut off from storage with the VM still running).

The area is rewritten with the geometry and io timeout its own records carry (or, when no
record is readable, the storage's sector size, the alignment for host ids 1..2000 and the
given io timeout) through this host's sanlock daemon, then read back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from he_ha.lease import (
    DEFAULT_IO_TIMEOUT,
    MIB,
    LeaseClient,
    Lockspace,
    LockspaceGeometry,
    alignment_for,
    find_geometry,
    parse_delta_lease,
)
from he_ha.provision import AreaIo, LeaseState, ProvisionError, StorageWatch, observe, verify_lockspace

GLOBAL_ONLY = "Lockfile reset can be performed in global maintenance mode only."
ACTIVE_AGENT = "Lockfile reset cannot be performed with an active agent."


@dataclass
class ReinitPlan:
    observation: StorageWatch
    lockspace: Lockspace  # what will be written
    source: str  # where its geometry comes from
    maintenance: list[str] = field(default_factory=list)  # evidence: not in global maintenance
    active: list[str] = field(default_factory=list)  # evidence: someone is active
    notes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.maintenance or self.active)

    def describe(self) -> str:
        ls = self.lockspace
        return (
            f"lockspace {ls.name!r} on {ls.path} (offset 0, {ls.align} bytes: {ls.sector_size}-byte sectors, "
            f"{ls.align // MIB} MiB alignment, io timeout {ls.io_timeout} s; {self.source})"
        )


async def plan_reinit(
    client: LeaseClient,
    io: AreaIo,
    *,
    lockspace: Path,
    metadata: Path,
    io_timeout: int | None = None,
    force: bool = False,
    vm_lease_path: Path | None = None,
    vm_lease_offset: int | None = None,
    window: float | None = None,
    announce: Callable[[float], None] | None = None,
) -> ReinitPlan:
    """Observe storage and decide; nothing is written. ``io_timeout`` overrides the one
    found on storage (and is needed when no lockspace record is readable). Outside global
    maintenance the refusal is certain, so unless ``force`` storage is not watched.
    ``vm_lease_path``/``vm_lease_offset``: hosted-engine.conf's, when the lease is elsewhere."""
    glance = await observe(io, lockspace, metadata, window=0)
    maintenance = _maintenance_evidence(glance, metadata)
    if maintenance and not force:
        target, source = await _target(client, lockspace, glance.geometry, io_timeout)
        return ReinitPlan(
            glance,
            target,
            source,
            maintenance,
            notes=["hosts were not watched: the cluster is not in global maintenance"],
        )
    seen = await observe(
        io,
        lockspace,
        metadata,
        window=window,
        announce=announce,
        fallback_io_timeout=io_timeout,
        vm_lease_path=vm_lease_path,
        vm_lease_offset=vm_lease_offset,
    )
    target, source = await _target(client, lockspace, seen.geometry, io_timeout)
    plan = ReinitPlan(seen, target, source)
    plan.maintenance = _maintenance_evidence(seen, metadata)
    for host_id in seen.live_host_ids():
        plan.active += seen.alive_evidence(host_id)
    plan.active += _vm_lease_evidence(seen)
    if seen.lockspace_problem is not None:
        plan.notes.append(seen.lockspace_problem)
    for host_id in sorted(seen.leases):
        plan.notes += seen.notes(host_id)
    return plan


async def _target(
    client: LeaseClient, path: Path, geometry: LockspaceGeometry | None, io_timeout: int | None
) -> tuple[Lockspace, str]:
    if geometry is not None:
        timeout = io_timeout or geometry.io_timeout or DEFAULT_IO_TIMEOUT
        source = "geometry as found on storage" + (f", io timeout {io_timeout} s as asked" if io_timeout else "")
        return Lockspace(path, geometry.name, 0, geometry.sector_size, geometry.align, timeout), source
    info = await client.volume_info(path)
    timeout = io_timeout or DEFAULT_IO_TIMEOUT
    source = (
        f"no readable lockspace record: {info.sector_size}-byte sectors as the storage reports, "
        f"io timeout {timeout} s" + ("" if io_timeout else " (the default; --io-timeout=S to change)")
    )
    return Lockspace(
        path, sector_size=info.sector_size, align=alignment_for(info.sector_size), io_timeout=timeout
    ), source


def _maintenance_evidence(seen: StorageWatch, metadata: Path) -> list[str]:
    slot = seen.slots.get(0)
    if seen.global_block is not None and seen.global_block.maintenance:
        return []
    if slot is None:
        return [f"the global block (slot 0) of {metadata} is empty: global maintenance is off"]
    if slot.problem is not None:
        return [
            f"the global block (slot 0) of {metadata} is unreadable ({slot.problem}): global maintenance is unknown"
        ]
    return [f"the global block (slot 0) of {metadata} says maintenance=0"]


def _vm_lease_evidence(seen: StorageWatch) -> list[str]:
    lease = seen.vm_lease
    if lease is None or not lease.held or lease.owner_id is None:
        return []
    owner = seen.leases.get(lease.owner_id)
    if owner is None or owner.generation != lease.generation:
        return []  # the owner's id was released or re-joined since: sanlock treats the lease as free
    name = f"the VM lease {lease.resource} is held by {seen.name(lease.owner_id)}"
    if owner.state is LeaseState.RENEWING:
        return [f"{name}, which is alive"]
    if owner.state is LeaseState.NOT_RENEWING:
        return [
            f"{name}, whose delta lease stopped renewing but was never released: it may still run the VM "
            "(crashed, or cut off from storage)"
        ]
    return []


async def apply_reinit(client: LeaseClient, io: AreaIo, plan: ReinitPlan) -> None:
    """Rewrite the area through this host's sanlock daemon, then read it back: the
    lockspace's name and geometry, and every host's delta lease unused."""
    target = plan.lockspace
    await client.init_lockspace(target, overwrite=True)
    await verify_lockspace(io, target)
    data = await io.read(target.path, target.align)
    geometry = find_geometry(data)
    assert geometry is not None  # verify_lockspace checked it
    for host_id in range(1, geometry.max_host_id + 1):
        found = parse_delta_lease(data, geometry, host_id)
        if found.record is None or found.record.owner_id != 0 or found.record.timestamp != 0:
            raise ProvisionError(
                f"read back of {target.path}: the delta lease of host {host_id} is not blank "
                f"after the rewrite ({found.problem or found.record})"
            )
