"""The VM lease between two hosts, against real sanlock daemons."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest

from he_ha.lease import (
    MIB,
    HolderNotRegistered,
    LeaseAlreadyHeld,
    LeaseAreaInUse,
    LeaseClient,
    LeaseHeldElsewhere,
    LeaseKeeper,
    LeaseNotHeld,
    LeaseNotInitialised,
    LeaseOwner,
    LeaseWorkerDied,
    Lockspace,
    LockspaceNotJoined,
    VmLease,
    VolumeError,
)
from tests.integration.leases.conftest import IO_TIMEOUT, PACKAGE_LOOP, Cluster, make_volume

pytestmark = PACKAGE_LOOP

# Bound for "at once": sanlock frees a dead holder's lease asynchronously (milliseconds);
# the alternative, waiting for a dead host, takes 8 io timeouts + 60 s = 68 s here.
PROMPTLY = 5.0


def owner_ids(owners: list[LeaseOwner]) -> list[int]:
    return [owner.host_id for owner in owners]


async def acquire_promptly(client: LeaseClient, lease: VmLease) -> None:
    """Acquire, retrying LeaseHeldElsewhere for at most PROMPTLY seconds."""
    async with asyncio.timeout(PROMPTLY):
        while True:
            try:
                await client.acquire(lease)
                return
            except LeaseHeldElsewhere:
                await asyncio.sleep(0.05)


async def test_lease_goes_to_one_host_then_changes_hands(cluster: Cluster) -> None:
    a, b = cluster.clients
    lease = await cluster.fresh_lease()
    assert await a.owners(lease) == []

    await a.acquire(lease)
    with pytest.raises(LeaseHeldElsewhere, match="held by another live host") as caught:
        await b.acquire(lease)
    assert caught.value.errno == -243 and caught.value.retryable
    (owner,) = await b.owners(lease)
    (host_a,) = await b.hosts(cluster.lockspace, 1)
    assert (owner.host_id, owner.generation) == (1, host_a.generation)
    (held,) = await a.held()
    assert (held.lockspace, held.resource, held.disks) == ("hosted-engine", "engine-vm", ((lease.path, lease.offset),))
    assert await b.held() == []

    await a.release(lease)
    assert await a.owners(lease) == [] and await a.held() == []
    await b.acquire(lease)
    assert owner_ids(await a.owners(lease)) == [2]
    await b.release(lease)


async def test_simultaneous_acquires_admit_exactly_one_host(cluster: Cluster) -> None:
    """Both hosts ask at the same instant, many times: one wins, the loser's error is typed.

    Losing a concurrent paxos ballot is reported by sanlock as -244/-245/-247 rather than
    -243; each must be a LeaseHeldElsewhere, never an untyped failure.
    """
    a, b = cluster.clients
    loser_errnos: set[int] = set()
    for _ in range(10):
        lease = await cluster.fresh_lease()
        results = await asyncio.gather(a.acquire(lease), b.acquire(lease), return_exceptions=True)
        winners = [client for client, result in zip((a, b), results, strict=True) if result is None]
        losses = [result for result in results if result is not None]
        assert len(winners) == 1, results
        assert all(isinstance(loss, LeaseHeldElsewhere) for loss in losses), losses
        loser_errnos.update(loss.errno for loss in losses if isinstance(loss, LeaseHeldElsewhere))
        winner_id = 1 if winners[0] is a else 2
        assert owner_ids(await a.owners(lease)) == [winner_id]
        await winners[0].release(lease)
    assert loser_errnos <= {-243, -244, -245, -247}


async def test_holder_exit_frees_the_lease_at_once(cluster: Cluster) -> None:
    lease = await cluster.fresh_lease()
    async with cluster.new_client(0) as holder:
        await holder.acquire(lease)
        os.kill(holder.pid, signal.SIGKILL)  # the holding process dies without releasing
        with pytest.raises(LeaseWorkerDied, match=f"pid {holder.pid} exited"):
            await holder.held()
    await acquire_promptly(cluster.clients[1], lease)
    assert owner_ids(await cluster.clients[1].owners(lease)) == [2]
    await cluster.clients[1].release(lease)


async def test_keeper_holds_the_lease_beyond_the_acquiring_process(cluster: Cluster) -> None:
    lease = await cluster.fresh_lease()
    keeper = await LeaseKeeper.start(run_dir=cluster.daemons[0].run_dir)
    try:
        async with cluster.new_client(0) as supervisor:
            await supervisor.acquire(lease, holder_pid=keeper.pid)
            (held,) = await supervisor.held(holder_pid=keeper.pid)
            assert held.resource == lease.resource
            assert await supervisor.held() == []  # the worker itself holds nothing
        # The acquiring worker is gone (a crashed supervisor): the keeper still holds it.
        with pytest.raises(LeaseHeldElsewhere):
            await cluster.clients[1].acquire(lease)
        assert owner_ids(await cluster.clients[1].owners(lease)) == [1]
    finally:
        assert await keeper.stop() == 0
    await acquire_promptly(cluster.clients[1], lease)  # the keeper's exit released it
    await cluster.clients[1].release(lease)


async def test_a_keepers_lease_can_be_released_for_it(cluster: Cluster) -> None:
    lease = await cluster.fresh_lease()
    keeper = await LeaseKeeper.start(run_dir=cluster.daemons[0].run_dir)
    try:
        await cluster.clients[0].acquire(lease, holder_pid=keeper.pid)
        await cluster.clients[0].release(lease, holder_pid=keeper.pid)
        assert await cluster.clients[0].held(holder_pid=keeper.pid) == []
        assert await cluster.clients[0].owners(lease) == []
    finally:
        await keeper.stop()


async def test_holder_must_be_registered_with_this_host(cluster: Cluster) -> None:
    lease = await cluster.fresh_lease()
    keeper_on_b = await LeaseKeeper.start(run_dir=cluster.daemons[1].run_dir)
    try:
        with pytest.raises(HolderNotRegistered, match="not registered with this host's sanlock"):
            await cluster.clients[0].acquire(lease, holder_pid=keeper_on_b.pid)
    finally:
        await keeper_on_b.stop()


async def test_acquire_twice_and_release_unheld_are_named(cluster: Cluster) -> None:
    a = cluster.clients[0]
    lease = await cluster.fresh_lease()
    with pytest.raises(LeaseNotHeld, match="does not hold this lease"):
        await a.release(lease)
    await a.acquire(lease)
    with pytest.raises(LeaseAlreadyHeld, match="already holds this lease"):
        await a.acquire(lease)
    await a.release(lease)


async def test_lease_of_a_lockspace_not_joined(cluster: Cluster) -> None:
    lease = VmLease(cluster.lockspace.path, "other-vm", 60 * MIB, "not-joined-here", io_timeout=IO_TIMEOUT)
    await cluster.clients[0].init_vm_lease(lease)
    with pytest.raises(LockspaceNotJoined, match="has not joined the lease's lockspace"):
        await cluster.clients[0].acquire(lease)


async def test_uninitialised_lease_area_is_named(cluster: Cluster) -> None:
    never_written = VmLease(cluster.lockspace.path, "engine-vm", 61 * MIB, io_timeout=IO_TIMEOUT)
    with pytest.raises(LeaseNotInitialised, match=f":{61 * MIB} failed: no lease on storage there"):
        await cluster.clients[0].acquire(never_written)
    with pytest.raises(LeaseNotInitialised, match="no lease with this name and geometry"):
        await cluster.clients[0].owners(never_written)


async def test_lease_with_another_resource_name_is_named(cluster: Cluster) -> None:
    lease = await cluster.fresh_lease("engine-vm")
    renamed = VmLease(lease.path, "some-other-vm", lease.offset, io_timeout=IO_TIMEOUT)
    with pytest.raises(LeaseNotInitialised, match="another resource name"):
        await cluster.clients[0].acquire(renamed)


async def test_initialise_refuses_to_wipe(cluster: Cluster) -> None:
    client = cluster.clients[0]
    with pytest.raises(LeaseAreaInUse, match=re.escape("storage already holds {'lockspace': 'hosted-engine'")):
        await client.init_lockspace(cluster.lockspace)
    with pytest.raises(
        LeaseAreaInUse, match=re.escape("storage already holds {'lockspace': 'hosted-engine', 'resource': 'engine-vm'")
    ):
        await client.init_vm_lease(cluster.layout.vm_lease)


async def test_initialise_checks_the_volume(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.clients[0]
    small = make_volume(tmp_path / "small", MIB)
    layout = await client.detect_layout(small, resource="vm", io_timeout=IO_TIMEOUT)
    with pytest.raises(VolumeError, match=f"{small}: is {MIB} bytes; the lease layout needs at least {2 * MIB}"):
        await client.initialise(layout)
    with pytest.raises(VolumeError, match="No such file or directory"):
        await client.init_lockspace(Lockspace(tmp_path / "missing"))
