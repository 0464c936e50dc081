"""Who holds the VM lease on this host: the keeper, the lease worker, or QEMU.

Safety invariants (DESIGN.md): 1. the VM is launched only while this host holds the lease;
2. the lease stays held exactly as long as the VM may run here, across supervisor crashes.
Each holder is also the ``LeaseToken`` handed to ``VmController.start``: ``is_held`` answers
from memory (it runs on the loop), from the last acquire or check against sanlock, and is
cleared the moment the holder is known to be gone.

* ``KeeperHolder``: a detached lease-keeper process holds the lease (acquired with its pid).
  It outlives the supervisor (own session, not our child, KillMode=process in the unit); its
  pid and start time are kept in a file so a restarted supervisor adopts it. It registers a
  sanlock killpath (he-ha's ``fence`` command) so that losing the lockspace destroys the VM
  instead of merely killing the keeper. Its exit is watched with a pidfd.
* ``WorkerHolder``: the supervisor's lease worker holds it, so the lease ends with the
  supervisor process: right for an in-process ``test:///`` hypervisor, whose VMs end with it.
* ``QemuHolder``: libvirt's sanlock lock plugin makes QEMU acquire it at launch (a ``<lease>``
  in the domain XML); the lease lives and dies with the VM, and sanlock fences QEMU itself.

The engine's own disk lease (docs/supervisor.md, "The engine's disk lease"). When the resolved
definition of a start carries the HE disk's volume lease (lockspace ``<SD>``, resource
``<VOL>``), the engine-XML preparer hands it to the holder (``choose``) once per start. Only
the QEMU holder uses it: ``acquire`` joins this host to lockspace ``<SD>`` on the domain's
``dom_md/ids`` under its host id (already joined, by VDSM or an earlier start: nothing to do),
and ``prepare`` puts BOTH leases in the XML, he-ha's and the engine's, so libvirt acquires both
for QEMU in one sanlock call or the launch fails. Every observation (invariant 4's owner
check, adoption, release) keeps asking about he-ha's lease, which QEMU holds exactly as long
as it holds the engine's: the conservative form of the engine lease, correct with today's
observation code (plus the adoption check below). he-ha never leaves lockspace ``<SD>``
(whether it joined it or VDSM did): QEMU may hold the engine lease in it, and leaving would make sanlock kill QEMU.
The keeper and worker holders ignore the engine lease (it is not handed to libvirt).

Adopting a VM started by VDSM (mixed cluster, docs/supervisor.md "The engine's disk lease"):
such a QEMU holds only the engine lease. The QEMU holder knows the engine lease of the
definition in use (``expect_engine_lease`` at start-up, and every start's ``choose``); when
he-ha's lease is not ours, ``check`` also answers yes if the engine's QEMU on this host (found
by its ``-uuid``) is registered with this host's sanlock daemon holding ``<SD>:<VOL>``
(inquire) AND storage records this host, in its current generation in ``<SD>``, as the owner
of ``<SD>:<VOL>``. Anything less (no such QEMU, another host's owner record, an older
generation, ``<SD>`` not joined) is a no, exactly as before; a sanlock query that fails (or
``<SD>`` just joined) is "cannot tell" (None), as for he-ha's own lease.

Live migration (docs/supervisor.md "Live migration"): only the QEMU holder's leases can move
with the VM. libvirt's sanlock plugin releases them on the source when its vCPUs stop for the
switch-over and acquires them for the incoming QEMU on the destination (with the source's lease
version, from the migration cookie) before its vCPUs run; the supervisor takes no part. The
destination must be in every lockspace the leases live in: he-ha's (joined at start-up by every
host) and, with the engine lease, ``<SD>``, which ``join_engine_lockspace`` joins in the
background at start-up when the definition in use carries the engine lease, so that a host that
never started the VM can receive it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import structlog

from he_ha.lease import (
    DEFAULT_IO_TIMEOUT,
    HeldResource,
    HolderNotRegistered,
    KeeperFileError,
    KeeperProcess,
    KeeperRecord,
    Killpath,
    LeaseAlreadyHeld,
    LeaseClient,
    LeaseError,
    LeaseNotHeld,
    LeaseOwner,
    LeaseWorkerDied,
    Lockspace,
    LockspaceNotJoined,
    LockspaceNotReady,
    VmLease,
    WrongHostId,
    domain_lockspace,
    domain_resource,
    is_our_keeper,
    read_record,
    start_detached,
    start_time_of,
    wait_deadline,
    write_record,
)
from he_ha.vm import DomainSpec, LeaseSpec, inject_lease

log = structlog.get_logger(__name__)

QUERY_TIMEOUT = 60.0  # sanlock queries run single-flight: a long client deadline, short waits
JOIN_RETRY = 10.0  # seconds between attempts to join <SD> at start-up (QemuHolder.join_engine_lockspace)


@dataclass(frozen=True)
class LeaseContext:
    """What the tick already knows from sanlock when it asks a holder."""

    own_id: int
    own_generation: int | None  # this host's current lockspace generation
    owners: tuple[LeaseOwner, ...] | None  # the lease's recorded owners; None: unreadable


class LeaseHolder(ABC):
    kind: ClassVar[str]
    # QEMU itself holds the lease (libvirt's sanlock plugin): the launch acquires it (a launch
    # may fail on the lock) and a live migration takes it along to the target.
    held_by_qemu: ClassVar[bool] = False

    def __init__(self, client: LeaseClient, lease: VmLease, *, on_lost: Callable[[str], None]) -> None:
        self.client = client
        self.lease = lease
        self._on_lost = on_lost
        self._held = False
        # Counts launches begun and ended, so odd while one is under way. Only the QEMU holder
        # counts: its lease is acquired by the launch itself (observe.py's module doc).
        self.launch_epoch = 0

    def is_held(self) -> bool:
        """LeaseToken: this host holds the VM lease (from memory; never blocks)."""
        return self._held

    async def recover(self) -> None:  # noqa: B027 (an optional hook, a no-op by default)
        """At start-up: find a holder left by a previous supervisor."""

    @abstractmethod
    async def acquire(self, timeout: float) -> None:
        """Take the lease. LeaseHeldElsewhere when another host has it; other LeaseErrors."""

    @abstractmethod
    async def check(self, ctx: LeaseContext) -> bool | None:
        """Does this host hold the lease right now? None: cannot tell."""

    @abstractmethod
    async def release(self) -> None:
        """Give the lease up. Only once the VM is confirmed gone (the caller checks)."""

    def choose(self, engine_lease: LeaseSpec | None) -> None:  # noqa: B027 (an optional hook, a no-op by default)
        """Once per start, from the resolved definition: the engine's disk lease, or None.
        Only the QEMU holder protects the VM with it (see the module doc)."""

    def prepare(self, spec: DomainSpec) -> DomainSpec:
        """The domain XML to launch (QEMU holder: with our ``<lease>``)."""
        return spec

    def launched(self) -> None:  # noqa: B027 (an optional hook, a no-op by default)
        """The launch attempt is over (the QEMU holder's token is single-use)."""

    def detach(self) -> None:  # noqa: B027 (an optional hook, a no-op by default)
        """Supervisor shutdown: stop watching, never release."""

    def _holds(self, held: list[HeldResource]) -> bool:
        return any(r.lockspace == self.lease.lockspace and r.resource == self.lease.resource for r in held)


class WorkerHolder(LeaseHolder):
    kind = "worker"

    async def acquire(self, timeout: float) -> None:
        try:
            await self.client.acquire(self.lease, timeout=timeout)
        except LeaseAlreadyHeld:
            pass
        except LeaseError:
            self._held = await self._query() is True
            if not self._held:
                raise
            return
        self._held = True

    async def check(self, ctx: LeaseContext) -> bool | None:
        held = await self._query()
        if held is not None:
            self._held = held
        return held

    async def _query(self) -> bool | None:
        try:
            return self._holds(await self.client.held(timeout=QUERY_TIMEOUT))
        except HolderNotRegistered:
            return False  # the worker never acquired anything with this daemon
        except LeaseWorkerDied:
            raise
        except LeaseError as exc:
            log.warning("cannot tell whether the lease worker holds the VM lease", error=str(exc))
            return None

    async def release(self) -> None:
        try:
            await self.client.release(self.lease)
        except (LeaseNotHeld, HolderNotRegistered):
            log.info("the lease worker held no lease to release")
        self._held = False


class KeeperHolder(LeaseHolder):
    kind = "keeper"

    def __init__(
        self,
        client: LeaseClient,
        lease: VmLease,
        *,
        on_lost: Callable[[str], None],
        record_file: Path,
        sanlock_run_dir: Path | None,
        killpath: Killpath | None,
        log_path: Path | None,
    ) -> None:
        super().__init__(client, lease, on_lost=on_lost)
        self._record_file = record_file
        self._run_dir = sanlock_run_dir
        self._killpath = killpath
        self._log_path = log_path
        self._keeper: KeeperProcess | None = None
        self._stopping: set[int] = set()  # keepers we are ending ourselves

    @property
    def keeper_pid(self) -> int | None:
        return self._keeper.pid if self._keeper is not None and self._keeper.alive else None

    def is_held(self) -> bool:
        return self._held and self._keeper is not None and self._keeper.alive

    async def recover(self) -> None:
        try:
            record = await asyncio.to_thread(read_record, self._record_file)
        except KeeperFileError as exc:
            log.error("ignoring unreadable lease-keeper file", error=str(exc))
            return
        if record is None:
            return
        if record.resource != self.lease.resource or not is_our_keeper(record):
            log.info("lease keeper of the previous supervisor is gone", pid=record.pid)
            await asyncio.to_thread(self._record_file.unlink, missing_ok=True)
            return
        keeper = KeeperProcess(record, self._exited)
        self._keeper = keeper
        held = await self._query(keeper.pid)
        if held is False:
            log.info("lease keeper of the previous supervisor holds nothing; ending it", pid=keeper.pid)
            await self._end_keeper()
            return
        self._held = held is True
        log.info("adopted the lease keeper", pid=keeper.pid, holds_lease=held)

    async def acquire(self, timeout: float) -> None:
        keeper = self._keeper
        if keeper is None or not keeper.alive:
            keeper = await self._start_keeper()
        try:
            await self.client.acquire(self.lease, holder_pid=keeper.pid, timeout=timeout)
        except LeaseAlreadyHeld:
            pass
        except LeaseError:
            # After a timeout sanlock may still have granted it: ask before giving up.
            if await self._query(keeper.pid) is not True:
                await self._end_keeper()
                raise
        self._held = True

    async def check(self, ctx: LeaseContext) -> bool | None:
        keeper = self._keeper
        if keeper is None or not keeper.alive:
            self._held = False
            return False
        held = await self._query(keeper.pid)
        if held is not None:
            self._held = held
        return held

    async def _query(self, pid: int) -> bool | None:
        try:
            return self._holds(await self.client.held(holder_pid=pid, timeout=QUERY_TIMEOUT))
        except HolderNotRegistered:
            return False  # not registered with this host's daemon (it restarted?): holds nothing
        except LeaseWorkerDied:
            raise
        except LeaseError as exc:
            log.warning("cannot tell whether the lease keeper holds the VM lease", pid=pid, error=str(exc))
            return None

    async def release(self) -> None:
        keeper = self._keeper
        if keeper is None:
            self._held = False
            return
        if keeper.alive:
            try:
                await self.client.release(self.lease, holder_pid=keeper.pid)
            except (LeaseNotHeld, HolderNotRegistered):
                log.info("the lease keeper held no lease to release", pid=keeper.pid)
            except LeaseError as exc:  # ending the keeper releases it all the same
                log.warning("explicit release failed; ending the keeper releases the lease", error=str(exc))
        self._held = False
        await self._end_keeper()

    def detach(self) -> None:
        if self._keeper is not None:
            self._keeper.forget()

    async def _start_keeper(self) -> KeeperProcess:
        pid = await start_detached(run_dir=self._run_dir, killpath=self._killpath, log_path=self._log_path)
        start_time = start_time_of(pid)
        if start_time is None:
            raise LeaseError(f"lease keeper pid {pid} exited right after registering; see {self._log_path}")
        record = KeeperRecord(pid, start_time, self.lease.resource)
        await asyncio.to_thread(write_record, self._record_file, record)
        self._keeper = KeeperProcess(record, self._exited)
        return self._keeper

    async def _end_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            self._stopping.add(keeper.pid)
            await keeper.terminate()
        await asyncio.to_thread(self._record_file.unlink, missing_ok=True)

    def _exited(self, keeper: KeeperProcess) -> None:
        if keeper.pid in self._stopping:
            self._stopping.discard(keeper.pid)
            log.info("lease keeper ended", pid=keeper.pid)
            return
        self._held = False
        log.error("lease keeper died unexpectedly: the VM lease is gone", pid=keeper.pid)
        self._on_lost(f"lease keeper pid {keeper.pid} exited")


class QemuHolder(LeaseHolder):
    """QEMU holds the lease (libvirt's sanlock plugin). ``is_held`` is true only between
    ``prepare`` (the XML now carries our ``<lease>``, so libvirt acquires the lease as part
    of the launch, or the launch fails) and ``launched``.

    With an engine lease chosen for the start, QEMU holds it too: ``acquire`` joins its
    lockspace ``<SD>`` under ``host_id`` and ``prepare`` adds it beside ours."""

    kind = "qemu"
    held_by_qemu = True

    def __init__(
        self,
        client: LeaseClient,
        lease: VmLease,
        *,
        on_lost: Callable[[str], None],
        host_id: int | None = None,
        io_timeout: int = DEFAULT_IO_TIMEOUT,
        vm_uuid: str | None = None,
        qemu_pids: Callable[[], list[int]] | None = None,
    ) -> None:
        super().__init__(client, lease, on_lost=on_lost)
        self.host_id = host_id
        self.io_timeout = io_timeout
        uuid = vm_uuid or lease.resource
        # The engine's QEMU processes on this machine (blocking: reads /proc)
        self._qemu_pids = qemu_pids or (lambda: engine_qemu_pids(uuid))
        self._adoptable: LeaseSpec | None = None  # the engine lease of the definition in use
        self._adopted_logged = False
        self._engine: LeaseSpec | None = None  # the engine lease of the start under way
        self._ready: LeaseSpec | None = None  # ... once its lockspace is joined (acquire)
        self.domain_lockspaces: dict[str, Lockspace] = {}  # <SD> lockspaces this host is in (never left)
        self._joining: asyncio.Task[None] | None = None  # join_engine_lockspace's background task

    @property
    def engine_lease(self) -> LeaseSpec | None:
        """The engine lease chosen for the start under way (None: he-ha's lease alone)."""
        return self._engine

    @property
    def adoptable_lease(self) -> LeaseSpec | None:
        """The engine lease a running VM may hold instead of ours (see the module doc)."""
        return self._adoptable

    def expect_engine_lease(self, engine_lease: LeaseSpec | None) -> None:
        """The engine lease of the definition in use (start-up): a local VM whose QEMU holds
        it counts as held here. None leaves what an earlier start chose."""
        if engine_lease is not None:
            self._adoptable = engine_lease

    def join_engine_lockspace(self, *, retry: float = JOIN_RETRY) -> asyncio.Task[None] | None:
        """Start-up: join this host to lockspace ``<SD>`` of the expected engine lease in the
        background, retried every ``retry`` seconds until it succeeds, so that this host can
        receive the VM by live migration before it ever started it (libvirt's sanlock plugin
        acquires every ``<lease>`` for the incoming QEMU on this host, which needs this host in
        each lockspace the leases live in; VDSM keeps its hosts in every domain's lockspace
        the same way). Never left again (module doc). Needs a running loop; None when there
        is nothing to join (no engine lease expected, no host id) or a join is under way."""
        lease = self._adoptable
        if lease is None or self.host_id is None or (self._joining is not None and not self._joining.done()):
            return None
        self._joining = asyncio.get_running_loop().create_task(self._keep_joining(lease, retry))
        return self._joining

    async def _keep_joining(self, lease: LeaseSpec, retry: float) -> None:
        assert self.host_id is not None
        lockspace = domain_lockspace(lease.lockspace, lease.path, io_timeout=self.io_timeout)
        reported: str | None = None
        while True:
            try:
                outcome = await self.client.join(lockspace, self.host_id, timeout=wait_deadline(lockspace.io_timeout))
            except WrongHostId as exc:  # joined under another id (by VDSM?): no retry helps
                log.error(
                    "cannot join the storage domain lockspace at start-up: live migration to this host will fail",
                    lockspace=lockspace.name,
                    host_id=self.host_id,
                    error=str(exc),
                )
                return
            except LeaseWorkerDied as exc:  # the daemon's own sanlock calls report it too
                log.error(
                    "cannot join the storage domain lockspace at start-up: the lease worker died",
                    lockspace=lockspace.name,
                    error=str(exc),
                )
                return
            except LeaseError as exc:
                if str(exc) != reported:
                    log.warning(
                        "cannot join the storage domain lockspace yet; retrying",
                        lockspace=lockspace.name,
                        host_id=self.host_id,
                        error=str(exc),
                        retry=retry,
                    )
                    reported = str(exc)
                await asyncio.sleep(retry)
                continue
            except Exception:  # a bug must not end in an unretrieved task exception
                log.exception("joining the storage domain lockspace at start-up raised", lockspace=lockspace.name)
                return
            self.domain_lockspaces[lockspace.name] = lockspace
            log.info(
                "storage domain lockspace joined at start-up: this host can receive the VM by live migration",
                lockspace=lockspace.name,
                ids=str(lockspace.path),
                host_id=self.host_id,
                outcome=outcome.value,
            )
            return

    def detach(self) -> None:
        if self._joining is not None:
            self._joining.cancel()  # an add_lockspace already sent completes in the sanlock daemon

    def choose(self, engine_lease: LeaseSpec | None) -> None:
        self._engine = engine_lease
        self._ready = None
        self.expect_engine_lease(engine_lease)

    async def acquire(self, timeout: float) -> None:
        """Nothing to take beforehand: libvirt acquires the leases for QEMU at createXML. With
        an engine lease, this host must be in its lockspace first (LeaseError otherwise)."""
        lease = self._engine
        if lease is None:
            return
        if self.host_id is None:
            raise LeaseError(
                f"the engine lease {lease.lockspace}:{lease.key} needs this host's id in "
                f"lockspace {lease.lockspace}, and the QEMU holder has none"
            )
        lockspace = domain_lockspace(lease.lockspace, lease.path, io_timeout=self.io_timeout)
        outcome = await self.client.join(lockspace, self.host_id, timeout=wait_deadline(lockspace.io_timeout))
        self.domain_lockspaces[lockspace.name] = lockspace
        log.info(
            "storage domain lockspace for the engine lease",
            lockspace=lockspace.name,
            ids=str(lockspace.path),
            host_id=self.host_id,
            outcome=outcome.value,
        )
        self._ready = lease

    def prepare(self, spec: DomainSpec) -> DomainSpec:
        if self._engine is not None and self._ready is not self._engine:
            # Never launch with a lease in a lockspace this host was not seen to join.
            lease = self._engine
            raise LeaseNotHeld(
                "launch",
                0,
                "lockspace not joined",
                f"engine lease {lease.lockspace}:{lease.key}",
                f"lockspace {lease.lockspace} not joined for this start: not launched",
            )
        prepared = with_lease(spec, self.lease)
        if self._ready is not None:
            prepared = add_lease(prepared, self._ready)
        self._held = True
        self.launch_epoch += 1
        return prepared

    def launched(self) -> None:
        if self._held:
            self.launch_epoch += 1
        self._held = False
        self._engine = self._ready = None  # single-use: the next start chooses again

    async def check(self, ctx: LeaseContext) -> bool | None:
        """he-ha's lease owned by this host; else (it is free or another's) the engine lease
        held by this host's engine QEMU (adoption of a VM started by VDSM: module doc)."""
        ours = owned_by_us(ctx)
        if ours is not False or self._adoptable is None:
            return ours
        return await self.engine_lease_held(ctx.own_id, self._adoptable)

    async def engine_lease_held(self, own_id: int, lease: LeaseSpec) -> bool | None:
        """This host's engine QEMU holds ``lease`` (inquire) and storage records this host,
        in its current generation in the lease's lockspace, as its owner. None: cannot tell."""
        pids = await asyncio.to_thread(self._qemu_pids)
        holder: int | None = None
        for pid in pids:
            try:
                held = await self.client.held(holder_pid=pid, timeout=QUERY_TIMEOUT)
            except HolderNotRegistered:
                continue  # not registered with this host's sanlock daemon: holds nothing here
            except LeaseWorkerDied:
                raise
            except LeaseError as exc:
                log.warning("cannot tell whether the engine's QEMU holds the engine lease", pid=pid, error=str(exc))
                return None
            if any(r.lockspace == lease.lockspace and r.resource == lease.key for r in held):
                holder = pid
                break
        if holder is None:
            return False
        lockspace = domain_lockspace(lease.lockspace, lease.path, io_timeout=self.io_timeout)
        resource = domain_resource(lease.lockspace, lease.key, lease.path, lease.offset, io_timeout=self.io_timeout)
        try:
            hosts = await self.client.hosts(lockspace, own_id, timeout=QUERY_TIMEOUT)
            owners = await self.client.owners(resource, timeout=QUERY_TIMEOUT)
        except LockspaceNotJoined:
            return False  # not in <SD>: no lease of it can be ours
        except LockspaceNotReady:
            return None  # just joined: its hosts are not known yet (as for he-ha's lockspace)
        except LeaseWorkerDied:
            raise
        except LeaseError as exc:
            log.warning("cannot read the engine lease's owner", lease=f"{lease.lockspace}:{lease.key}", error=str(exc))
            return None
        generation = next((h.generation for h in hosts if h.host_id == own_id), None)
        ctx = LeaseContext(own_id, generation, tuple(owners))
        owned = owned_by_us(ctx) is True
        if owned and not self._adopted_logged:
            log.info(
                "the engine's QEMU holds the engine lease: the VM counts as held here",
                pid=holder,
                lease=f"{lease.lockspace}:{lease.key}",
                generation=generation,
            )
        self._adopted_logged = owned
        return owned

    async def release(self) -> None:
        """QEMU's exit released it; nothing is held by the supervisor."""


def with_lease(spec: DomainSpec, lease: VmLease) -> DomainSpec:
    """The domain XML with our VM lease as its only ``<lease>`` device."""
    return inject_lease(spec, LeaseSpec(lease.lockspace, lease.resource, lease.path, lease.offset))


def add_lease(spec: DomainSpec, lease: LeaseSpec) -> DomainSpec:
    """The domain XML with ``lease`` added after its ``<lease>`` devices (the engine lease
    beside ours: libvirt's sanlock plugin acquires all of them for QEMU, or none)."""
    root = ET.fromstring(spec.xml)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    element = ET.SubElement(devices, "lease")
    ET.SubElement(element, "lockspace").text = lease.lockspace
    ET.SubElement(element, "key").text = lease.key
    ET.SubElement(element, "target", path=str(lease.path), offset=str(lease.offset))
    return replace(spec, xml=ET.tostring(root, encoding="unicode"))


def owned_by_us(ctx: LeaseContext) -> bool | None:
    """Storage records this host, in its current lockspace generation, as the lease owner."""
    if ctx.owners is None or ctx.own_generation is None:
        return None
    return any(o.host_id == ctx.own_id and o.generation == ctx.own_generation for o in ctx.owners)


def engine_qemu_pids(vm_uuid: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids of QEMU processes started for the VM ``vm_uuid`` (``-uuid <vm_uuid>`` on their
    command line, as libvirt starts them). Blocking. Whether one of them belongs to this
    host is sanlock's to say (``held`` answers only for processes registered with this
    host's daemon)."""
    wanted = vm_uuid.lower().encode()
    pids = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a == b"-uuid" and b.lower() == wanted for a, b in pairwise(args)):
            pids.append(int(entry.name))
    return pids


def fence_killpath(fence_file: Path) -> Killpath:
    """sanlock runs ``python -m he_ha.main fence <fence file> <keeper pid>`` to fence the keeper."""
    return Killpath(sys.executable, ("-m", "he_ha.main", "fence", str(fence_file), "{pid}"))
