"""Parts of a host's supervisor that more than one program assembles alike: the lease holder
and the engine-XML preparer (daemon.py), the recovery vm.conf check, a start's answer and the
VNC ticket (controller.py). The shim's VM commands without the daemon (cli/direct_vm.py) take
the very same parts, so a start there takes the VM lease as the daemon's would and every
answer reads the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from he_ha.admin.contract import CommandResult, Refusal
from he_ha.config import ConfigError, load_vm_conf
from he_ha.fsm import ActionResult, Outcome
from he_ha.lease import LeaseClient, VmLease
from he_ha.ovirt import VdsmRoots
from he_ha.supervisor.engine_launch import EngineXmlPreparer
from he_ha.supervisor.fence import FenceTarget, write_fence_file
from he_ha.supervisor.host_plan import HostPlan
from he_ha.supervisor.lease_holder import KeeperHolder, LeaseHolder, QemuHolder, WorkerHolder, fence_killpath
from he_ha.supervisor.settings import SupervisorSettings
from he_ha.supervisor.vnc_ticket import WILDCARDS, TicketRefused, set_ticket
from he_ha.vm import (
    DomainId,
    DomainSpec,
    DomainXmlError,
    LibvirtCallError,
    LibvirtConnection,
    VmError,
    domain_spec_from_vm_conf,
)


async def build_holder(
    settings: SupervisorSettings,
    *,
    host_id: int,
    identity: DomainId,
    client: LeaseClient,
    lease: VmLease,
    on_lost: Callable[[str], None],
) -> LeaseHolder:
    """The lease holder of ``settings.holder_kind``. The keeper
    holder first writes the fence file its killpath reads, and records its keeper in
    ``settings.keeper_file``, where the next daemon finds and adopts it."""
    kind = settings.holder_kind
    if kind == "worker":
        return WorkerHolder(client, lease, on_lost=on_lost)
    if kind == "qemu":
        # host id and io timeout: for joining the storage domain's lockspace of the engine lease
        return QemuHolder(
            client, lease, on_lost=on_lost, host_id=host_id, io_timeout=settings.io_timeout, vm_uuid=identity.uuid
        )
    await asyncio.to_thread(write_fence_file, settings.fence_file, FenceTarget(settings.libvirt_uri, identity))
    return KeeperHolder(
        client,
        lease,
        on_lost=on_lost,
        record_file=settings.keeper_file,
        sanlock_run_dir=settings.sanlock_run_dir,
        killpath=fence_killpath(settings.fence_file),
        log_path=settings.run_dir / "lease-keeper.log",
    )


def engine_xml_preparer(
    settings: SupervisorSettings, plan: HostPlan, connection: LibvirtConnection, holder: LeaseHolder
) -> EngineXmlPreparer:
    """The engine-XML preparer of every start, telling ``holder`` each start's engine lease."""
    return EngineXmlPreparer(
        conf=plan.config.engine,
        roots=VdsmRoots.from_mount_root(settings.mount_root),
        connection=connection,
        timeout=settings.definition_timeout,
        on_launch=holder.choose,
    )


class RecoveryConfRefused(Exception):
    """The recovery vm.conf cannot be used; the message says why (``refused: ...``)."""


async def recovery_spec(path: Path, engine: DomainId, timeout: float) -> DomainSpec:
    """The domain of an admin's recovery vm.conf (``--vm-start --vm-conf=``), if it describes
    the engine VM."""
    try:
        conf = await asyncio.wait_for(asyncio.to_thread(load_vm_conf, path), timeout)
        spec = domain_spec_from_vm_conf(conf, str(path))
    except TimeoutError:
        raise RecoveryConfRefused(f"refused: {path}: no answer from the file system within {timeout:g} s") from None
    except (ConfigError, DomainXmlError) as exc:
        raise RecoveryConfRefused(f"refused: not a usable vm.conf: {exc}") from None
    if spec.id.uuid != engine.uuid:
        raise RecoveryConfRefused(
            f"refused: {path} describes the VM {spec.id.uuid} (vmId), not the engine VM {engine.uuid}"
        )
    if spec.id.name != engine.name:
        raise RecoveryConfRefused(
            f"refused: {path} names the VM {spec.id.name!r}, not {engine.name!r} as the configured vm.conf does"
        )
    return spec


def start_answer(result: ActionResult) -> CommandResult:
    """A start's result as the admin API answers it."""
    if result.outcome is Outcome.LEASE_BUSY:
        return CommandResult(
            ok=False,
            message=f"refused: another host holds the VM lease ({result.reason})",
            detail={"refusal": Refusal.LEASE_BUSY.value},
        )
    return CommandResult(ok=result.outcome is Outcome.OK, message=f"start: {result.reason or result.outcome.value}")


async def vnc_ticket(
    connection: LibvirtConnection, domain: DomainId, password: str, ttl: int, hostname: str
) -> CommandResult:
    """A VNC password valid ``ttl`` seconds on the running engine VM; the display's address
    and port in ``detail``."""
    try:
        display = await connection.call("set-vnc-ticket", lambda c: set_ticket(c, domain, password, ttl))
    except TicketRefused as exc:
        return CommandResult(ok=False, message=str(exc), detail={"refusal": exc.refusal.value})
    except LibvirtCallError as exc:
        return CommandResult(ok=False, message=f"the VNC password could not be set: {exc}")
    except VmError as exc:
        return CommandResult(ok=False, message=f"refused: libvirt cannot be asked: {exc}")
    # A display listening everywhere is reached through this host's name.
    address = hostname if display.address in WILDCARDS else display.address
    return CommandResult(
        ok=True, message=f"VNC password set for {ttl} s", detail={"address": address, "port": display.port}
    )
