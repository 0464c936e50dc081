"""Two simulated hosts with real sanlock daemons sharing a lockspace volume on disk.

The daemons, the volume and the joined lockspace are shared by every test of this package
(joining costs ~3 s with io_timeout=1); tests that kill daemons start their own. Each test
that needs a VM lease gets a fresh lease area (``cluster.fresh_lease()``) on the shared
volume, so tests never inherit each other's lease state. Package-scoped async fixtures need
the tests on the package's event loop: modules set ``pytestmark = PACKAGE_LOOP``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import LeaseClient, LeaseLayout, Lockspace, VmLease

IO_TIMEOUT = 1  # joins take ~3 s instead of ~30 s; host-dead time is 68 s instead of 140 s
VOLUME_SIZE = 64 * 1024 * 1024  # sparse: lockspace (1 MiB) + one 1 MiB area per fresh lease
PACKAGE_LOOP = pytest.mark.asyncio(loop_scope="package")


def make_volume(path: Path, size: int = VOLUME_SIZE) -> Path:
    with open(path, "wb") as volume:
        volume.truncate(size)
    return path


@dataclass
class Cluster:
    """Host A (id 1) and host B (id 2), both joined to ``layout.lockspace``."""

    daemons: tuple[SanlockDaemon, SanlockDaemon]
    clients: tuple[LeaseClient, LeaseClient]
    layout: LeaseLayout
    base: Path
    _offsets: Iterator[int] = field(default_factory=lambda: itertools.count(2))

    @property
    def lockspace(self) -> Lockspace:
        return self.layout.lockspace

    async def fresh_lease(self, resource: str = "engine-vm") -> VmLease:
        """A newly initialised lease area of its own on the shared volume."""
        align = self.layout.vm_lease.align
        lease = VmLease(
            self.lockspace.path,
            resource,
            next(self._offsets) * align,
            self.lockspace.name,
            self.lockspace.sector_size,
            align,
            IO_TIMEOUT,
        )
        await self.clients[0].init_vm_lease(lease)
        return lease

    @asynccontextmanager
    async def new_client(self, host: int) -> AsyncIterator[LeaseClient]:
        """A second lease worker for host 0 (A) or 1 (B), as a restarted supervisor has."""
        client = await LeaseClient.start(
            run_dir=self.daemons[host].run_dir, stderr=self.daemons[host].run_dir / "worker.log"
        )
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture(scope="package")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SanlockDaemon, SanlockDaemon]]:
    base = tmp_path_factory.mktemp("sanlock")
    with SanlockDaemon(base / "a", "host-a") as a, SanlockDaemon(base / "b", "host-b") as b:
        yield a, b


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def cluster(
    daemons: tuple[SanlockDaemon, SanlockDaemon], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    base = tmp_path_factory.mktemp("volumes")  # tmp_path is on a disk filesystem: O_DIRECT works
    volume = make_volume(base / "hosted-engine.lockspace")
    a, b = daemons
    async with (
        await LeaseClient.start(run_dir=a.run_dir, stderr=a.run_dir / "worker.log") as client_a,
        await LeaseClient.start(run_dir=b.run_dir, stderr=b.run_dir / "worker.log") as client_b,
    ):
        layout = await client_a.detect_layout(volume, resource="engine-vm", io_timeout=IO_TIMEOUT)
        await client_a.initialise(layout)
        await asyncio.gather(client_a.join(layout.lockspace, 1), client_b.join(layout.lockspace, 2))
        yield Cluster(daemons, (client_a, client_b), layout, base)
