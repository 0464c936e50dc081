"""The admin API's view of the supervisor (he_ha.admin.contract.Controller).

``status``, ``decisions`` and ``metrics`` answer from memory, so they work while storage
hangs. The mutating calls have deadlines inside (ha.conf lock, whiteboard write, sanlock,
libvirt) and wake the ticker afterwards, so the state machine reacts at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from he_ha.admin.contract import ClusterStatus, CommandResult, MaintenanceMode, Metric
from he_ha.config import ConfigError
from he_ha.fsm import ActionResult, Outcome
from he_ha.maintenance import MaintenanceFileError, apply_local_flags, plan
from he_ha.monitors import Snapshot
from he_ha.notify import Notifier
from he_ha.storage.codec import GlobalBlock
from he_ha.storage.whiteboard_errors import WhiteboardError
from he_ha.supervisor.board import BoardReader
from he_ha.supervisor.core import Supervisor
from he_ha.supervisor.execute import ActionExecutor
from he_ha.supervisor.lease_holder import LeaseHolder
from he_ha.supervisor.metrics import MetricInputs, build_metrics
from he_ha.supervisor.status import cluster_status
from he_ha.supervisor.ticker import Ticker
from he_ha.vm import LibvirtConnection, VmController, VmError, VmWatch

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT = 300.0  # the guest's own shutdown may take minutes (the FSM's stop timeout)
SHUTDOWN_ANSWER = 5.0  # answer the caller after this long; the shutdown goes on


@dataclass(frozen=True)
class ControllerParts:
    supervisor: Supervisor
    executor: ActionExecutor
    reader: BoardReader
    holder: LeaseHolder
    vm: VmController
    watch: VmWatch
    connection: LibvirtConnection
    snapshot: Snapshot
    notifier: Notifier | None
    ticker: Ticker
    ha_conf: Path
    file_timeout: float


class SupervisorController:
    def __init__(self, parts: ControllerParts) -> None:
        self._p = parts
        self._admin_tasks: set[asyncio.Task[ActionResult]] = set()

    # --- from memory ---------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        p = self._p
        sup = p.supervisor
        latest = p.watch.latest
        return cluster_status(
            host_id=sup.host_id,
            inputs=sup.inputs,
            record=sup.record,
            published=sup.published,
            publishing=sup.publish_error is None and sup.published is not None,
            now=time.monotonic(),
            storage_error=p.reader.error or sup.publish_error,
            vm_here=latest.state.status.value if latest is not None else "unknown",
            hypervisor=p.connection.health.status.value,
        )

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        return self._p.supervisor.decisions.newest(limit)

    def metrics(self) -> list[Metric]:
        p = self._p
        sup = p.supervisor
        return build_metrics(
            MetricInputs(
                record=sup.record,
                inputs=sup.inputs,
                ticks=sup.stats,
                peer_changes=sup.peer_changes,
                last_read=sup.whiteboard.last_read,
                last_write=sup.whiteboard.last_write,
                notifier=p.notifier.stats if p.notifier is not None else None,
                monitor_readings=dict(p.snapshot.published),
                monitor_errors=dict(p.snapshot.failed),
                decisions_dropped=sup.decisions.dropped,
                vm_actions_failed=p.executor.failed,
                lease_held=p.holder.is_held(),
            )
        )

    # --- changes -------------------------------------------------------------------------

    async def set_maintenance(self, mode: MaintenanceMode) -> CommandResult:
        flags = plan(mode)
        p = self._p
        try:
            if flags.global_flag:  # entering global: announce it before clearing local
                await p.supervisor.whiteboard.admin_write_global(GlobalBlock(maintenance=True))
                await apply_local_flags(p.ha_conf, local=False, manual=False, timeout=p.file_timeout)
            else:  # local or none: set local first, so the host is never briefly unprotected by both off
                await apply_local_flags(p.ha_conf, local=flags.local, manual=flags.manual, timeout=p.file_timeout)
                await p.supervisor.whiteboard.admin_write_global(GlobalBlock(maintenance=False))
        except (WhiteboardError, MaintenanceFileError, ConfigError) as exc:
            log.error("maintenance change failed", mode=mode.value, error=str(exc))
            return CommandResult(ok=False, message=f"maintenance {mode.value} not fully applied: {exc}")
        finally:
            p.ticker.wake("admin", f"maintenance {mode.value}")
        log.info("maintenance mode set", mode=mode.value)
        return CommandResult(ok=True, message=f"maintenance mode {mode.value} set",
                             detail={"global": flags.global_flag, "local": flags.local, "manual": flags.manual})

    async def vm_start(self, *, paused: bool = False) -> CommandResult:
        refused = await self._refuse_if_busy_or_running()
        if refused is not None:
            return refused
        result = await self._admin_action("start", self._p.executor.start_vm(paused=paused))
        if result.outcome is Outcome.LEASE_BUSY:
            return CommandResult(ok=False, message=f"refused: another host holds the VM lease ({result.reason})")
        return _command("start", result)

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

    async def _refuse_if_busy_or_running(self) -> CommandResult | None:
        if self._p.executor.busy:
            return CommandResult(ok=False, message="refused: a VM action is already under way here")
        try:
            state = await self._p.vm.state()
        except VmError as exc:
            return CommandResult(ok=False, message=f"refused: the VM state cannot be read: {exc}")
        if state.active:
            return CommandResult(ok=False, message=f"refused: the VM already runs here ({state})")
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
