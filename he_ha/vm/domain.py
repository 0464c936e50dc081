"""Control of the engine VM through libvirt: start, shutdown, destroy, migrate, pause, state.

The VM is started as a *transient* domain (``createXML``), as VDSM did:
- libvirt cannot autostart a transient domain, so a host reboot never launches the engine
  behind the HA logic's back (and no lease check would run);
- nothing is left defined after the VM stops, so nobody can ``virsh start`` a stale copy,
  and every start uses the current vm.conf (no drift between a stored definition and it);
- the cost: after a stop the domain is gone, so the stop *reason* comes from the lifecycle
  event (events.py), while ``state()`` then reads ABSENT.
A persistent definition with the engine's UUID found at start (left over, or made by hand)
is cleaned up first (the original's _clean_vdsm_state): destroyed if crashed, undefined.

Every call runs in the connection's executor with a deadline (connection.py). Stopping a
VM that is already gone is success, not an error (unlike the original's defect B16).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar, runtime_checkable

import libvirt
import structlog

from he_ha.vm.connection import LibvirtConnection
from he_ha.vm.domain_xml import DomainId, DomainSpec
from he_ha.vm.errors import (
    DomainConflict,
    DomainNotFound,
    HypervisorError,
    HypervisorTimeout,
    LibvirtCallError,
    MigrationUnsupported,
    StartPausedUnsupported,
    StartWithoutLease,
)
from he_ha.vm.state import VmState, state_from_libvirt

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Undefine flags for a left-over persistent definition: drop managed-save images and
# snapshot/checkpoint metadata (they would make undefine fail) but keep a UEFI NVRAM file.
_UNDEFINE_FULL = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
)
# Drivers without checkpoints/NVRAM (libvirt's test driver) refuse the full set.
_UNDEFINE_BASIC = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA

# Live (the engine keeps serving), peer-to-peer (the source libvirtd talks to the
# destination libvirtd given by its URI; QEMU has no "direct" migration), abort on an I/O
# error instead of completing with a VM paused on EIO. No PERSIST_DEST/UNDEFINE_SOURCE:
# the domain is transient and stays so; on success the source copy simply disappears.
# AUTO_CONVERGE: QEMU throttles the guest's vCPUs while its memory is dirtied faster than it
# can be copied, so a busy engine (its database) still finishes within the deadline instead of
# taking the cold path; a throttled engine is slow for seconds, a cold start is minutes.
MIGRATE_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
    | libvirt.VIR_MIGRATE_AUTO_CONVERGE
)

_UNSUPPORTED = (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED)


@runtime_checkable
class LeaseToken(Protocol):
    """Proof from the lease layer that this host holds the VM's sanlock lease.

    ``is_held`` is called on the event loop and must not block (read in-memory state).
    """

    def is_held(self) -> bool: ...


class StartOutcome(StrEnum):
    STARTED = "started"
    ALREADY_RUNNING = "already_running"  # running or paused here: not an error


@dataclass(frozen=True)
class StartResult:
    outcome: StartOutcome
    state: VmState
    cleaned_up: bool = False  # a stale definition (shut off / crashed) was removed first


class StopOutcome(StrEnum):
    STOPPED = "stopped"
    ALREADY_STOPPED = "already_stopped"  # absent or not running: success
    TIMED_OUT = "timed_out"  # graceful shutdown only: still active at the deadline


@dataclass(frozen=True)
class StopResult:
    outcome: StopOutcome
    state: VmState

    @property
    def ok(self) -> bool:
        return self.outcome is not StopOutcome.TIMED_OUT


@dataclass(frozen=True)
class _Inspection:
    state: VmState
    cleaned_up: bool


class VmController:
    """Operations on one domain (the engine VM), found by UUID or else by name."""

    def __init__(self, connection: LibvirtConnection, domain: DomainId, *, poll_interval: float = 1.0) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0, got {poll_interval!r}")
        self.connection = connection
        self.domain = domain
        self._poll_interval = poll_interval

    # --- state -----------------------------------------------------------------------------

    async def state(self) -> VmState:
        """The domain's state; ABSENT when libvirt knows no such domain.

        Raises HypervisorError when libvirt cannot be asked (use VmState.unknown for that).
        """
        return await self.connection.call("state", self._read_state)

    def _lookup(self, conn: libvirt.virConnect) -> libvirt.virDomain | None:
        try:
            if self.domain.uuid:
                return conn.lookupByUUIDString(self.domain.uuid)
            return conn.lookupByName(self.domain.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _read_state(self, conn: libvirt.virConnect) -> VmState:
        dom = self._lookup(conn)
        if dom is None:
            return VmState.absent()
        try:
            state, reason = dom.state()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:  # vanished since the lookup
                return VmState.absent()
            raise
        return state_from_libvirt(state, reason)

    # --- start -----------------------------------------------------------------------------

    async def start(self, spec: DomainSpec, lease: LeaseToken, *, paused: bool = False) -> StartResult:
        """Launch the VM from ``spec`` unless it already runs here. Needs the VM lease.

        Idempotent: a running or paused domain gives ALREADY_RUNNING (a paused VM is left
        for the caller to resume or destroy: killing a live QEMU is a decision, not a
        clean-up). A shut off or crashed definition is removed first. Raises StartWithoutLease
        before touching libvirt if ``lease.is_held()`` is false, DomainConflict if another
        domain owns the name or UUID, StartPausedUnsupported if the driver cannot start
        paused, HypervisorError / LibvirtCallError otherwise. After a HypervisorTimeout
        the launch may still complete inside libvirt: keep the lease until the state (or
        a lifecycle event) shows the VM is not running.
        """
        self._require_lease(lease)
        if spec.id != self.domain:
            raise DomainConflict(f"{spec.source} describes {spec.id}, but this controller manages {self.domain}")
        deadlines = self.connection.deadlines
        found = await self.connection.call("inspect-before-start", lambda c: self._inspect_and_clean(c, spec))
        if found.state.active:
            log.info("engine VM already running", domain=str(self.domain), state=str(found.state))
            return StartResult(StartOutcome.ALREADY_RUNNING, found.state, found.cleaned_up)
        self._require_lease(lease)  # the clean-up took time: the lease may be gone by now
        flags = libvirt.VIR_DOMAIN_START_PAUSED if paused else 0
        try:
            await self.connection.call("createXML", lambda c: c.createXML(spec.xml, flags), deadlines.start)
        except LibvirtCallError as exc:
            if paused and exc.code == libvirt.VIR_ERR_INVALID_ARG and "unsupported flags" in exc.message:
                raise StartPausedUnsupported(f"{self.connection.uri}: {exc.message}") from exc
            # Someone started it between our inspection and createXML: same result as before.
            now = await self.state()
            if now.active:
                return StartResult(StartOutcome.ALREADY_RUNNING, now, found.cleaned_up)
            raise
        state = await self.state()
        log.info("engine VM started", domain=str(self.domain), paused=paused, state=str(state))
        return StartResult(StartOutcome.STARTED, state, found.cleaned_up)

    @staticmethod
    def _require_lease(lease: LeaseToken) -> None:
        if not lease.is_held():
            raise StartWithoutLease("refusing to start the engine VM: this host does not hold the VM lease")

    def _inspect_and_clean(self, conn: libvirt.virConnect, spec: DomainSpec) -> _Inspection:
        self._check_name_conflict(conn, spec)
        dom = self._lookup(conn)
        if dom is None:
            return _Inspection(VmState.absent(), False)
        state = state_from_libvirt(*dom.state())
        if state.active:
            if dom.isPersistent() and dom.autostart():
                dom.setAutostart(0)  # never let libvirt start the engine on host boot
                log.warning("disabled libvirt autostart of the engine VM", domain=str(self.domain))
            return _Inspection(state, False)
        log.info("cleaning up stale engine VM definition", domain=str(self.domain), state=str(state))
        if dom.isActive():  # CRASHED with on_crash=preserve keeps a QEMU process
            dom.destroy()
        if dom.isPersistent():
            try:
                dom.undefineFlags(_UNDEFINE_FULL)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                    raise
                dom.undefineFlags(_UNDEFINE_BASIC)
        return _Inspection(VmState.absent(), True)

    def _check_name_conflict(self, conn: libvirt.virConnect, spec: DomainSpec) -> None:
        if not self.domain.uuid:
            return
        try:
            other = conn.lookupByName(spec.id.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise
        if other.UUIDString().lower() != self.domain.uuid.lower():
            raise DomainConflict(
                f"a libvirt domain named {spec.id.name!r} exists with UUID {other.UUIDString()}, "
                f"not the engine VM's {self.domain.uuid}"
            )

    # --- stop ------------------------------------------------------------------------------

    async def shutdown(self, timeout: float) -> StopResult:
        """Ask the guest to shut down, then poll until it is no longer active.

        TIMED_OUT (a result, not an error) if it still runs after ``timeout`` seconds.
        """
        if timeout <= 0:
            raise ValueError(f"shutdown timeout must be > 0, got {timeout!r}")
        started = time.monotonic()
        first = await self._stop_call("shutdown", lambda d: d.shutdown(), self.connection.deadlines.shutdown_request)
        if first is not None:
            return first
        while True:
            state = await self.state()
            if not state.active:
                log.info("engine VM shut down", domain=str(self.domain), state=str(state))
                return StopResult(StopOutcome.STOPPED, state)
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                log.warning("engine VM did not shut down in time", domain=str(self.domain), timeout=timeout)
                return StopResult(StopOutcome.TIMED_OUT, state)
            await asyncio.sleep(min(self._poll_interval, remaining))

    async def destroy(self) -> StopResult:
        """Force the VM off (QEMU is killed). An absent or stopped domain is success."""
        first = await self._stop_call("destroy", lambda d: d.destroy(), self.connection.deadlines.destroy)
        if first is not None:
            return first
        state = await self.state()
        log.info("engine VM destroyed", domain=str(self.domain), state=str(state))
        return StopResult(StopOutcome.STOPPED, state)

    async def _stop_call(
        self, operation: str, action: Callable[[libvirt.virDomain], object], deadline: float
    ) -> StopResult | None:
        """Run a stop action; a StopResult when there was nothing to stop, else None."""

        def run(conn: libvirt.virConnect) -> VmState | None:
            dom = self._lookup(conn)
            if dom is None:
                return VmState.absent()
            try:
                action(dom)
            except libvirt.libvirtError:
                # "not running" has different codes per driver; the state is the truth.
                state = self._read_state(conn)
                if not state.active:
                    return state
                raise
            return None

        gone = await self.connection.call(operation, run, deadline)
        if gone is None:
            return None
        log.info("engine VM already stopped", operation=operation, domain=str(self.domain), state=str(gone))
        return StopResult(StopOutcome.ALREADY_STOPPED, gone)

    # --- migrate, pause, resume ---------------------------------------------------------

    async def migrate(self, destination_uri: str, *, deadline: float | None = None) -> VmState:
        """Live-migrate to another host's libvirtd (peer-to-peer); returns the local state after.

        MigrationUnsupported when the driver cannot migrate. On a missed deadline the
        migration job is aborted (best effort) and HypervisorTimeout is raised.
        """
        if not destination_uri:
            raise ValueError("destination URI must not be empty")
        limit = deadline or self.connection.deadlines.migrate
        try:
            await self.connection.call(
                "migrate",
                lambda c: self._require(c).migrateToURI3(destination_uri, {}, MIGRATE_FLAGS),
                limit,
                retry=False,  # a failed migration is not silently started again
            )
        except LibvirtCallError as exc:
            if exc.code in _UNSUPPORTED:
                raise MigrationUnsupported(destination_uri, exc.message) from exc
            raise
        except HypervisorTimeout:
            await self._abort_migration()
            raise
        return await self.state()

    async def _abort_migration(self) -> None:
        try:
            await self.connection.call("abortJob", lambda c: self._require(c).abortJob(), allow_while_stuck=True)
        except (LibvirtCallError, HypervisorError, DomainNotFound) as exc:
            log.error("could not abort the timed-out migration", domain=str(self.domain), error=str(exc))

    async def pause(self) -> VmState:
        await self._on_domain("suspend", lambda d: d.suspend())
        return await self.state()

    async def resume(self) -> VmState:
        await self._on_domain("resume", lambda d: d.resume())
        return await self.state()

    async def _on_domain(
        self, operation: str, action: Callable[[libvirt.virDomain], T], deadline: float | None = None
    ) -> T:
        return await self.connection.call(operation, lambda c: action(self._require(c)), deadline)

    def _require(self, conn: libvirt.virConnect) -> libvirt.virDomain:
        dom = self._lookup(conn)
        if dom is None:
            raise DomainNotFound(f"engine VM {self.domain} does not exist in {self.connection.uri}")
        return dom
