"""The admin API's view of the supervisor (he_ha.admin.contract.Controller), and the
broker socket's (he_ha.broker_socket.BrokerBackend).

``status``, ``decisions``, ``metrics`` and the broker's reads answer from memory, so they
work while storage hangs: from the newest ``StatusSnapshot`` (tick_snapshot.py; never the
supervisor's own fields, which a tick under way is changing) and from the sources that keep
their own state outside the tick, named in ``ControllerParts``. The mutating calls have deadlines inside (ha.conf lock, whiteboard
write, sanlock, libvirt) and wake the ticker afterwards, so the state machine reacts at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from he_ha.admin.contract import (
    ClusterStatus,
    CommandResult,
    MaintenanceMode,
    Metric,
    Refusal,
    VmDefinitionDetail,
)
from he_ha.config import ConfigError
from he_ha.fsm import ActionResult, Outcome
from he_ha.maintenance import MaintenanceFileError, apply_local_flags, plan
from he_ha.monitors import ReadingsSnapshot
from he_ha.notify import Notifier
from he_ha.supervisor.board import BoardRead, BoardReader
from he_ha.supervisor.decisions import DecisionLog
from he_ha.supervisor.execute import ActionExecutor, SpecSource
from he_ha.supervisor.host_parts import (
    RecoveryConfRefused,
    recovery_spec,
    start_answer,
    vnc_ticket,
)
from he_ha.supervisor.lease_holder import LeaseHolder
from he_ha.supervisor.lockspace_reset import LockspaceReset
from he_ha.supervisor.metrics import MetricInputs, build_metrics
from he_ha.supervisor.status import cluster_status, definition_detail, launch_view
from he_ha.supervisor.tick_snapshot import StatusFeed
from he_ha.supervisor.ticker import Ticker
from he_ha.vm import (
    DomainSpec,
    DomainXmlError,
    LibvirtConnection,
    VmController,
    VmError,
    VmWatch,
)
from he_ha.whiteboard import GlobalBlock, Whiteboard, WhiteboardError

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT = 300.0  # the guest's own shutdown may take minutes (the FSM's stop timeout)
SHUTDOWN_ANSWER = 5.0  # answer the caller after this long; the shutdown goes on

# The original's text (spec/hosted-engine-cli.md §4), so the API and the CLI say the same.
# The original refused whenever the VM ran here; he-ha vacates the host (live migration, or
# a clean restart on the best peer) and refuses only when no other host could take the VM.
LOCAL_REFUSED = (
    "Unable to enter local maintenance mode: the engine VM is running on the current host, "
    "please migrate it before entering local maintenance mode."
)
NO_TARGET = "no other live host with a positive score, out of maintenance and without the VM, can take it"
GLOBAL_WRITE_DEADLINE = 50.0  # write and read-back of slot 0; VDSM gives up on setHaMaintenanceMode after 60 s


@dataclass(frozen=True)
class ControllerParts:
    """What the controller reads and acts on. Status and metrics come from ``feed`` (the
    tick's snapshot) and from these sources that count or watch on their own, outside the
    tick: the whiteboard's call statistics, the decision log's ring and drop count, the
    executor's failures, the lease holder, the VM watch (the VM's state here), the libvirt
    connection's health, the monitors' reading counts, the notifier's counts and the VM
    definition (``specs``, refreshed by its own task)."""

    feed: StatusFeed
    hostname: str
    specs: SpecSource
    whiteboard: Whiteboard  # the real ones behind the supervisor's HostEnv (env.py)
    decisions: DecisionLog
    executor: ActionExecutor
    reader: BoardReader  # for the read-back of a global maintenance write (its result reaches feed too)
    holder: LeaseHolder
    vm: VmController
    watch: VmWatch
    connection: LibvirtConnection
    snapshot: ReadingsSnapshot
    notifier: Notifier | None
    ticker: Ticker
    ha_conf: Path
    file_timeout: float
    lockspace_reset: LockspaceReset


class SupervisorController:
    def __init__(self, parts: ControllerParts) -> None:
        self._p = parts
        self._admin_tasks: set[asyncio.Task[ActionResult]] = set()
        self._global_write = asyncio.Lock()  # one write-and-read-back of slot 0 at a time

    # --- from memory ---------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        p = self._p
        snap = p.feed.current
        latest = p.watch.latest
        return cluster_status(
            host_id=snap.host_id,
            inputs=snap.inputs,
            record=snap.record,
            published=snap.published,
            publishing=snap.publishing,
            now=time.monotonic(),
            storage_error=snap.storage_error,
            # not the tick's: the VM watch, libvirt's health and the definition (ControllerParts)
            vm_here=latest.state.status.value if latest is not None else "unknown",
            hypervisor=p.connection.health.status.value,
            definition=p.specs.state(),
        )

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        return self._p.decisions.newest(limit)

    def metrics(self) -> list[Metric]:
        p = self._p
        snap = p.feed.current
        return build_metrics(
            MetricInputs(
                record=snap.record,
                inputs=snap.inputs,
                ticks=snap.ticks,
                peer_changes=snap.peer_changes,
                # the rest is counted outside the tick by its own source (ControllerParts)
                last_read=p.whiteboard.last_read,
                last_write=p.whiteboard.last_write,
                notifier=p.notifier.stats if p.notifier is not None else None,
                monitor_readings=dict(p.snapshot.published),
                monitor_errors=dict(p.snapshot.failed),
                decisions_dropped=p.decisions.dropped,
                vm_actions_failed=p.executor.failed,
                lease_held=p.holder.is_held(),
                vm_definition=p.specs.state(),
                storage=p.whiteboard.durations,
                probes=p.snapshot.durations,
            )
        )

    def latest_board(self) -> BoardRead | None:
        return self._p.feed.current.board

    def board_error(self) -> str | None:
        return self._p.feed.current.board_error

    def live_host_ids(self) -> list[int]:
        """The hosts the status shows live: this one while it publishes, peers per the FSM's view."""
        return [host.host_id for host in self.status().hosts if host.live]

    def vm_definition(self) -> VmDefinitionDetail:
        specs = self._p.specs
        return definition_detail(specs.state(), specs.in_use())

    async def launch_preview(self) -> VmDefinitionDetail:
        detail = self.vm_definition()
        try:
            launch = await self._p.executor.preview_launch()
        except (DomainXmlError, VmError) as exc:
            return detail.model_copy(update={"launch_error": str(exc)})
        return detail.model_copy(update={"launch": launch_view(launch)})

    # --- changes -------------------------------------------------------------------------

    async def set_maintenance(self, mode: MaintenanceMode) -> CommandResult:
        flags = plan(mode)
        p = self._p
        if mode is MaintenanceMode.LOCAL:
            # Local maintenance would make this host give up the VM; the original refused
            # it while the VM runs here: migrate it (or stop it) first.
            try:
                state = await p.vm.state()
            except VmError as exc:
                return CommandResult(ok=False, message=f"refused: cannot tell whether the engine VM runs here: {exc}")
            if state.active and not self._peer_can_take_vm():
                return CommandResult(
                    ok=False,
                    message=f"{LOCAL_REFUSED} ({NO_TARGET})",
                    detail={"refusal": Refusal.VM_RUNNING_HERE.value, "vm": state.status.value},
                )
        # Slot 0 is written and read back (set_global_maintenance), as for the broker socket.
        try:
            if flags.global_flag:  # entering global: announce it before clearing local
                written = await self.set_global_maintenance(True)
                if not written.ok:
                    return CommandResult(ok=False, message=f"maintenance {mode.value} not applied: {written.message}")
                await apply_local_flags(p.ha_conf, local=False, manual=False, timeout=p.file_timeout)
            else:  # local or none: set local first, so the host is never briefly unprotected by both off
                await apply_local_flags(p.ha_conf, local=flags.local, manual=flags.manual, timeout=p.file_timeout)
                written = await self.set_global_maintenance(False)
                if not written.ok:
                    return CommandResult(
                        ok=False, message=f"maintenance {mode.value} not fully applied: {written.message}"
                    )
        except (MaintenanceFileError, ConfigError) as exc:
            log.error("maintenance change failed", mode=mode.value, error=str(exc))
            return CommandResult(ok=False, message=f"maintenance {mode.value} not fully applied: {exc}")
        finally:
            p.ticker.wake("admin", f"maintenance {mode.value}")
        log.info("maintenance mode set", mode=mode.value)
        return CommandResult(
            ok=True,
            message=f"maintenance mode {mode.value} set",
            detail={"global": flags.global_flag, "local": flags.local, "manual": flags.manual},
        )

    async def set_global_maintenance(self, on: bool) -> CommandResult:
        """Slot 0 alone (the broker socket's put_stats; ha.conf is not touched), answered only
        once a whiteboard read that started after the write shows the value."""
        p = self._p
        what = f"global maintenance {'on' if on else 'off'}"
        try:
            async with asyncio.timeout(GLOBAL_WRITE_DEADLINE), self._global_write:
                await p.whiteboard.admin_write_global(GlobalBlock(maintenance=on))
                written = time.monotonic()
                read = await p.reader.read()
                while read.read_at - read.duration < written:  # a read already under way: not proof
                    read = await p.reader.read()
        except WhiteboardError as exc:
            return CommandResult(ok=False, message=f"{what}: not written and read back: {exc}")
        except TimeoutError:
            return CommandResult(
                ok=False, message=f"{what}: not written and read back within {GLOBAL_WRITE_DEADLINE:g} s"
            )
        finally:
            p.ticker.wake("admin", what)
        raw = read.raw
        if raw.global_error is not None:
            return CommandResult(
                ok=False, message=f"{what}: written, but the read-back is unusable: {raw.global_error}"
            )
        seen = raw.global_block is not None and raw.global_block.maintenance
        if seen != on:
            return CommandResult(
                ok=False,
                message=f"{what}: written, but read back as maintenance={int(seen)}: "
                "another host wrote the global block since (the last writer wins)",
            )
        log.info("global maintenance set and read back", on=on)
        return CommandResult(ok=True, message=f"{what}: written and read back")

    async def reset_lockspace(self) -> CommandResult:
        return await self._p.lockspace_reset.run(self.status().global_maintenance)

    def _peer_can_take_vm(self) -> bool:
        """The state machine's migration-target rule, on the view the status shows."""
        status = self.status()
        return any(
            h.live
            and not h.local
            and (h.score or 0) > 0
            and not h.maintenance
            and not h.stopped
            and (h.engine_status or {}).get("vm") != "up"
            for h in status.hosts
        )

    async def vm_start(self, *, paused: bool = False, vm_conf: Path | None = None) -> CommandResult:
        refused = await self._refuse_if_busy_or_running()
        if refused is not None:
            return refused
        spec: DomainSpec | None = None
        if vm_conf is not None:
            try:
                spec = await recovery_spec(vm_conf, self._p.vm.domain, self._p.file_timeout)
            except RecoveryConfRefused as exc:
                return CommandResult(ok=False, message=str(exc))
            log.warning("engine VM start from an alternative vm.conf", path=str(vm_conf))
        return start_answer(await self._admin_action("start", self._p.executor.start_vm(paused=paused, spec=spec)))

    async def vm_shutdown(self) -> CommandResult:
        task = asyncio.ensure_future(self._admin_action("shutdown", self._p.executor.shutdown(SHUTDOWN_TIMEOUT)))
        self._admin_tasks.add(task)
        task.add_done_callback(self._admin_tasks.discard)
        try:
            result = await asyncio.wait_for(asyncio.shield(task), SHUTDOWN_ANSWER)
        except TimeoutError:
            return CommandResult(ok=True, message="shutdown requested; the guest is shutting down")
        return _command("shutdown", result)

    async def vm_poweroff(self) -> CommandResult:
        return _command("poweroff", await self._admin_action("poweroff", self._p.executor.destroy("admin poweroff")))

    async def console_password(self, password: str, ttl: int) -> CommandResult:
        p = self._p
        answer = await vnc_ticket(p.connection, p.vm.domain, password, ttl, p.hostname)
        if answer.ok:
            log.info("VNC password set", ttl=ttl, **answer.detail)
        return answer

    async def _refuse_if_busy_or_running(self) -> CommandResult | None:
        if self._p.executor.busy:
            return CommandResult(ok=False, message="refused: a VM action is already under way here")
        try:
            state = await self._p.vm.state()
        except VmError as exc:
            return CommandResult(ok=False, message=f"refused: the VM state cannot be read: {exc}")
        if state.active:
            return CommandResult(
                ok=False,
                message=f"refused: the VM already runs here ({state})",
                detail={"refusal": Refusal.VM_RUNNING_HERE.value, "vm": state.status.value},
            )
        return None

    async def _admin_action(self, what: str, work: Any) -> ActionResult:
        log.info("admin VM action", action=what)
        try:
            return await self._p.executor.admin(work)
        finally:
            self._p.ticker.wake("admin", f"vm {what}")

    async def close(self) -> None:
        for task in list(self._admin_tasks):
            task.cancel()
        await asyncio.gather(*self._admin_tasks, return_exceptions=True)


def _command(what: str, result: ActionResult) -> CommandResult:
    return CommandResult(ok=result.outcome is Outcome.OK, message=f"{what}: {result.reason or result.outcome.value}")
