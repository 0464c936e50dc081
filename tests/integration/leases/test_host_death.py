"""What takes sanlock's host-dead time (8 io timeouts + 60 s = 68 s here): slow, so marked.

Both waits run concurrently in one test to spend the 68 s once:
- host A dies holding the VM lease: B's acquire blocks inside sanlock until A is dead, then
  succeeds (it does not fail with "held elsewhere" while A is merely failing);
- host C joins with B's host id while B is alive: sanlock watches the id for the host-dead
  time, sees it renewed, and refuses with HostIdInUse.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import DaemonUnavailable, HostIdInUse, HostStatus, LeaseClient, Lockspace, LockspaceNotReady
from he_ha.supervisor.lease_watch import LeaseFreeWatch
from tests.integration.leases.conftest import IO_TIMEOUT, PACKAGE_LOOP, make_volume

pytestmark = [PACKAGE_LOOP, pytest.mark.slow]


async def statuses_until(
    client: LeaseClient, lockspace: Lockspace, host_id: int, done: asyncio.Task[None]
) -> list[HostStatus]:
    """The distinct statuses ``host_id`` goes through until ``done`` finishes."""
    seen: list[HostStatus] = []
    while not done.done():
        try:
            hosts = await client.hosts(lockspace, host_id)
        except LockspaceNotReady:
            hosts = []
        if hosts and (not seen or seen[-1] is not hosts[0].status):
            seen.append(hosts[0].status)
        await asyncio.sleep(0.5)
    return seen


async def test_dead_host_and_duplicate_host_id(tmp_path: Path) -> None:
    volume = make_volume(tmp_path / "hosted-engine.lockspace", 4 * 1024 * 1024)
    with (
        SanlockDaemon(tmp_path / "a", "host-a") as daemon_a,
        SanlockDaemon(tmp_path / "b", "host-b") as daemon_b,
        SanlockDaemon(tmp_path / "c", "host-c") as daemon_c,
    ):
        try:
            async with (
                await LeaseClient.start(run_dir=daemon_a.run_dir) as a,
                await LeaseClient.start(run_dir=daemon_b.run_dir) as b,
                await LeaseClient.start(run_dir=daemon_c.run_dir) as c,
            ):
                layout = await a.detect_layout(volume, resource="engine-vm", io_timeout=IO_TIMEOUT)
                await a.initialise(layout)
                await asyncio.gather(a.join(layout.lockspace, 1), b.join(layout.lockspace, 2))
                await a.acquire(layout.vm_lease)

                duplicate = asyncio.create_task(c.join(layout.lockspace, 2))
                daemon_a.kill()  # host A dies holding the lease
                with pytest.raises(DaemonUnavailable):
                    await a.held()
                # B's supervisor would wait on A's lease (down.lease-held): its lease watch wakes it
                # when sanlock reports A dead (he_ha/supervisor/lease_watch.py).
                freed: list[tuple[float, str]] = []
                watch = LeaseFreeWatch(
                    b, layout.lockspace, lambda: 1, lambda what: freed.append((time.monotonic(), what)), interval=0.5
                )
                watching = asyncio.create_task(watch.run())
                takeover = asyncio.create_task(b.acquire(layout.vm_lease))  # default deadline covers the wait
                seen = await statuses_until(b, layout.lockspace, 1, takeover)
                await takeover

                with pytest.raises(HostIdInUse, match="another live host is using this host id"):
                    await duplicate
                assert [owner.host_id for owner in await b.owners(layout.vm_lease)] == [2]
                assert HostStatus.FAIL in seen, seen  # A was failing while B's acquire waited
                # The lockspace view turns DEAD on its own schedule, around the same time.
                async with asyncio.timeout(15):
                    while (await b.hosts(layout.lockspace, 1))[0].status is not HostStatus.DEAD:
                        await asyncio.sleep(0.5)
                dead_at = time.monotonic()
                await asyncio.sleep(1.5)  # three more watch intervals: still one wake for this wait
                watching.cancel()
                assert [what for _, what in freed] == ["sanlock reports host 1 dead: its VM lease can be taken"]
                assert freed[0][0] <= dead_at + 1.0  # woken within an interval of DEAD, not a tick later
        finally:
            daemon_c.kill()
