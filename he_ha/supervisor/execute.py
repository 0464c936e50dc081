"""Carrying out the state machine's VM actions, each as a task of its own.

A start may wait ~70 s inside sanlock for a dead owner's lease, a shutdown minutes for the
guest: the tick loop must keep publishing meanwhile (peers call a host dead after 60 s of
silence). So ``run`` only starts a task; its ``ActionResult`` (same ``seq``) is handed to
``on_done`` and reaches the state machine in a later tick. ReleaseLease and Notify have no
result. Publish is done by the tick itself (it must finish before the tick does).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from he_ha.lease import LeaseError, LeaseHeldElsewhere, wait_deadline
from he_ha.offloop import Lane, LaneError
from he_ha.ovirt.ovf import describe_changes
from he_ha.ovirt.vm_definition import (
    BAD,
    DefinitionPlan,
    Expected,
    Resolution,
    SourceNote,
    VmDefinition,
)
from he_ha.supervisor.engine_launch import EngineXmlPreparer, LaunchXml
from he_ha.supervisor.env import (
    SYSTEM_CLOCK,
    Clock,
    Definitions,
    HealthProbe,
    Notifications,
    VmControl,
)
from he_ha.supervisor.lease_holder import LeaseHolder, QemuHolder
from he_ha.supervisor.observe import Completed
from he_ha.vm import (
    DomainId,
    DomainSpec,
    DomainXmlError,
    LibvirtCallError,
    MigrationUnsupported,
    StartWithoutLease,
    VmError,
    VmStatus,
)

log = structlog.get_logger(__name__)


DEFINITION_REFRESH = 60.0  # seconds between refreshes of the VM definition (it is also refreshed before every start)


class DefinitionUnavailable(DomainXmlError):
    """No startable VM definition is known: the start is refused; the message names what is missing."""


@dataclass(frozen=True)
class DefinitionState:
    """What status and metrics show about the VM definition (from memory)."""

    usable: bool  # a start can be made: a definition with domain XML is known
    source: str | None  # the source of the definition in use (vm_definition.CONF, LAST_GOOD, ...); None: none
    origin: str | None  # the file it was read from
    age: float | None  # seconds since it was last read from that source
    problem: str | None  # why no source gives a startable definition now, or a file that cannot be written


@dataclass(frozen=True)
class Refreshed:
    found: Resolution  # what the sources gave
    now: Resolution  # what they give after the files were written (``found`` if none was)
    in_use: VmDefinition | None  # what was written
    written: list[Path]
    problems: list[str]  # files that could not be written


class SpecSource:
    """The engine VM's definition, refreshed from its sources (he_ha/ovirt/vm_definition.py) at
    start-up, every ``period`` seconds (``run``) and before every start (``load``), and written
    to the ``conf`` path and the last-good copy when it changes.

    The definition last obtained with domain XML stays in memory: when no source gives one any
    more (files removed, a bad edit), supervision goes on with it, starts use it, and the
    problem is shown in status, metrics and one log line per change. Only when none was ever
    obtained is a start refused (``DefinitionUnavailable``). The reads and writes run on a
    thread of their own under a deadline; a refresh that hangs (the configuration volume on
    stalled storage) is reported and the next one is refused until it returns.
    """

    def __init__(
        self,
        plan: DefinitionPlan,
        identity: DomainId,
        first: Resolution,
        *,
        timeout: float,
        period: float = DEFINITION_REFRESH,
    ) -> None:
        self.plan = plan
        self.domain = identity
        self.period = period
        self._timeout = timeout
        where = plan.expected.where if plan.expected.vm_id else f"the VM {identity} he-ha started with"
        self._expected = Expected(identity.uuid, where, identity.name)
        self._lane = Lane("vm-definition")
        now = time.monotonic()
        self._current = first.definition  # the last definition with domain XML
        self._partial = first.partial  # identity and memory only (used while _current is None)
        self._read_at = now if first.best is not None else None  # when the one in use was read from its source
        self._problem: str | None = None  # set (and logged) by the first refresh
        self._notes: set[str] = set()
        self._memory_listeners: list[Callable[[int], None]] = []
        self.loaded_at = now  # published as vm_conf_refresh_time
        self.loaded_epoch = time.time() - now
        in_use = first.best
        log.info(
            "VM definition",
            source=in_use.source if in_use else None,
            origin=in_use.origin if in_use else None,
            startable=first.definition is not None,
            vm=str(identity),
        )

    # --- what status and metrics read ----------------------------------------------------

    def state(self, now: float | None = None) -> DefinitionState:
        in_use = self._current or self._partial
        read_at = self._read_at
        age = None if read_at is None else round((time.monotonic() if now is None else now) - read_at, 3)
        return DefinitionState(
            usable=self._current is not None,
            source=in_use.source if in_use else None,
            origin=in_use.origin if in_use else None,
            age=age,
            problem=self._problem,
        )

    def in_use(self) -> VmDefinition | None:
        """The definition in use: the last one with domain XML, else identity and memory only."""
        return self._current or self._partial

    def on_memory(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(MiB)`` when the VM's memory size becomes known or changes."""
        self._memory_listeners.append(listener)

    # --- refreshing ------------------------------------------------------------------------

    async def load(self) -> DomainSpec:
        """The domain XML to start from, refreshed first; DefinitionUnavailable if none is known."""
        await self.refresh("start")
        if self._current is None or self._current.spec is None:
            raise DefinitionUnavailable(self._problem or "no usable VM definition")
        return self._current.spec

    async def refresh(self, why: str) -> None:
        try:
            done = await self._lane.run("refresh", self._refresh_blocking, self._timeout)
        except LaneError as exc:
            self._set_problem(f"the VM definition could not be refreshed: {exc}", why)
            return
        best = done.now.best or done.found.best
        self._log_notes(done.found.notes + done.now.notes, best.remarks if best is not None else ())
        for path in done.written:
            log.info(
                "VM definition written",
                path=str(path),
                source=done.in_use.source if done.in_use else None,
                origin=done.in_use.origin if done.in_use else None,
                why=why,
            )
        self._apply(done.now, done.problems, [why])

    async def run(self, stopping: asyncio.Event) -> None:
        """Refresh every ``period`` seconds until ``stopping``."""
        while True:
            try:
                await asyncio.wait_for(stopping.wait(), self.period)
                return
            except TimeoutError:
                pass
            try:
                await self.refresh("periodic")
            except Exception:  # a bug must not end supervision: the next period tries again
                log.exception("VM definition refresh raised")

    def close(self) -> None:
        self._lane.close()

    def _refresh_blocking(self) -> Refreshed:
        found = self.plan.resolve(self._expected)
        in_use = found.definition or self._current or found.partial
        if in_use is None:
            return Refreshed(found, found, None, [], [])
        written, problems = self.plan.write(in_use)
        # What the sources hold now: the conf path (or the last-good copy) may just have been put right.
        now = self.plan.resolve(self._expected) if written else found
        return Refreshed(found, now, in_use, written, problems)

    def _apply(self, resolution: Resolution, problems: list[str], why: list[str]) -> None:
        now = time.monotonic()
        found = resolution.definition
        if found is not None:
            before = self._current or self._partial
            if before is None or found.lines != before.lines:
                changes = None if before is None else describe_changes(before.values(), found.values())
                log.info(
                    "VM definition",
                    source=found.source,
                    origin=found.origin,
                    vm=str(found.identity),
                    changes=changes,
                    before=None if before is None else before.origin,
                )
            self._current, self._read_at = found, now
            self.loaded_at, self.loaded_epoch = now, time.time() - now
        elif resolution.partial is not None and self._current is None:
            self._partial, self._read_at = resolution.partial, now
        problem = resolution.problem()
        if problem is not None and self._current is not None:
            problem += f"; starts use the last good definition, read from {self._current.origin}"
        self._set_problem("; ".join(p for p in (problem, *problems) if p) or None, *why)
        in_use = self._current or self._partial
        if in_use is not None and in_use.memory_mib is not None:
            for listener in self._memory_listeners:
                listener(in_use.memory_mib)

    def _log_notes(self, seen: tuple[SourceNote, ...], remarks: tuple[str, ...] = ()) -> None:
        """Each source note (and each remark of the definition taken) once, when it appears
        (one that goes and comes back is logged again)."""
        notes = {str(note): note for note in seen}
        for text, note in notes.items():
            if text in self._notes:
                continue
            if note.kind == BAD:
                log.warning("VM definition source not used", source=note.source, problem=note.problem)
            else:  # nothing there, or no domain XML: expected after a reboot or on a 4.4+ deployment
                log.info("VM definition source not used", source=note.source, problem=note.problem)
        for remark in remarks:
            if remark not in self._notes:
                log.info("VM definition remark", remark=remark)
        self._notes = set(notes) | set(remarks)

    def _set_problem(self, problem: str | None, *why: str) -> None:
        if problem == self._problem:
            return
        if problem is not None:
            log.warning("VM definition problem", problem=problem, usable=self._current is not None, why=list(why))
        else:
            in_use = self._current or self._partial
            log.info("VM definition usable", source=in_use.source if in_use else None, why=list(why))
        self._problem = problem


def _is_lock_failure(exc: LibvirtCallError) -> bool:
    """libvirt's sanlock plugin could not acquire the lease at launch."""
    return exc.code == libvirt.VIR_ERR_RESOURCE_BUSY or "Failed to acquire lock" in exc.message


class ActionExecutor:
    def __init__(
        self,
        *,
        vm: VmControl,
        holder: LeaseHolder,
        specs: Definitions,
        health: HealthProbe | None,
        notifier: Notifications | None,
        on_done: Callable[[Completed], None],
        migrate_uri: str,
        io_timeout: int,
        engine_xml: EngineXmlPreparer | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._vm = vm
        self._holder = holder
        self._specs = specs
        self._engine_xml = engine_xml  # None: domain XML goes to libvirt as it is (no resolution)
        self._health = health  # None: no monitor to tell (the shim's start without the daemon)
        self._notifier = notifier
        self._on_done = on_done
        self._migrate_uri = migrate_uri
        self._clock = clock
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
            if self._notifier is None:
                return
            if action.alert is not None:  # an alert raised (issue 14): mailed whatever the transition rule
                self._notifier.alert(action.alert, action.reason)  # queues; never waits for SMTP
                return
            old, _, new = action.transition.partition("-")
            self._notifier.state_transition(old, new)  # queues; never waits for SMTP

    async def stop(self) -> None:
        """Supervisor shutdown: abandon what runs (a started launch may still complete in
        libvirt: its lease stays with its holder, and the next supervisor adopts both)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
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
        self._poke_health()  # the result goes to the FSM with a reading taken after it
        self._on_done(Completed(result, self._clock.monotonic()))

    async def admin(self, work: Awaitable[ActionResult]) -> ActionResult:
        """An admin-requested VM action: counted as busy like the FSM's, no FSM result."""
        self._vm_busy += 1
        try:
            return await work
        finally:
            self._vm_busy -= 1
            self._poke_health()

    def _poke_health(self) -> None:
        if self._health is not None:
            self._health.poke()

    def _lock_conflict(self) -> None:
        if self._health is not None:
            self._health.report_lock_conflict()

    # --- the actions (also used by the admin API) ------------------------------------------

    async def start_vm(self, *, paused: bool = False, spec: DomainSpec | None = None) -> ActionResult:
        """Acquire the lease, then launch (invariant 1). seq is filled in by the caller.

        ``spec``: launch this definition (an admin's recovery vm.conf, already checked to
        describe the engine VM) instead of the refreshed VM definition. Without a definition
        to start from, or when the engine XML cannot be resolved (a placeholder, a volume, a
        network: he_ha/supervisor/engine_launch.py), the start fails before the lease is
        touched and nothing reaches libvirt."""
        try:
            if spec is None:
                spec = await self._specs.load()  # names each source and what it lacks
            launch_xml = await self._launch_xml(spec)
        except DomainXmlError as exc:
            return ActionResult(0, Outcome.FAILED, str(exc))
        except VmError as exc:  # libvirt could not be asked about the networks
            return ActionResult(0, Outcome.FAILED, f"start: the engine VM's networks: {exc}")
        spec = launch_xml.spec
        # he-ha's lease, taken here, protects the VM. The engine's own disk lease
        # (launch_xml.engine_lease) is added beside it by the QEMU holder, which the preparer
        # told about it (lease_holder.QemuHolder.choose); the other holders leave it out.
        try:
            await self._holder.acquire(self._acquire_timeout)
        except LeaseHeldElsewhere as exc:
            self._lock_conflict()
            return ActionResult(0, Outcome.LEASE_BUSY, str(exc))
        except LeaseError as exc:
            return ActionResult(0, Outcome.FAILED, f"VM lease: {exc}")
        try:
            launch = self._holder.prepare(spec)
            started = await self._vm.start(launch, self._holder, paused=paused)
        except StartWithoutLease as exc:
            return ActionResult(0, Outcome.FAILED, str(exc))
        except LibvirtCallError as exc:
            if self._holder.held_by_qemu and _is_lock_failure(exc):
                self._lock_conflict()
                return ActionResult(0, Outcome.LEASE_BUSY, str(exc))
            return ActionResult(0, Outcome.FAILED, f"start: {exc}")
        except (VmError, DomainXmlError) as exc:
            return ActionResult(0, Outcome.FAILED, f"start: {exc}")
        finally:
            self._holder.launched()
        self.started += 1
        return ActionResult(0, Outcome.OK, f"{started.outcome.value}: {started.state}")

    async def _launch_xml(self, spec: DomainSpec) -> LaunchXml:
        if self._engine_xml is None:
            return LaunchXml(spec, None)
        return await self._engine_xml.prepare(spec)

    async def preview_launch(self) -> LaunchXml:
        """The domain XML a start would hand libvirt now, from the definition in use (not
        refreshed): resolved, then through the lease holder's own ``prepare``, as ``start_vm``
        does (the QEMU holder: he-ha's ``<lease>``, then the engine's disk lease when the
        definition carries one). Creates no network, joins no lockspace, leaves the holder as it
        was. DomainXmlError when there is no usable definition or it does not resolve."""
        definition = self._specs.in_use()
        if definition is None or definition.spec is None:
            raise DefinitionUnavailable(self._specs.state().problem or "no usable VM definition")
        if self._engine_xml is None:
            launch = LaunchXml(definition.spec, None)
        else:
            launch = await self._engine_xml.resolve(definition.spec)
        holder = self._holder
        if isinstance(holder, QemuHolder):
            # A copy of the holder, told this start's engine lease as the preparer tells the
            # real one (choose) and marked as if acquire had joined its lockspace <SD>: its
            # prepare then builds the very XML the launch would, while the real holder's
            # single-use start state (and is_held) stays untouched.
            holder = copy.copy(holder)
            holder.choose(launch.engine_lease)
            holder._ready = launch.engine_lease  # what acquire records after joining <SD>
        return LaunchXml(holder.prepare(launch.spec), launch.resolved)

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
        if not self._holder.held_by_qemu:
            # The lease is held outside QEMU: the target could not take it with the VM.
            reason = f"live migration needs --lease-holder qemu (have {self._holder.kind})"
            return ActionResult(0, Outcome.FAILED, reason)
        uri = self._migrate_uri.format(hostname=action.target_hostname, host_id=action.target_host_id)
        try:
            state = await self._vm.migrate(uri, deadline=action.deadline)
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
            if self.busy:  # a start began while libvirt was asked: the lease may be its, just taken
                log.info("lease release postponed: a VM action began meanwhile", reason=reason)
                return
            await self._holder.release()
            log.info("VM lease released", reason=reason)
        except LeaseError as exc:
            log.error("VM lease release failed", error=str(exc))
        finally:
            self._releasing = False
