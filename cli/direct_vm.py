"""The VM commands while the he-ha daemon is down: straight through this host's libvirt.

The original's ``--vm-start``, ``--vm-shutdown``, ``--vm-poweroff`` and
``--add-console-password`` needed only VDSM; they are the commands of manual recovery, so the
shim does them without the daemon too (cli/daemon_call.py decides when: nothing listens on
the admin socket and no ``he-ha run`` serves the run directory). Every libvirt call runs on
the connection's worker threads under a deadline (he_ha/vm), every sanlock call in the lease
worker under one (he_ha/lease/client.py).

**Start** is the daemon's own start (``ActionExecutor.start_vm``) with the daemon's parts
(he_ha/supervisor/host_parts.py, host_plan.py): the VM definition refreshed from its sources
(vm.conf rewritten as the daemon would), the engine XML resolved, the VM lease taken by the
configured holder BEFORE the launch (invariant 1), so another host holding it refuses the
start. The host must be in the ``hosted-engine`` lockspace under its host id for that: it is
joined here when it is not (progress on stderr; a few io timeouts). Holders
(``HE_HA_LEASE_HOLDER``, the daemon's ``--lease-holder``; its default when unset):

- keeper: a detached lease keeper holds the lease, recorded in the daemon's run directory
  (``HE_HA_RUN_DIR``: ``lease-keeper.json``, the fence file beside it). The daemon, once
  started, adopts the keeper and the running VM (``KeeperHolder.recover`` at start-up; its
  state machine then finds the VM up with the lease held here).
- qemu: the ``<lease>`` goes into the domain XML and QEMU holds the lease from its launch
  (libvirt's sanlock lock manager); the daemon adopts the VM by the lease QEMU holds.
- worker: refused. That lease ends with the process holding it, this command.

After a start the host stays in the lockspace (the lease is in it). A start that fails
releases a lease it took (once libvirt says no VM runs) and leaves a lockspace it joined.

**Shutdown / poweroff**: libvirt's shutdown (answered after at most 5 s, as the daemon does;
the guest goes on) or destroy. A keeper's lease is NOT freed by the VM's end: the keeper holds
it until it is released. So once libvirt says the VM is gone, the keeper's lease is released
and the keeper ended (invariant 2: only then), and the lockspace left unless something else
is held in it, as the daemon does on its own stop. A guest still shutting down keeps the
lease with its keeper: the daemon releases it when it runs again and finds the VM gone, or a
later ``--vm-poweroff`` does. Until then no other host can start the VM.

**Console password**: the VNC ticket set as the daemon sets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from cli.command import error
from cli.environment import CliEnvironment
from he_ha.admin.contract import CommandResult, Refusal
from he_ha.config import ConfigError, HostedEngineConf
from he_ha.fsm import Outcome
from he_ha.lease import (
    JoinOutcome,
    LeaseClient,
    LeaseError,
    LeaseLayout,
    Lockspace,
    LockspaceBusy,
    LockspaceState,
    wait_deadline,
)
from he_ha.ovirt.vm_definition import DEFAULT_VM_NAME
from he_ha.provision import AreaIo, survey_lockspace
from he_ha.supervisor.execute import ActionExecutor, SpecSource
from he_ha.supervisor.host_parts import (
    RecoveryConfRefused,
    build_holder,
    engine_xml_preparer,
    recovery_spec,
    start_answer,
    vnc_ticket,
)
from he_ha.supervisor.host_plan import HostPlan, load_plan
from he_ha.supervisor.lease_holder import LeaseHolder
from he_ha.supervisor.settings import HOLDER_KINDS, HolderKind, SupervisorSettings
from he_ha.vm import (
    Deadlines,
    DomainId,
    HypervisorUnreachable,
    LibvirtConnection,
    VmController,
    VmError,
    VmStatus,
)

LIBVIRT_OPEN = 10.0  # seconds for libvirtd to accept the connection
SHUTDOWN_ANSWER = 5.0  # as the daemon: answer after this long; the guest goes on shutting down
PROGRESS_EVERY = 10.0  # seconds between "still joining" lines
STORAGE_TIMEOUT = 10.0  # the lockspace volume's geometry read


class Refused(Exception):
    """Nothing was done; the message says why (stderr, exit 1)."""


def settings_for(env: CliEnvironment) -> SupervisorSettings:
    """The daemon's settings as this host's environment gives them (cli/environment.py)."""
    kinds: dict[str | None, HolderKind] = {kind: kind for kind in HOLDER_KINDS}
    if env.lease_holder is not None and env.lease_holder not in kinds:
        raise Refused(f"HE_HA_LEASE_HOLDER={env.lease_holder!r} is not one of {', '.join(HOLDER_KINDS)}")
    return SupervisorSettings(
        paths=env.paths,
        mount_root=env.mount_root,
        state_dir=env.state_dir,
        libvirt_uri=env.libvirt_uri,
        sanlock_run_dir=env.sanlock_run_dir,
        run_dir=env.run_dir,
        admin_socket=env.admin_socket,
        holder=kinds.get(env.lease_holder),
    )


def _run(work: Coroutine[Any, Any, CommandResult]) -> CommandResult | None:
    """Run the async work; a refusal or an error of storage, sanlock, libvirt or the
    configuration is printed (stderr) and gives None."""
    try:
        return asyncio.run(work)
    except (Refused, ConfigError, LeaseError, VmError) as exc:
        error(str(exc))
        return None


# --- start -----------------------------------------------------------------------------------------


def start(env: CliEnvironment, *, paused: bool, vm_conf: Path | None) -> CommandResult | None:
    try:
        settings = settings_for(env)
        if settings.holder_kind == "worker":
            raise Refused(
                "refused: with the lease held by the lease worker (--lease-holder worker) the lease would "
                "end with this command; start the he-ha daemon instead"
            )
        plan = load_plan(settings)
    except (Refused, ConfigError) as exc:
        error(str(exc))
        return None
    return _run(_start(settings, plan, paused, vm_conf))


async def _start(settings: SupervisorSettings, plan: HostPlan, paused: bool, vm_conf: Path | None) -> CommandResult:
    async with _hypervisor(settings) as connection:
        vm = VmController(connection, plan.identity)
        state = await vm.state()
        if state.active:
            return CommandResult(
                ok=False,
                message=f"refused: the VM already runs here ({state})",
                detail={"refusal": Refusal.VM_RUNNING_HERE.value, "vm": state.status.value},
            )
        try:
            spec = None if vm_conf is None else await recovery_spec(vm_conf, plan.identity, STORAGE_TIMEOUT)
        except RecoveryConfRefused as exc:
            return CommandResult(ok=False, message=str(exc))
        async with await LeaseClient.start(run_dir=settings.sanlock_run_dir) as client:
            layout = await lease_layout(client, plan.config.engine, plan.lockspace_path, plan.resource)
            settings = replace(settings, io_timeout=layout.lockspace.io_timeout)
            joined = await join(client, layout.lockspace, plan.host_id)
            holder = await build_holder(
                settings,
                host_id=plan.host_id,
                identity=plan.identity,
                client=client,
                lease=layout.vm_lease,
                on_lost=lambda why: error(f"he-ha: {why}"),
            )
            await holder.recover()  # a keeper left by the daemon (holding the lease for no VM) is reused
            specs = SpecSource(plan.definitions, plan.identity, plan.first, timeout=settings.definition_timeout)
            engine_xml = engine_xml_preparer(settings, plan, connection, holder)
            try:
                await engine_xml.read_host_facts(settings.host_root)
                executor = ActionExecutor(
                    vm=vm,
                    holder=holder,
                    specs=specs,
                    health=None,
                    notifier=None,
                    on_done=lambda _: None,
                    migrate_uri=settings.migrate_uri,
                    io_timeout=settings.io_timeout,
                    engine_xml=engine_xml,
                )
                result = await executor.start_vm(paused=paused, spec=spec)
            finally:
                specs.close()
                engine_xml.close()
            if result.outcome is Outcome.OK:
                holder.detach()  # the keeper (if any) lives on with the VM; the daemon adopts both
            else:
                await release_if_gone(vm, holder)
                if joined is JoinOutcome.JOINED:
                    await leave_unless_busy(client, layout.lockspace, plan.host_id)
            return start_answer(result)


# --- shutdown, poweroff ---------------------------------------------------------------------------


def stop(env: CliEnvironment, vmid: str, *, force: bool) -> CommandResult | None:
    try:
        settings = settings_for(env)
    except Refused as exc:
        error(str(exc))
        return None
    return _run(_stop(env, settings, DomainId(DEFAULT_VM_NAME, vmid), force))


async def _stop(env: CliEnvironment, settings: SupervisorSettings, identity: DomainId, force: bool) -> CommandResult:
    what = "poweroff" if force else "shutdown"
    async with _hypervisor(settings) as connection:
        vm = VmController(connection, identity)
        try:
            stopped = await (vm.destroy() if force else vm.shutdown(SHUTDOWN_ANSWER))
        except VmError as exc:
            return CommandResult(ok=False, message=f"{what}: {'destroy' if force else 'shutdown request'}: {exc}")
        if settings.holder_kind == "keeper" and settings.keeper_file.exists():
            await _release_keeper(env, settings, identity, vm)
        return CommandResult(ok=True, message=f"{what}: {stopped.outcome.value}")


async def _release_keeper(
    env: CliEnvironment, settings: SupervisorSettings, identity: DomainId, vm: VmController
) -> None:
    """The keeper left holding the lease: released once the VM is gone (see the module doc)."""
    conf = env.engine_conf()
    lockspace_path = env.volume("lockspace").path
    async with await LeaseClient.start(run_dir=settings.sanlock_run_dir) as client:
        layout = await lease_layout(client, conf, lockspace_path, identity.uuid or identity.name)
        holder = await build_holder(
            replace(settings, io_timeout=layout.lockspace.io_timeout),
            host_id=conf.host_id,
            identity=identity,
            client=client,
            lease=layout.vm_lease,
            on_lost=lambda why: None,
        )  # ending it is what we are here for
        await holder.recover()
        if not holder.is_held():
            return
        if not await release_if_gone(vm, holder):
            error(
                f"he-ha: the engine VM still runs here: the lease keeper keeps the VM lease until the he-ha "
                f"daemon runs again and finds the VM gone, or --vm-poweroff ends it ({settings.keeper_file})"
            )
            holder.detach()
            return
        error("he-ha: the engine VM is gone: the VM lease its lease keeper held is released")
        await leave_unless_busy(client, layout.lockspace, conf.host_id)


# --- console password ----------------------------------------------------------------------------


def console_password(env: CliEnvironment, vmid: str, password: str, ttl: int) -> CommandResult | None:
    try:
        settings = settings_for(env)
    except Refused as exc:
        error(str(exc))
        return None

    async def work() -> CommandResult:
        async with _hypervisor(settings) as connection:
            return await vnc_ticket(
                connection, DomainId(DEFAULT_VM_NAME, vmid), password, ttl, settings.hostname or socket.gethostname()
            )

    return _run(work())


# --- the parts ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _hypervisor(settings: SupervisorSettings) -> AsyncIterator[LibvirtConnection]:
    """This host's libvirt, connected; HypervisorUnreachable when the first attempt fails
    (the daemon would retry in the background; a command says why at once)."""
    connection = LibvirtConnection(settings.libvirt_uri, deadlines=Deadlines(open=LIBVIRT_OPEN))
    try:
        await connection.start()
        if not connection.connected:
            raise HypervisorUnreachable("open", connection.health.detail)
        yield connection
    finally:
        await connection.close()


async def lease_layout(client: LeaseClient, conf: HostedEngineConf, lockspace_path: Path, resource: str) -> LeaseLayout:
    """The lockspace and the VM lease as the daemon lays them out, with the io timeout the
    lockspace on storage was made with (the daemon's ``--io-timeout`` is set to match it)."""
    with AreaIo(STORAGE_TIMEOUT) as io:
        survey = await survey_lockspace(io, lockspace_path)
    if survey.geometry is None:
        raise Refused(f"no sanlock lockspace to take the VM lease in: {survey.evidence}")
    return await client.detect_layout(
        lockspace_path,
        resource=resource,
        io_timeout=survey.geometry.io_timeout,
        lease_path=conf.vm_lease_path,
        lease_offset=conf.vm_lease_offset,
        timeout=STORAGE_TIMEOUT,
    )


async def join(client: LeaseClient, lockspace: Lockspace, host_id: int) -> JoinOutcome:
    """This host in ``lockspace`` under ``host_id``, joined now if it is not (progress on stderr)."""
    if await client.lockspace_state(lockspace, host_id) is LockspaceState.JOINED:
        return JoinOutcome.ALREADY_JOINED
    error(
        f"he-ha: joining the sanlock lockspace {lockspace.name!r} as host id {host_id} (the VM lease is taken "
        f"in it); this takes a few io timeouts ({lockspace.io_timeout} s each)..."
    )
    started = time.monotonic()
    joining = asyncio.ensure_future(client.join(lockspace, host_id, timeout=wait_deadline(lockspace.io_timeout)))
    while not (await asyncio.wait({joining}, timeout=PROGRESS_EVERY))[0]:
        error(f"he-ha: still joining after {time.monotonic() - started:.0f} s...")
    outcome = joining.result()
    error(f"he-ha: in the lockspace after {time.monotonic() - started:.0f} s")
    return outcome


async def release_if_gone(vm: VmController, holder: LeaseHolder) -> bool:
    """Invariant 2, as the daemon's release: the lease goes only once libvirt says no VM
    process is left here. True when released (or nothing was held)."""
    if not holder.is_held():
        return True
    try:
        state = await vm.state()
    except VmError as exc:
        error(f"he-ha: the VM state cannot be read, so the VM lease stays held: {exc}")
        return False
    if state.active or state.status is VmStatus.UNKNOWN:
        return False
    await holder.release()
    return True


async def leave_unless_busy(client: LeaseClient, lockspace: Lockspace, host_id: int) -> None:
    """Leave the lockspace unless a lease in it is held here (sanlock refuses: we stay)."""
    with contextlib.suppress(LockspaceBusy):
        await client.leave(lockspace, host_id)
