"""A host whose sanlock daemon dies and comes back (host reboot, daemon crash)."""

from __future__ import annotations

from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import DaemonUnavailable, JoinOutcome, LeaseClient, LockspaceState
from tests.integration.leases.conftest import IO_TIMEOUT, PACKAGE_LOOP, make_volume

pytestmark = PACKAGE_LOOP


async def test_worker_reconnects_and_host_retakes_its_own_lease(tmp_path: Path) -> None:
    volume = make_volume(tmp_path / "hosted-engine.lockspace", 2 * 1024 * 1024)
    daemon = SanlockDaemon(tmp_path / "x", "host-x")
    with daemon:
        async with await LeaseClient.start(run_dir=daemon.run_dir) as client:
            layout = await client.detect_layout(volume, resource="engine-vm", io_timeout=IO_TIMEOUT)
            await client.initialise(layout)
            await client.join(layout.lockspace, 1)
            await client.acquire(layout.vm_lease)

            daemon.kill()
            with pytest.raises(DaemonUnavailable, match="daemon went away"):
                await client.held()  # the worker's registration died with the daemon
            with pytest.raises(DaemonUnavailable, match="not running"):
                await client.lockspace_state(layout.lockspace, 1)

            daemon.start()  # same run dir and host name: the host came back
            assert await client.lockspace_state(layout.lockspace, 1) is LockspaceState.NOT_JOINED
            assert await client.join(layout.lockspace, 1) is JoinOutcome.JOINED  # no host-dead wait for itself
            # Storage still names this host id (older generation) as owner; sanlock lets the
            # same host take it back at once, through a fresh registration of the same worker.
            await client.acquire(layout.vm_lease)
            assert [held.resource for held in await client.held()] == ["engine-vm"]
