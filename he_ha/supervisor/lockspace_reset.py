"""``reset_lockspace`` of the broker socket: ``hosted-engine --reinitialize-lockspace`` without
``--force``, run inside the daemon (he_ha/repair/reinit_lockspace.py does the work).

The guards are the command's: refused outside global maintenance and while storage shows a
host active. This daemon is such a host as long as it holds its host id, which is the normal
case, so the call is then refused at once, from this host's sanlock daemon's answer, without
watching storage. It rewrites only when this daemon has lost its host id (e.g. the lockspace
was damaged under it) and the watch finds global maintenance and nobody else active. Every
refusal says how to proceed: stop he-ha on every host and run the command.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import structlog

from he_ha.admin.contract import CommandResult
from he_ha.lease import LeaseClient, LeaseError, Lockspace, LockspaceState, VmLease

log = structlog.get_logger(__name__)

# The watch lasts 3 x the lockspace's io timeout (30 s at sanlock's default of 10 s), the
# rewrite and its read-back a few io timeouts more.
RESET_DEADLINE = 180.0
HOW_TO_PROCEED = (
    "To reinitialize the lockspace: set global maintenance, stop he-ha on every host "
    "(systemctl stop he-ha) and run hosted-engine --reinitialize-lockspace there."
)


@dataclass(frozen=True)
class LockspaceReset:
    client: LeaseClient  # this host's sanlock daemon, through the daemon's lease worker
    lockspace: Lockspace  # as this daemon joined it
    host_id: int
    metadata: Path
    vm_lease: VmLease
    query_timeout: float

    async def run(self, global_maintenance: bool | None) -> CommandResult:
        """``global_maintenance``: what this daemon's latest whiteboard read says (None: unknown)."""
        # The storage-repair code loads with the first call, not at start: an idle host never
        # resets its lockspace (idle RSS, issue 16 item 3), and this call is no tick's.
        from he_ha.provision import AreaError, ProvisionError

        try:
            async with asyncio.timeout(RESET_DEADLINE):
                return await self._run(global_maintenance)
        except TimeoutError:
            return CommandResult(
                ok=False,
                message=(
                    f"reset_lockspace: not done within {RESET_DEADLINE:g} s (storage too slow?); whether the lockspace "
                    "was rewritten is unknown: hosted-engine --reinitialize-lockspace --dry-run shows its state"
                ),
            )
        except (LeaseError, AreaError, ProvisionError) as exc:
            return CommandResult(ok=False, message=f"reset_lockspace failed: {exc}")

    async def _run(self, global_maintenance: bool | None) -> CommandResult:
        state = await self.client.lockspace_state(self.lockspace, self.host_id, timeout=self.query_timeout)
        if state is not LockspaceState.NOT_JOINED:
            maintenance = (
                []
                if global_maintenance
                else [
                    "this daemon's latest whiteboard read shows global maintenance "
                    + ("off" if global_maintenance is False else "as unknown (the global block is unreadable)")
                ]
            )
            return _refusal(
                maintenance,
                [
                    f"host {self.host_id} (this host): its he-ha daemon holds its host id in lockspace "
                    f"{self.lockspace.name!r} ({state.value})"
                ],
            )
        from he_ha.provision import AreaIo
        from he_ha.repair.reinit_lockspace import apply_reinit, plan_reinit

        with AreaIo() as io:
            plan = await plan_reinit(
                self.client,
                io,
                lockspace=self.lockspace.path,
                metadata=self.metadata,
                io_timeout=self.lockspace.io_timeout,
                vm_lease_path=self.vm_lease.path,
                vm_lease_offset=self.vm_lease.offset,
            )
            if plan.refused:
                return _refusal(plan.maintenance, plan.active)
            await apply_reinit(self.client, io, plan)
        log.warning("lockspace reinitialized through the broker socket", lockspace=plan.describe())
        return CommandResult(ok=True, message=f"Reinitialized {plan.describe()}; it reads back blank.")


def _refusal(maintenance: list[str], active: list[str]) -> CommandResult:
    from he_ha.repair.reinit_lockspace import ACTIVE_AGENT, GLOBAL_ONLY

    lines = ["reset_lockspace refused:"]
    for heading, evidence in ((GLOBAL_ONLY, maintenance), (ACTIVE_AGENT, active)):
        if evidence:
            lines += [heading, *(f"    {line}" for line in evidence)]
    lines.append(HOW_TO_PROCEED)
    return CommandResult(ok=False, message="\n".join(lines))
