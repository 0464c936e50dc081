"""Storage initialisation, the HA part of deployment: plan, then apply.

``plan_init`` looks at the areas (he_ha.provision.area_survey) and decides:

- **first host**: the lockspace volume is missing or all zero. Create the files at the right
  size if needed, write the lockspace ``hosted-engine``, the VM lease (named after the VM
  uuid) and the configuration-volume lock ``he-ha-conf`` through this host's sanlock daemon,
  make the metadata area all zero, read it all back, write hosted-engine.conf.
- **additional host**: the lockspace is there. Verify it (name, io timeout, VM lease, the
  metadata size), take the VM uuid from the lease, refuse a host id another live host uses
  (its delta lease renews or its metadata slot changes, and this host's daemon does not hold
  it), write hosted-engine.conf only. An empty VM lease or configuration-lock area (a
  cluster laid out before it existed) is added, growing a short file.

Areas holding something else, or a different VM lease / io timeout than asked for, are
refused (``refusals``) unless ``force``; even forced, nothing in use is rewritten while any
host is alive (``blockers``, never overridden). A re-run with the same arguments plans no
step. ``apply_init`` runs the planned steps in order.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from he_ha.config import MAX_HOST_ID, ConfigError
from he_ha.lease import (
    CONF_LOCK_RESOURCE,
    DEFAULT_IO_TIMEOUT,
    MIB,
    DaemonUnavailable,
    LeaseClient,
    LeaseLayout,
    Lockspace,
    LockspaceGeometry,
    LockspaceState,
    VmLease,
    daemon_answers,
    socket_path,
)
from he_ha.provision.area_io import AreaIo, AreaStat
from he_ha.provision.area_survey import (
    AreaState,
    LockspaceSurvey,
    MetadataSurvey,
    survey_lease_area,
    survey_lockspace,
    survey_metadata,
)
from he_ha.provision.hostconf import ConfChange, HostConfValues, plan_host_conf
from he_ha.provision.liveness import observe
from he_ha.whiteboard import WHITEBOARD_BYTES

log = structlog.get_logger(__name__)


class ProvisionError(Exception):
    """Initialisation cannot go on; the message names the area and the evidence."""


class ProvisionRefused(ProvisionError):
    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class Role(enum.Enum):
    FIRST = "first host"  # lays out the lockspace
    ADDITIONAL = "additional host"  # uses the lockspace that is there


@dataclass(frozen=True)
class StorageAreas:
    lockspace: Path
    metadata: Path


@dataclass(frozen=True)
class HostSettings:
    """hosted-engine.conf values beyond the storage ones (None: not written)."""

    fqdn: str | None = None
    vm_conf: Path | None = None
    gateway: str | None = None
    network_test: str | None = None
    bridge: str | None = None
    tcp_address: str | None = None
    tcp_port: int | None = None


@dataclass(frozen=True)
class InitRequest:
    areas: StorageAreas
    host_id: int | None  # None: storage only (the library call), no host id checks, no conf
    conf_out: Path | None = None
    vm_uuid: str | None = None
    io_timeout: int | None = None  # None: 10 s for a new lockspace, what storage says otherwise
    settings: HostSettings = HostSettings()
    force: bool = False


@dataclass(frozen=True)
class Step:
    text: str  # "write lockspace 'hosted-engine' on /x (...)"
    run: Callable[[], Awaitable[None]]


@dataclass
class InitPlan:
    role: Role
    vm_uuid: str | None
    layout: LeaseLayout | None  # None until a missing lockspace file is created
    findings: list[str] = field(default_factory=list)  # what storage holds (printed)
    refusals: list[str] = field(default_factory=list)  # overridden by force
    blockers: list[str] = field(default_factory=list)  # never overridden
    notes: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def normalise_vm_uuid(text: str) -> str:
    """The VM uuid as the lease resource and hosted-engine.conf carry it (lower case)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(f"VM uuid {text!r} is not a UUID") from None


async def plan_init(
    client: LeaseClient,
    io: AreaIo,
    request: InitRequest,
    *,
    window: float | None = None,
    announce: Callable[[float], None] | None = None,
) -> InitPlan:
    """Look at storage and plan the steps; nothing is changed. ``window``: the liveness
    observation length (default 3 x the largest io timeout in the lockspace), told to ``announce``."""
    if request.host_id is not None and not 1 <= request.host_id <= MAX_HOST_ID:
        raise ValueError(f"host id {request.host_id} is outside 1..{MAX_HOST_ID}")
    lockspace = await survey_lockspace(io, request.areas.lockspace)
    metadata = await survey_metadata(io, request.areas.metadata)
    planner = _Planner(client, io, request, lockspace, metadata)
    await planner.plan_storage()
    if (planner.write_lockspace or planner.write_lease or planner.write_conf_lock) and not await asyncio.to_thread(
        daemon_answers, client.run_dir
    ):
        planner.plan.blockers.append(
            f"this host's sanlock daemon does not answer on {socket_path(client.run_dir)}: "
            "the lockspace and the VM lease are written through it (start sanlock)"
        )
    await planner.check_liveness(window, announce)
    if request.host_id is not None and request.conf_out is not None:
        await planner.plan_conf()
    return planner.plan


async def apply_init(plan: InitPlan, report: Callable[[str], None] = lambda text: None) -> None:
    """Run the planned steps in order; ``report`` gets each step's text once it is done."""
    for step in plan.steps:
        await step.run()
        log.info("storage initialisation step done", step=step.text)
        report(step.text)


async def initialise_first_host(
    client: LeaseClient,
    areas: StorageAreas,
    *,
    vm_uuid: str,
    io_timeout: int = DEFAULT_IO_TIMEOUT,
    io: AreaIo | None = None,
) -> LeaseLayout:
    """Lay out fresh storage for a new cluster (the harness's and the demo's deployment):
    create missing files at the right size, write the lockspace and the VM lease through
    ``client``'s daemon, zero the metadata, read it all back. Areas that hold anything
    already raise ProvisionRefused naming them. Returns the layout written."""
    with AreaIo() as area_io:
        request = InitRequest(areas, None, vm_uuid=normalise_vm_uuid(vm_uuid), io_timeout=io_timeout)
        plan = await plan_init(client, io or area_io, request)
        if plan.role is not Role.FIRST or plan.refusals or plan.blockers:
            raise ProvisionRefused(plan.blockers + plan.refusals or [f"storage is set up already: {plan.findings}"])
        await apply_init(plan)
        assert plan.layout is not None
        return plan.layout


class _Planner:
    def __init__(
        self,
        client: LeaseClient,
        io: AreaIo,
        request: InitRequest,
        lockspace: LockspaceSurvey,
        metadata: MetadataSurvey,
    ) -> None:
        self.client, self.io, self.request = client, io, request
        self.ls, self.md = lockspace, metadata
        self.plan = InitPlan(Role.ADDITIONAL, request.vm_uuid, None)
        self.plan.findings += [lockspace.evidence]
        if lockspace.state is AreaState.IN_USE:
            self.plan.findings.append(f"{request.areas.lockspace}: {lockspace.lease_evidence}")
        self.plan.findings.append(metadata.evidence)
        self.overwrites_in_use = False  # a forced rewrite of something a host may be using
        self.write_lockspace = self.write_lease = self.write_conf_lock = False
        self.conf_lock_state = lockspace.lease_state  # what the lock area holds (surveyed when the lockspace is in use)

    @property
    def areas(self) -> StorageAreas:
        return self.request.areas

    def refuse(self, reason: str) -> None:
        """Overridable by --force: then the override is noted and the rewrite needs everyone gone."""
        if self.request.force:
            self.plan.notes.append(f"--force overrides: {reason}")
            self.overwrites_in_use = True
        else:
            self.plan.refusals.append(f"{reason}; --force overwrites it")

    # --- the lockspace volume ----------------------------------------------------------

    async def plan_storage(self) -> None:
        ls, request = self.ls, self.request
        if ls.state is AreaState.FOREIGN:
            self.refuse(f"lockspace area {ls.evidence}")
        if ls.state is AreaState.IN_USE:
            assert ls.geometry is not None
            self._check_in_use(ls.geometry)
            await self._check_conf_lock(ls.geometry)
        else:
            self.write_lockspace = self.write_lease = self.write_conf_lock = True
        if self.write_lockspace:
            self.plan.role = Role.FIRST
        self.plan.vm_uuid = request.vm_uuid or ls.vm_uuid
        if self.plan.vm_uuid is None:
            self.plan.blockers.append(
                f"no VM lease on {self.areas.lockspace} to take the VM uuid from: the first host needs --vm-uuid=UUID"
            )
            return
        if ls.state is AreaState.MISSING:
            await self._plan_new_lockspace_file()
        else:
            await self._plan_lockspace_writes()
        await self._plan_metadata()
        if self.plan.steps:
            self.plan.steps.append(Step(f"read back {self.areas.lockspace} and {self.areas.metadata}", self._verify))

    def _check_in_use(self, geometry: LockspaceGeometry) -> None:
        ls, request = self.ls, self.request
        if request.io_timeout is not None and request.io_timeout != geometry.io_timeout:
            self.refuse(
                f"lockspace {geometry.name!r} on {self.areas.lockspace} has io timeout "
                f"{geometry.io_timeout} s, not the {request.io_timeout} s asked for"
            )
            self.write_lockspace = self.write_lease = request.force
        if ls.lease_state is AreaState.IN_USE and request.vm_uuid is not None and ls.vm_uuid != request.vm_uuid:
            self.refuse(f"the VM lease on {self.areas.lockspace} is for VM {ls.vm_uuid}, not {request.vm_uuid}")
            self.write_lease = self.write_lease or request.force
        elif ls.lease_state is AreaState.FOREIGN:
            self.refuse(f"VM lease area of {self.areas.lockspace}: {ls.lease_evidence}")
            self.write_lease = self.write_lease or request.force
        elif ls.lease_state in (AreaState.ZERO, AreaState.MISSING):
            self.write_lease = True  # an empty lease area disturbs nobody: add the lease
        if request.host_id is not None and request.host_id > geometry.max_host_id:
            self.plan.blockers.append(
                f"host id {request.host_id} does not fit lockspace {geometry.name!r} on {self.areas.lockspace}: "
                f"its {geometry.sector_size}-byte sectors with {geometry.align // MIB} MiB alignment hold host ids "
                f"1..{geometry.max_host_id}"
            )

    async def _check_conf_lock(self, geometry: LockspaceGeometry) -> None:
        """The configuration-volume lock at 2 x alignment: added when the area is empty."""
        path = self.areas.lockspace
        state, evidence, resource = await survey_lease_area(
            self.io, path, self.ls.stat, geometry, 2 * geometry.align, "configuration-volume lock"
        )
        self.conf_lock_state = state
        if state is AreaState.IN_USE and resource == CONF_LOCK_RESOURCE:
            self.write_conf_lock = self.write_lockspace  # rewritten with a forced new lockspace
            return
        if state in (AreaState.ZERO, AreaState.MISSING):
            self.write_conf_lock = True  # an empty area disturbs nobody: add the lock
            return
        self.refuse(f"configuration-volume lock area of {path}: {evidence}")
        self.write_conf_lock = self.request.force

    def _io_timeout(self) -> int:
        if self.request.io_timeout is not None:
            return self.request.io_timeout
        return self.ls.geometry.io_timeout if self.ls.geometry else DEFAULT_IO_TIMEOUT

    async def _plan_new_lockspace_file(self) -> None:
        path, io_timeout = self.areas.lockspace, self._io_timeout()
        assert self.plan.vm_uuid is not None
        vm_uuid = self.plan.vm_uuid
        if not await self.io.is_dir(path.parent):
            self.plan.blockers.append(f"cannot create {path}: directory {path.parent} does not exist")
            return

        async def create() -> None:
            await self.io.create_file(path, 0)
            layout = await self.client.detect_layout(path, resource=vm_uuid, io_timeout=io_timeout)
            await self.io.extend_file(path, layout.required_size(path))
            self.plan.layout = layout

        self.plan.steps.append(
            Step(
                f"create {path}, sized for its storage's sector size "
                "(3 MiB for 512-byte sectors, 24 MiB for 4096-byte sectors)",
                create,
            )
        )
        self._add_lease_writes()

    async def _plan_lockspace_writes(self) -> None:
        path, ls = self.areas.lockspace, self.ls
        assert self.plan.vm_uuid is not None
        if ls.geometry is not None and not self.write_lockspace:
            geometry = ls.geometry  # keep what is there (an old 4K/1M area stays as it is)
            lockspace = Lockspace(path, geometry.name, 0, geometry.sector_size, geometry.align, geometry.io_timeout)
            lease = VmLease(
                path,
                self.plan.vm_uuid,
                geometry.align,
                geometry.name,
                geometry.sector_size,
                geometry.align,
                geometry.io_timeout,
            )
            self.plan.layout = LeaseLayout(lockspace, lease)
        else:
            self.plan.layout = await self.client.detect_layout(
                path, resource=self.plan.vm_uuid, io_timeout=self._io_timeout()
            )
        writes = self.write_lockspace or self.write_lease or self.write_conf_lock
        if writes and not self._grow(
            ls.stat,
            self.plan.layout.required_size(path),
            "the lockspace, the VM lease and the configuration-volume lock",
        ):
            return
        self._add_lease_writes()

    def _grow(self, stat: AreaStat, needed: int, what: str) -> bool:
        """Plan extending a short file with zeros; a short device blocks (False)."""
        if stat.size >= needed:
            return True
        if stat.block:
            self.plan.blockers.append(f"{stat.path} is a {stat.size}-byte device; {what} need {needed} bytes")
            return False
        self._step(
            f"extend {stat.path} from {stat.size} to {needed} bytes (zeros)", self.io.extend_file, stat.path, needed
        )
        return True

    def _add_lease_writes(self) -> None:
        plan = self.plan
        empty = (AreaState.MISSING, AreaState.ZERO)  # anything else is rewritten only when forced
        overwrite_lockspace, overwrite_lease = self.ls.state not in empty, self.ls.lease_state not in empty
        overwrite_conf_lock = self.conf_lock_state not in empty

        def layout() -> LeaseLayout:
            assert plan.layout is not None, "the lockspace file is created before the leases are written"
            return plan.layout

        if self.write_lockspace:

            async def write_lockspace() -> None:
                await self.client.init_lockspace(layout().lockspace, overwrite=overwrite_lockspace)

            plan.steps.append(
                Step(
                    f"write lockspace 'hosted-engine' on {self.areas.lockspace} "
                    f"(io timeout {self._io_timeout()} s){self._geometry_text()}",
                    write_lockspace,
                )
            )
        if self.write_lease:

            async def write_lease() -> None:
                await self.client.init_vm_lease(layout().vm_lease, overwrite=overwrite_lease)

            plan.steps.append(
                Step(
                    f"write the VM lease {plan.vm_uuid} on {self.areas.lockspace}"
                    + (f" at offset {plan.layout.vm_lease.offset}" if plan.layout else ""),
                    write_lease,
                )
            )
        if self.write_conf_lock:

            async def write_conf_lock() -> None:
                await self.client.init_vm_lease(layout().conf_lock, overwrite=overwrite_conf_lock)

            plan.steps.append(
                Step(
                    f"write the configuration-volume lock {CONF_LOCK_RESOURCE!r} on "
                    f"{self.areas.lockspace}" + (f" at offset {plan.layout.conf_lock.offset}" if plan.layout else ""),
                    write_conf_lock,
                )
            )

    def _geometry_text(self) -> str:
        layout = self.plan.layout
        if layout is None:
            return ""
        ls = layout.lockspace
        return f", {ls.sector_size}-byte sectors, {ls.align // MIB} MiB alignment, host ids 1..{ls.max_host_id}"

    # --- the metadata area -----------------------------------------------------------------

    async def _plan_metadata(self) -> None:
        md, path = self.md, self.areas.metadata
        # A whiteboard beside a new lockspace is stale; beside a lockspace being rewritten
        # (forced: other io timeout) it is the cluster's own and stays.
        fresh_cluster = self.ls.state is not AreaState.IN_USE
        if md.state is AreaState.MISSING:
            if not fresh_cluster:
                self.plan.blockers.append(
                    f"{md.evidence}, but the lockspace on {self.areas.lockspace} is in use: "
                    "an additional host must name the cluster's metadata area"
                )
                return
            if not await self.io.is_dir(path.parent):
                self.plan.blockers.append(f"cannot create {path}: directory {path.parent} does not exist")
                return
            self._step(
                f"create {path} ({WHITEBOARD_BYTES} bytes, all zero)", self.io.create_file, path, WHITEBOARD_BYTES
            )
            return
        if not self._grow(md.stat, WHITEBOARD_BYTES, f"the metadata slots of host ids 1..{MAX_HOST_ID}"):
            return
        if md.state is AreaState.FOREIGN or (fresh_cluster and md.state is AreaState.IN_USE):
            why = "left from an earlier deployment" if md.state is AreaState.IN_USE else "not metadata"
            self.refuse(f"metadata area {md.evidence} ({why})")
            if self.request.force:
                self._step(f"zero {path} ({WHITEBOARD_BYTES} bytes)", self.io.zero, path, 0, WHITEBOARD_BYTES)
        elif md.unreadable:
            self.plan.notes.append(
                f"{path}: slot(s) {', '.join(map(str, md.unreadable))} do not decode; "
                "'hosted-engine --clean-metadata --unreadable' clears them"
            )

    def _step(self, text: str, call: Callable[..., Awaitable[None]], *args: object) -> None:
        async def run() -> None:
            await call(*args)

        self.plan.steps.append(Step(text, run))

    async def _verify(self) -> None:
        layout = self.plan.layout
        assert layout is not None
        await verify_lockspace(self.io, layout.lockspace)
        ls = await survey_lockspace(self.io, self.areas.lockspace)
        if ls.vm_uuid != self.plan.vm_uuid:
            raise ProvisionError(
                f"read back of {self.areas.lockspace}: {ls.lease_evidence}, expected the VM lease {self.plan.vm_uuid}"
            )
        if self.write_conf_lock and ls.geometry is not None:
            lock = layout.conf_lock
            _, evidence, resource = await survey_lease_area(
                self.io, lock.path, ls.stat, ls.geometry, lock.offset, "configuration-volume lock"
            )
            if resource != CONF_LOCK_RESOURCE:
                raise ProvisionError(
                    f"read back of {lock.path}: {evidence}, expected the configuration-volume "
                    f"lock {CONF_LOCK_RESOURCE!r}"
                )
        md = await survey_metadata(self.io, self.areas.metadata)
        if md.state not in (AreaState.ZERO, AreaState.IN_USE) or md.stat.size < WHITEBOARD_BYTES:
            raise ProvisionError(f"read back of the metadata area: {md.evidence} ({md.stat.size} bytes)")

    # --- who is alive ------------------------------------------------------------------------

    async def check_liveness(self, window: float | None, announce: Callable[[float], None] | None) -> None:
        host_id = self.request.host_id
        check_id = host_id is not None and self.plan.role is Role.ADDITIONAL and self.ls.state is AreaState.IN_USE
        if not (self.overwrites_in_use or check_id) or self.plan.blockers or self.plan.refusals:
            return  # nothing to check, or refused already
        seen = await observe(
            self.io,
            self.areas.lockspace,
            self.areas.metadata,
            window=window,
            announce=announce,
            interest=None if self.overwrites_in_use else [host_id] if host_id else None,
            fallback_io_timeout=self.request.io_timeout,
        )
        if self.overwrites_in_use:
            self.plan.blockers += [
                f"{line}: storage in use is never rewritten while a host is alive, even with --force"
                for live in seen.live_host_ids()
                for line in seen.alive_evidence(live)
            ]
            return
        assert host_id is not None
        alive = seen.alive_evidence(host_id)
        if alive and await self._held_here(host_id):
            self.plan.notes.append(f"this host's sanlock daemon holds host id {host_id}: the live host is this one")
        elif alive:
            self.plan.blockers += [f"host id {host_id} is used by another live host: {line}" for line in alive]
        self.plan.notes += seen.notes(host_id)

    async def _held_here(self, host_id: int) -> bool:
        assert self.plan.layout is not None
        try:
            state = await self.client.lockspace_state(self.plan.layout.lockspace, host_id)
        except DaemonUnavailable:
            return False
        return state is LockspaceState.JOINED

    # --- hosted-engine.conf --------------------------------------------------------------------

    async def plan_conf(self) -> None:
        request, plan = self.request, self.plan
        assert request.host_id is not None and request.conf_out is not None
        if plan.vm_uuid is None:
            return
        settings = request.settings
        values = HostConfValues(
            host_id=request.host_id,
            vmid=plan.vm_uuid,
            metadata_path=self.areas.metadata,
            lockspace_path=self.areas.lockspace,
            fqdn=settings.fqdn,
            vm_conf=settings.vm_conf,
            gateway=settings.gateway,
            network_test=settings.network_test,
            bridge=settings.bridge,
            tcp_address=settings.tcp_address,
            tcp_port=settings.tcp_port,
        )
        try:
            conf = plan_host_conf(request.conf_out, values, await self.io.read_text(request.conf_out))
        except ConfigError as exc:
            plan.blockers.append(str(exc))
            return
        if conf.conflicts:
            if request.force:
                plan.notes.append(f"--force overrides: {request.conf_out} has {', '.join(conf.conflicts)}")
            else:
                plan.refusals.append(f"{request.conf_out} has {', '.join(conf.conflicts)}; --force replaces them")
        if conf.change is not ConfChange.UNCHANGED:
            self._step(conf.describe(), self.io.write_text, request.conf_out, conf.text)
        else:
            plan.findings.append(conf.describe())


async def verify_lockspace(io: AreaIo, expected: Lockspace) -> None:
    """Read the lockspace area back with O_DIRECT and check what sanlock wrote: the name,
    the geometry and the io timeout (raises ProvisionError naming the difference)."""
    found = await survey_lockspace(io, expected.path)
    geometry = found.geometry
    wanted = (expected.name, expected.sector_size, expected.align, expected.io_timeout)
    got = None if geometry is None else (geometry.name, geometry.sector_size, geometry.align, geometry.io_timeout)
    if got != wanted:
        raise ProvisionError(
            f"read back of {expected.path}: {found.evidence}; expected lockspace {expected.name!r} "
            f"with {expected.sector_size}-byte sectors, {expected.align // MIB} MiB alignment, "
            f"io timeout {expected.io_timeout} s"
        )
