"""Looking at the VM lease from another process, as another host's sanlock client would."""

from __future__ import annotations

import asyncio
import time

from he_ha.devcluster.cluster import WAIT, Cluster, Host
from he_ha.lease import LeaseHeldElsewhere, LeaseOwner


def try_acquire(cluster: Cluster, host: Host) -> bool:
    """Can ``host`` take the VM lease right now? (Released again at once if it could.)"""

    async def attempt() -> bool:
        assert cluster.layout is not None
        async with cluster.lease_client(host) as client:
            await client.join(cluster.layout.lockspace, host.host_id)  # idempotent: fast after the first
            try:
                await client.acquire(cluster.layout.vm_lease, timeout=20)
            except LeaseHeldElsewhere:
                return False
            await client.release(cluster.layout.vm_lease)
            return True

    return asyncio.run(attempt())


def owners(cluster: Cluster, host: Host) -> list[LeaseOwner]:
    async def read() -> list[LeaseOwner]:
        assert cluster.layout is not None
        async with cluster.lease_client(host) as client:
            return await client.owners(cluster.layout.vm_lease)

    return asyncio.run(read())


def wait_until_acquirable(cluster: Cluster, host: Host, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not try_acquire(cluster, host):
        if time.monotonic() > deadline:
            raise AssertionError(f"{host.name} still cannot take the VM lease after {timeout} s")
        time.sleep(0.5)
