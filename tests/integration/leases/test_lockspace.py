"""Joining the lockspace and watching peers, against real sanlock daemons."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import (
    MIB,
    DaemonUnavailable,
    HostIdOutOfRange,
    HostStatus,
    JoinOutcome,
    LeaseCallTimeout,
    LeaseClient,
    Lockspace,
    LockspaceNotInitialised,
    LockspaceNotJoined,
    LockspaceNotReady,
    LockspaceState,
    WrongHostId,
)
from tests.integration.leases.conftest import IO_TIMEOUT, PACKAGE_LOOP, Cluster, make_volume

pytestmark = PACKAGE_LOOP


async def wait_for_status(
    client: LeaseClient, lockspace: Lockspace, host_id: int, status: HostStatus, deadline: float
) -> None:
    """Poll ``hosts()`` until ``host_id`` has ``status``; sanlock needs a few renewals."""
    async with asyncio.timeout(deadline):
        while True:
            try:
                hosts = {host.host_id: host for host in await client.hosts(lockspace)}
            except LockspaceNotReady:  # just joined: sanlock has not watched the others yet
                hosts = {}
            if host_id in hosts and hosts[host_id].status is status:
                return
            await asyncio.sleep(0.5)


async def test_each_host_sees_the_other_live(cluster: Cluster) -> None:
    a, b = cluster.clients
    await asyncio.gather(
        wait_for_status(a, cluster.lockspace, 2, HostStatus.LIVE, 30),
        wait_for_status(b, cluster.lockspace, 1, HostStatus.LIVE, 30),
    )
    (peer,) = await a.hosts(cluster.lockspace, 2)
    assert (peer.host_id, peer.status, peer.io_timeout) == (2, HostStatus.LIVE, IO_TIMEOUT)
    assert peer.generation >= 1 and peer.timestamp > 0


async def test_join_is_idempotent_for_a_restarted_supervisor(cluster: Cluster) -> None:
    # Lockspace membership belongs to the daemon, so a new worker finds it joined.
    async with cluster.new_client(0) as restarted:
        assert await restarted.lockspace_state(cluster.lockspace, 1) is LockspaceState.JOINED
        assert await restarted.join(cluster.lockspace, 1) is JoinOutcome.ALREADY_JOINED
        assert await restarted.lockspace_state(cluster.lockspace, 2) is LockspaceState.NOT_JOINED


def runqueue_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (schedstat field 2)."""
    return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9


async def test_join_and_leave_keep_the_event_loop_ticking(cluster: Cluster) -> None:
    lockspace = Lockspace(make_volume(cluster.base / "probe.lockspace", 2 * MIB), "loop-probe", io_timeout=IO_TIMEOUT)
    client = cluster.clients[0]
    await client.init_lockspace(lockspace)
    # Lag of each tick beyond its sleep, minus the time the loop's thread waited for a CPU:
    # on a loaded 2-core box the scheduler alone can delay a tick by tens of ms, while a
    # loop blocked in a sanlock call would show seconds that no CPU wait explains.
    blocked: list[float] = []
    period = 0.01

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, waited = loop.time(), runqueue_wait()
            await asyncio.sleep(period)
            blocked.append(loop.time() - before - period - (runqueue_wait() - waited))

    ticking = asyncio.create_task(ticker())
    try:
        assert await client.join(lockspace, 1) is JoinOutcome.JOINED  # ~2-3 io timeouts in sanlock
        ticks_during_join = len(blocked)
        assert await client.lockspace_state(lockspace, 1) is LockspaceState.JOINED
        assert await client.leave(lockspace, 1) is True
    finally:
        ticking.cancel()
    # sanlock waits 2 io timeouts inside add_lockspace, so the ticker ran all through it
    assert ticks_during_join > 0.5 * 2 * IO_TIMEOUT / period
    assert max(blocked) < 0.05, f"event loop blocked for {max(blocked):.3f} s"
    assert await client.lockspace_state(lockspace, 1) is LockspaceState.NOT_JOINED
    assert await client.leave(lockspace, 1) is False  # not joined any more: says so, no error


async def test_joining_with_another_host_id_names_both_ids(cluster: Cluster) -> None:
    with pytest.raises(WrongHostId, match="this host holds host id 1, not 3") as caught:
        await cluster.clients[0].join(cluster.lockspace, 3)
    assert caught.value.errno == 22 and "hosted-engine" in str(caught.value)


async def test_host_id_above_an_old_4k_layout_is_named(cluster: Cluster) -> None:
    # The original wrote 4K-sector lockspaces with 1 MiB alignment: 250 host ids (B27).
    volume = make_volume(cluster.base / "old-4k.lockspace", 2 * MIB)
    old = Lockspace(volume, "old-layout", sector_size=4096, align=MIB, io_timeout=IO_TIMEOUT)
    await cluster.clients[1].init_lockspace(old)
    assumed = Lockspace(volume, "old-layout", sector_size=4096, align=8 * MIB, io_timeout=IO_TIMEOUT)
    with pytest.raises(HostIdOutOfRange, match="above the lockspace's max hosts") as caught:
        await cluster.clients[1].join(assumed, 251)
    assert caught.value.errno == -231


async def test_uninitialised_lockspace_is_named(cluster: Cluster) -> None:
    blank = Lockspace(make_volume(cluster.base / "blank.lockspace", 2 * MIB), "never-written", io_timeout=IO_TIMEOUT)
    with pytest.raises(LockspaceNotInitialised, match="no lockspace on storage there"):
        await cluster.clients[1].join(blank, 2)


async def test_hosts_of_a_lockspace_not_joined(cluster: Cluster) -> None:
    other = Lockspace(cluster.lockspace.path, "not-joined-here")
    with pytest.raises(LockspaceNotJoined, match="has not joined the lockspace"):
        await cluster.clients[0].hosts(other)


async def test_no_daemon_is_daemon_unavailable(tmp_path: Path) -> None:
    async with await LeaseClient.start(run_dir=tmp_path) as client:
        with pytest.raises(DaemonUnavailable, match="sanlock daemon is not running"):
            await client.lockspace_state(Lockspace(tmp_path / "volume"), 1)


async def test_a_join_stuck_in_sanlock_times_out_and_the_host_stays_usable(cluster: Cluster, tmp_path: Path) -> None:
    # Host C claims host A's id 1: sanlock watches the id for the full host-dead time (~68 s)
    # before failing. Our deadline turns that into a typed timeout; C can still be asked things.
    with SanlockDaemon(tmp_path / "c", "host-c") as daemon_c:
        try:
            async with await LeaseClient.start(run_dir=daemon_c.run_dir) as c:
                with pytest.raises(LeaseCallTimeout, match="add_lockspace on lockspace 'hosted-engine'"):
                    await c.join(cluster.lockspace, 1, timeout=2)
                assert await c.lockspace_state(cluster.lockspace, 1) is LockspaceState.JOINING
        finally:
            daemon_c.kill()  # a clean shutdown would wait for the pending join
