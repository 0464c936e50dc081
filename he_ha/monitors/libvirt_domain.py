"""Reading the engine VM's state and CPU time from libvirt, off the event loop.

Used by the cpu and engine-health monitors (one instance may be shared by both). Every
libvirt call runs in an ``OffLoop`` worker under a deadline; a hung libvirtd produces
errors, never a frozen loop or a growing pile of threads.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Protocol

import libvirt
import structlog

from he_ha.monitors.commands import DeadlineExceeded, OffLoop, WorkerBusy
from he_ha.monitors.framework import MonitorError, require_positive

log = structlog.get_logger(__name__)


class LibvirtUnavailable(MonitorError):
    """libvirt could not answer (connection failure, driver error, deadline, worker busy)."""


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """One look at the domain. ``exists`` False means libvirt has no such domain here."""

    exists: bool
    state: int | None = None  # libvirt.VIR_DOMAIN_RUNNING, ...
    reason: int | None = None  # the state's reason code (VIR_DOMAIN_SHUTOFF_MIGRATED, ...)
    cpu_time_ns: int | None = None  # cumulative guest CPU time, all vCPUs
    observed_at: float = 0.0  # time.monotonic() right after the libvirt calls
    # The domain is the destination of a live migration under way, receiving the VM (PAUSED/
    # MIGRATION): it has not run guest code here yet (see ``incoming_migration``).
    incoming: bool = False

    @property
    def active(self) -> bool:
        """The domain exists and has a QEMU process (so its CPU time is meaningful)."""
        return self.exists and self.state not in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED, None)


class DomainObserver(Protocol):
    """What the cpu and engine-health monitors need from the hypervisor side.

    ``LibvirtDomain`` is the implementation; a supervisor that already owns a libvirt
    connection (with its own reconnect logic) may supply another one.
    """

    timeout: float  # the deadline ``observe`` keeps; monitors size their own from it

    async def observe(self) -> DomainInfo:
        """Look at the domain; raise LibvirtUnavailable when libvirt cannot answer."""
        ...

    async def aclose(self) -> None: ...


_errors_silenced = False


def read_domain(conn: libvirt.virConnect, *, domain_uuid: str | None = None, name: str | None = None) -> DomainInfo:
    """Blocking: the domain's state, reason and CPU time, looked up by UUID (else by name).

    "No such domain" is an answer (``exists=False``); any other libvirt error propagates.
    """
    try:
        domain = conn.lookupByUUIDString(domain_uuid) if domain_uuid else conn.lookupByName(name)
        state, reason = domain.state()
        cpu_time_ns = domain.info()[4]
        incoming = incoming_migration(domain, state, reason)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return DomainInfo(exists=False, observed_at=time.monotonic())
        raise
    return DomainInfo(True, state, reason, cpu_time_ns, time.monotonic(), incoming)


def incoming_migration(domain: libvirt.virDomain, state: int, reason: int) -> bool:
    """Blocking: is this PAUSED/MIGRATION domain the destination of a live migration under way?

    The state alone cannot say: an outgoing migration's source is PAUSED/MIGRATION too, for
    its switch-over. libvirt's QEMU driver answers ``virDomainGetJobStats`` with
    VIR_ERR_OPERATION_UNSUPPORTED ("migration statistics are available only on the source
    host") exactly while the domain's async job is an incoming migration (MIGRATION_IN), at
    once; the source's migration job answers with its statistics, at once too. Any other
    answer (stats, another error) is "no".

    Asked in PAUSED/MIGRATION only. The destination's QEMU is PAUSED/STARTING_UP before that
    (~0.4 s measured), as is a QEMU of a local ``createXML``, but there the call would wait
    for the local start to end (measured 0.6 s; a start waiting in sanlock for a lease could
    take minutes) and then describe a state that is gone. A STARTING_UP domain reads
    ``WaitForLaunch``; the supervisor never destroys such a QEMU for its lease with the
    QEMU holder, since it cannot run guest code before libvirt acquired its leases
    (he_ha/supervisor/observe.py)."""
    if (state, reason) != (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION):
        return False
    try:
        domain.jobStats()
    except libvirt.libvirtError as exc:
        return exc.get_error_code() == libvirt.VIR_ERR_OPERATION_UNSUPPORTED
    return False


def _silence_libvirt_stderr() -> None:
    """libvirt's default error handler prints every error (also the expected "domain not
    found" on hosts not running the VM) to stderr. Errors still arrive as exceptions."""
    global _errors_silenced
    if not _errors_silenced:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _errors_silenced = True


class LibvirtDomain:
    """The engine VM as libvirt sees it.

    ``vm_id``: the domain UUID (hosted-engine.conf ``vmid``) or, if it is not a UUID, its
    name. ``uri``: the connection is opened lazily, and reopened after an error. Or
    ``connection``: an open connection to borrow (never closed or replaced; ``uri`` unused).
    ``timeout``: deadline for each observation.
    """

    def __init__(
        self,
        vm_id: str,
        *,
        uri: str = "qemu:///system",
        connection: libvirt.virConnect | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not vm_id:
            raise ValueError("LibvirtDomain: vm_id must not be empty")
        if connection is None and not uri:
            raise ValueError("LibvirtDomain: the libvirt uri must not be empty")
        require_positive("LibvirtDomain", timeout=timeout)
        self.vm_id = vm_id
        self.uri = uri
        self.timeout = timeout
        self._by_uuid = _is_uuid(vm_id)
        self._borrowed = connection
        self._owned: libvirt.virConnect | None = None
        self._worker = OffLoop(f"libvirt-{vm_id}")
        _silence_libvirt_stderr()

    async def observe(self) -> DomainInfo:
        try:
            return await self._worker.call(self._observe_blocking, self.timeout)
        except (DeadlineExceeded, WorkerBusy) as exc:
            raise LibvirtUnavailable(str(exc)) from None

    async def aclose(self) -> None:
        """Close an owned connection (in the worker, so never under a running call)."""
        try:
            if self._owned is not None:
                await self._worker.call(self._drop_owned, self.timeout)
        except (DeadlineExceeded, WorkerBusy) as exc:
            log.warning("libvirt connection left open: the worker is stuck", uri=self.uri, error=str(exc))
        finally:
            self._worker.close()

    def _connection(self) -> libvirt.virConnect:
        if self._borrowed is not None:
            return self._borrowed
        if self._owned is None:
            self._owned = libvirt.open(self.uri)
        return self._owned

    def _observe_blocking(self) -> DomainInfo:
        try:
            conn = self._connection()
            if self._by_uuid:
                return read_domain(conn, domain_uuid=self.vm_id)
            return read_domain(conn, name=self.vm_id)
        except libvirt.libvirtError as exc:
            if self._owned is not None:
                self._drop_owned()  # reconnect on the next call
            where = "borrowed connection" if self._borrowed is not None else self.uri
            raise LibvirtUnavailable(f"libvirt ({where}): {exc.get_error_message()}") from None

    def _drop_owned(self) -> None:
        conn, self._owned = self._owned, None
        try:
            assert conn is not None
            conn.close()
        except libvirt.libvirtError:
            return  # the connection is already broken; dropping it is all we wanted


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
