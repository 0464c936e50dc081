"""Carrying out the state machine's VM actions, each as a task of its own.

A start may wait ~70 s inside sanlock for a dead owner's lease, a shutdown minutes for the
guest: the tick loop must keep publishing meanwhile (peers call a host dead after 60 s of
silence). So ``run`` only starts a task; its ``ActionResult`` (same ``seq``) is handed to
``on_done`` and reaches the state machine in a later tick. ReleaseLease and Notify have no
result. Publish is done by the tick itself (it must finish before the tick does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import libvirt
import structlog

from he_ha.fsm import (
    AcquireLeaseAndStartVm,
    Action,
    ActionResult,
    DestroyVm,
    MigrateVm,
    Notify,
    Outcome,
    ReleaseLease,
    ShutdownVm,
)
from he_ha.monitors import EngineHealthMonitor
from he_ha.notify import Notifier
from he_ha.storage.lease_errors import LeaseError, LeaseHeldElsewhere
from he_ha.storage.lease_layout import wait_deadline
from he_ha.supervisor.lease_holder import LeaseHolder, QemuHolder
from he_ha.supervisor.observe import Completed
from he_ha.vm import (
    DomainSpec,
    DomainXmlError,
    LeaseNotHeld,
    LibvirtCallError,
    MigrationUnsupported,
    VmController,
    VmError,
    VmStatus,
    load_domain_spec,
)

log = structlog.get_logger(__name__)


class SpecSource:
    """The engine VM's domain XML, re-read from vm.conf (or plain XML) at every start."""

    def __init__(self, path: Path, spec: DomainSpec) -> None:
        self.path = path
        self.domain = spec.id
        self.loaded_at = time.monotonic()  # published as vm_conf_refresh_time
        self.loaded_epoch = time.time() - self.loaded_at

    async def load(self) -> DomainSpec:
        spec = await asyncio.to_thread(load_domain_spec, self.path)
        if spec.id != self.domain:
            raise DomainXmlError(f"{self.path} now describes {spec.id}, not the engine VM {self.domain}; restart he-ha")
        self.loaded_at = time.monotonic()
        self.loaded_epoch = time.time() - self.loaded_at
        return spec


def _is_lock_failure(exc: LibvirtCallError) -> bool:
    """libvirt's sanlock plugin could not acquire the lease at launch."""
    return exc.code == libvirt.VIR_ERR_RESOURCE_BUSY or "Failed to acquire lock" in exc.message


class ActionExecutor:
    def __init__(
        self,
        *,
        vm: VmController,
        holder: LeaseHolder,
        specs: SpecSource,
        health: EngineHealthMonitor,
        notifier: Notifier | None,
        on_done: Callable[[Completed], None],
        migrate_uri: str,
        io_timeout: int,
    ) -> None:
        self._vm = vm
        self._holder = holder
        self._specs = specs
        self._health = health
        self._notifier = notifier
        self._on_done = on_done
        self._migrate_uri = migrate_uri
        self._acquire_timeout = wait_deadline(io_timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        self._vm_busy = 0  # VM actions under way (FSM's or admin's)
        self._releasing = False
        self.started = 0
        self.failed = 0

    @property
    def busy(self) -> bool:
        return self._vm_busy > 0

    def run(self, action: Action) -> None:
        if isinstance(action, AcquireLeaseAndStartVm):
            self._spawn(self._reporting(action.seq, "start", self.start_vm()))
        elif isinstance(action, ShutdownVm):
            self._spawn(self._reporting(action.seq, "shutdown", self._shutdown(action.timeout)))
        elif isinstance(action, DestroyVm):
            self._spawn(self._reporting(action.seq, "destroy", self._destroy(action.reason)))
        elif isinstance(action, MigrateVm):
            self._spawn(self._reporting(action.seq, "migrate", self._migrate(action)))
        elif isinstance(action, ReleaseLease):
            if not self._releasing:
                self._spawn(self._release(action.reason))
        elif isinstance(action, Notify):
            old, _, new = action.transition.partition("-")
            if self._notifier is not None:
                self._notifier.state_transition(old, new)  # queues; never waits for SMTP

    async def stop(self) -> None:
        """Supervisor shutdown: abandon what runs (a started launch may still complete in
        libvirt: its lease stays with its holder, and the next supervisor adopts both)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reporting(self, seq: int, what: str, work: object) -> None:
        self._vm_busy += 1
        try:
            result: ActionResult = await work  # type: ignore[misc]
        except Exception as exc:  # a bug must not leave the FSM waiting for a result
            log.exception("VM action raised", action=what, seq=seq)
            result = ActionResult(seq, Outcome.FAILED, f"{what}: unexpected {type(exc).__name__}: {exc}")
        finally:
            self._vm_busy -= 1
        result = ActionResult(seq, result.outcome, result.reason)
        if result.outcome is not Outcome.OK:
            self.failed += 1
        log.info("VM action done", action=what, seq=seq, outcome=result.outcome.value, reason=result.reason)
        self._health.poke()  # the result goes to the FSM with a reading taken after it
        self._on_done(Completed(result, time.monotonic()))

    async def admin(self, work: Awaitable[ActionResult]) -> ActionResult:
        """An admin-requested VM action: counted as busy like the FSM's, no FSM result."""
        self._vm_busy += 1
        try:
            return await work
        finally:
            self._vm_busy -= 1
            self._health.poke()

    # --- the actions (also used by the admin API) ------------------------------------------

    async def start_vm(self, *, paused: bool = False, spec: DomainSpec | None = None) -> ActionResult:
        """Acquire the lease, then launch (invariant 1). seq is filled in by the caller.

        ``spec``: launch this definition (an admin's recovery vm.conf, already checked to
        describe the engine VM) instead of re-reading the configured vm.conf."""
        try:
            await self._holder.acquire(self._acquire_timeout)
        except LeaseHeldElsewhere as exc:
            self._health.report_lock_conflict()
            return ActionResult(0, Outcome.LEASE_BUSY, str(exc))
        except LeaseError as exc:
            return ActionResult(0, Outcome.FAILED, f"VM lease: {exc}")
        try:
            launch = self._holder.prepare(spec or await self._specs.load())
            started = await self._vm.start(launch, self._holder, paused=paused)
        except LeaseNotHeld as exc:
            return ActionResult(0, Outcome.FAILED, str(exc))
        except LibvirtCallError as exc:
            if isinstance(self._holder, QemuHolder) and _is_lock_failure(exc):
                self._health.report_lock_conflict()
                return ActionResult(0, Outcome.LEASE_BUSY, str(exc))
            return ActionResult(0, Outcome.FAILED, f"start: {exc}")
        except (VmError, DomainXmlError) as exc:
            return ActionResult(0, Outcome.FAILED, f"start: {exc}")
        finally:
            self._holder.launched()
        self.started += 1
        return ActionResult(0, Outcome.OK, f"{started.outcome.value}: {started.state}")

    async def shutdown(self, timeout: float) -> ActionResult:
        return await self._shutdown(timeout)

    async def destroy(self, reason: str) -> ActionResult:
        return await self._destroy(reason)

    async def _shutdown(self, timeout: float) -> ActionResult:
        try:
            stopped = await self._vm.shutdown(timeout)
        except VmError as exc:
            return ActionResult(0, Outcome.FAILED, f"shutdown request: {exc}")
        # OK = the request was accepted; the FSM watches the VM and escalates on its timer.
        return ActionResult(0, Outcome.OK, f"shutdown: {stopped.outcome.value}")

    async def _destroy(self, reason: str) -> ActionResult:
        log.warning("destroying the engine VM", reason=reason)
        try:
            stopped = await self._vm.destroy()
        except VmError as exc:
            return ActionResult(0, Outcome.FAILED, f"destroy: {exc}")
        return ActionResult(0, Outcome.OK, f"destroy: {stopped.outcome.value}")

    async def _migrate(self, action: MigrateVm) -> ActionResult:
        if not isinstance(self._holder, QemuHolder):
            # The lease is held outside QEMU: the target could not take it with the VM.
            reason = f"live migration needs --lease-holder qemu (have {self._holder.kind})"
            return ActionResult(0, Outcome.FAILED, reason)
        uri = self._migrate_uri.format(hostname=action.target_hostname, host_id=action.target_host_id)
        try:
            state = await self._vm.migrate(uri)
        except MigrationUnsupported as exc:
            return ActionResult(0, Outcome.FAILED, str(exc))
        except VmError as exc:
            return ActionResult(0, Outcome.FAILED, f"migrate to {uri}: {exc}")
        if state.active:
            return ActionResult(0, Outcome.FAILED, f"migration to {uri} returned but the VM is still {state} here")
        return ActionResult(0, Outcome.OK, f"migrated to {uri}")

    async def _release(self, reason: str) -> None:
        """Invariant 2: release only if libvirt confirms no VM process is left here."""
        self._releasing = True
        try:
            if self.busy:
                log.info("lease release postponed: a VM action is under way", reason=reason)
                return
            try:
                state = await self._vm.state()
            except VmError as exc:
                log.warning("lease release postponed: the VM state cannot be read", error=str(exc))
                return
            if state.active or state.status is VmStatus.UNKNOWN:
                log.warning("lease release refused: the VM is not gone here", state=str(state))
                return
            await self._holder.release()
            log.info("VM lease released", reason=reason)
        except LeaseError as exc:
            log.error("VM lease release failed", error=str(exc))
        finally:
            self._releasing = False
