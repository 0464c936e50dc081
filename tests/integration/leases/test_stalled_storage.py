"""A lease call stuck on hung storage: typed timeout, the other calls and the loop carry on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from he_ha.lease import LeaseCallTimeout, LockspaceState
from tests.integration.leases.conftest import PACKAGE_LOOP, Cluster, make_volume
from tests.support.stallfs import StallFS

pytestmark = [PACKAGE_LOOP, pytest.mark.root]


async def test_a_call_stuck_on_hung_storage_times_out_without_blocking_others(cluster: Cluster, tmp_path: Path) -> None:
    backing = make_volume(tmp_path / "backing", 1024 * 1024)
    (tmp_path / "mnt").mkdir()
    client = cluster.clients[0]
    with StallFS(tmp_path / "mnt", backing, name="lockspace") as fs:
        await client.volume_info(fs.path)  # flows while the storage answers
        fs.stall()
        probe = asyncio.create_task(client.volume_info(fs.path, timeout=2.0))
        await asyncio.to_thread(fs.wait_blocked)  # the worker thread is now stuck in the kernel
        # Other lease calls of this host still answer while one is stuck.
        assert await client.lockspace_state(cluster.lockspace, 1, timeout=2.0) is LockspaceState.JOINED
        with pytest.raises(LeaseCallTimeout, match=r"volume_info on .*lockspace: no answer within 2 s"):
            await probe
        fs.resume()  # the stuck call finishes; its late reply is logged and dropped
    assert await client.lockspace_state(cluster.lockspace, 1) is LockspaceState.JOINED
