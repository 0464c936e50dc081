"""``he-ha demo``: shared storage and leases of two simulated hosts on this one machine.

Each host gets its own real sanlock daemon (its own SANLOCK_RUN_DIR). Both join the
``hosted-engine`` lockspace on a shared lockspace file, publish their whiteboard slot with
O_DIRECT, read the whole whiteboard back and print the other host's record; then they race
for the VM lease to show that sanlock admits exactly one holder. Everything it starts is
stopped and its working directory removed, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.logsetup import configure_logging
from he_ha.storage.codec import WHITEBOARD_BYTES, HostSlot, engine_status_json
from he_ha.storage.extra import format_extra
from he_ha.storage.lease_errors import LeaseError, LeaseHeldElsewhere, LockspaceNotReady
from he_ha.storage.lease_layout import LeaseLayout
from he_ha.storage.lease_model import HostStatus
from he_ha.storage.leases import LeaseClient
from he_ha.storage.whiteboard import Whiteboard

log = structlog.get_logger(__name__)

VM_RESOURCE = "HostedEngine"
NO_VM_HERE = {"vm": "down", "health": "bad", "detail": "unknown", "reason": "vm not running on this host"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hosts", type=int, default=2, choices=range(2, 6), metavar="N", help="simulated hosts (2-5, default 2)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="directory for the shared files and sanlock run dirs (default: a new one under /var/tmp)"
    )
    parser.add_argument("--io-timeout", type=int, default=1, help="sanlock io_timeout in seconds (default 1: joins take ~3 s)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory afterwards")
    parser.add_argument("--log-json", action="store_true", help="log as JSON lines")


def run(args: argparse.Namespace) -> int:
    configure_logging(json=args.log_json, level="WARNING")
    try:
        asyncio.run(_demo(args.hosts, args.workdir, args.io_timeout, args.keep))
    except (LeaseError, OSError) as exc:
        print(f"demo failed: {exc}")
        return 1
    except KeyboardInterrupt:
        print("demo interrupted; everything it started has been stopped")
        return 130
    return 0


@dataclass
class DemoHost:
    host_id: int
    name: str
    daemon: SanlockDaemon
    leases: LeaseClient
    whiteboard: Whiteboard


async def _demo(count: int, workdir: Path | None, io_timeout: int, keep: bool) -> None:
    async with _workdir(workdir, keep) as root:
        lockspace_file = root / "hosted-engine.lockspace"
        metadata_file = root / "hosted-engine.metadata"
        async with contextlib.AsyncExitStack() as stack:
            hosts = [await _start_host(stack, root, host_id) for host_id in range(1, count + 1)]
            say(f"{count} hosts, each with its own sanlock daemon; shared files in {root}")

            layout = await _initialise_storage(hosts[0], lockspace_file, metadata_file, io_timeout)
            say(f"initialised {layout.lockspace.describe()} and {layout.vm_lease.describe()}")

            started = time.monotonic()
            await asyncio.gather(*(h.leases.join(layout.lockspace, h.host_id) for h in hosts))
            say(f"all hosts joined lockspace '{layout.lockspace.name}' in {time.monotonic() - started:.1f} s")
            for host in hosts:
                stack.push_async_callback(host.leases.leave, layout.lockspace, host.host_id)

            for host in hosts:
                await host.whiteboard.publish(_slot_for(host))
            for host in hosts:
                liveness = await _wait_until_peers_live(host, layout, count)
                await _show_peers(host, liveness)

            await _race_for_vm_lease(hosts, layout)
            say("stopping: leaving the lockspace, stopping the sanlock daemons")


@contextlib.asynccontextmanager
async def _workdir(requested: Path | None, keep: bool) -> AsyncIterator[Path]:
    # /var/tmp, not /tmp: O_DIRECT needs a real filesystem and /tmp may be tmpfs elsewhere.
    root = requested or Path(tempfile.mkdtemp(prefix="he-ha-demo-", dir="/var/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=False)


async def _start_host(stack: contextlib.AsyncExitStack, root: Path, host_id: int) -> DemoHost:
    name = f"host{host_id}"
    run_dir = root / name
    run_dir.mkdir(exist_ok=True)
    daemon = await stack.enter_async_context(SanlockDaemon(run_dir, name))
    leases = await stack.enter_async_context(await LeaseClient.start(run_dir=run_dir, stderr=run_dir / "lease-worker.log"))
    whiteboard = Whiteboard(root / "hosted-engine.metadata", host_id)
    stack.callback(whiteboard.close)
    return DemoHost(host_id, name, daemon, leases, whiteboard)


async def _initialise_storage(admin: DemoHost, lockspace_file: Path, metadata_file: Path, io_timeout: int) -> LeaseLayout:
    """What deployment does once: size the volumes and write the sanlock areas."""
    metadata_file.write_bytes(b"")
    with metadata_file.open("r+b") as f:
        f.truncate(WHITEBOARD_BYTES)  # sparse: reads as zeros, i.e. "no host" in every slot
    lockspace_file.touch()
    probe = await admin.leases.detect_layout(lockspace_file, resource=VM_RESOURCE, io_timeout=io_timeout)
    with lockspace_file.open("r+b") as f:
        f.truncate(probe.required_size(lockspace_file))
    layout = await admin.leases.detect_layout(lockspace_file, resource=VM_RESOURCE, io_timeout=io_timeout)
    await admin.leases.initialise(layout)
    return layout


def _slot_for(host: DemoHost) -> HostSlot:
    now = int(time.monotonic())
    epoch = int(time.time() - time.monotonic())
    slot = HostSlot(
        host_id=host.host_id,
        host_ts=now,
        score=3400,
        engine_status=engine_status_json(NO_VM_HERE),
        hostname=host.name,
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=now,
    )
    extra = format_extra(slot, state="EngineDown", time_epoch=epoch, refresh_epoch=epoch)
    return HostSlot(**{**_fields(slot), "extra": extra})


def _fields(slot: HostSlot) -> dict[str, object]:
    return {name: getattr(slot, name) for name in HostSlot.__slots__}


async def _wait_until_peers_live(host: DemoHost, layout: LeaseLayout, count: int) -> dict[int, str]:
    """Poll sanlock's view of the other hosts until all are LIVE (a few renewals after joining)."""
    deadline = time.monotonic() + 10 * layout.lockspace.io_timeout + 10
    while True:
        try:
            infos = await host.leases.hosts(layout.lockspace)
        except LockspaceNotReady:
            infos = []  # sanlock has not watched the lockspace long enough yet
        liveness = {info.host_id: info.status.name for info in infos}
        if sum(status == HostStatus.LIVE.name for status in liveness.values()) >= count:
            return liveness
        if time.monotonic() > deadline:
            raise LeaseError(f"{host.name}: sanlock still does not see every host live: {liveness}")
        await asyncio.sleep(0.5)


async def _show_peers(host: DemoHost, liveness: dict[int, str]) -> None:
    view = await host.whiteboard.read_all()
    say(f"{host.name} reads the whiteboard (took {host.whiteboard.last_read.duration * 1000:.1f} ms):")
    for peer_id, record in sorted(view.hosts.items()):
        if peer_id == host.host_id:
            continue
        say(
            f"    host {peer_id} '{record.hostname}': score {record.score}, ts {record.host_ts}, "
            f"engine {record.engine_status}, maintenance {record.maintenance}, "
            f"sanlock says {liveness.get(peer_id, 'not seen yet')}"
        )
    for peer_id, error in sorted(view.errors.items()):
        say(f"    slot {peer_id} unreadable: {error}")


async def _race_for_vm_lease(hosts: list[DemoHost], layout: LeaseLayout) -> None:
    """All hosts try to take the VM lease at once; sanlock must admit exactly one."""
    results = await asyncio.gather(*(h.leases.acquire(layout.vm_lease) for h in hosts), return_exceptions=True)
    winners = [h for h, r in zip(hosts, results) if r is None]
    try:
        for host, result in zip(hosts, results):
            if isinstance(result, LeaseHeldElsewhere):
                say(f"{host.name}: VM lease refused: {result}")
            elif isinstance(result, BaseException):
                raise result
        if len(winners) != 1:
            raise LeaseError(f"expected exactly one VM lease holder, got {[h.name for h in winners]}")
        winner = winners[0]
        say(f"{winner.name} holds the VM lease; the others were refused")
        await winner.leases.release(layout.vm_lease)
        winners.clear()
        successor = next(h for h in hosts if h is not winner)
        await successor.leases.acquire(layout.vm_lease)
        winners.append(successor)
        say(f"{winner.name} released it and {successor.name} acquired it at once")
    finally:
        for holder in winners:
            await holder.leases.release(layout.vm_lease)


def say(line: str) -> None:
    print(line, flush=True)
