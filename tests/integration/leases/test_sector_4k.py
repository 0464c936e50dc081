"""4K-sector storage (a loop device with 4096-byte sectors): detection and host id 2000 (B27)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from he_ha.config import MAX_HOST_ID
from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import MIB, JoinOutcome, LeaseClient
from tests.integration.leases.conftest import IO_TIMEOUT, PACKAGE_LOOP, make_volume

pytestmark = [PACKAGE_LOOP, pytest.mark.root]


@pytest.fixture
def loop_device_4k(tmp_path: Path) -> Iterator[Path]:
    backing = make_volume(tmp_path / "backing.img", 16 * MIB)
    device = subprocess.run(
        ["losetup", "-f", "--show", "--sector-size", "4096", str(backing)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    try:
        yield Path(device)
    finally:
        subprocess.run(["losetup", "-d", device], check=True, timeout=30)


async def test_4k_device_gets_8m_alignment_and_holds_host_id_2000(loop_device_4k: Path, tmp_path: Path) -> None:
    daemon = SanlockDaemon(tmp_path / "host", "host-4k")
    with daemon:
        try:
            async with await LeaseClient.start(run_dir=daemon.run_dir) as client:
                info = await client.volume_info(loop_device_4k)
                assert (info.block, info.sector_size, info.size) == (True, 4096, 16 * MIB)
                layout = await client.detect_layout(loop_device_4k, resource="engine-vm", io_timeout=IO_TIMEOUT)
                assert (layout.lockspace.align, layout.vm_lease.offset) == (8 * MIB, 8 * MIB)
                await client.initialise(layout)
                assert await client.join(layout.lockspace, MAX_HOST_ID) is JoinOutcome.JOINED
                await client.acquire(layout.vm_lease)
                assert [owner.host_id for owner in await client.owners(layout.vm_lease)] == [MAX_HOST_ID]
                await client.release(layout.vm_lease)
        finally:
            daemon.kill()  # at once: the loop device goes away next, the lockspace must not outlive it
