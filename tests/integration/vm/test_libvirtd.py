"""Against a real libvirtd of our own (serving libvirt's test driver over its unix socket):
a hung daemon (SIGSTOP) and a crashed-and-restarted daemon (SIGKILL, start again).

Nothing is simulated here: the hang is a real process that stops answering, the restart a
real daemon exit and a new process. Needs root and the Debian package libvirt-daemon.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from he_ha.devcluster.libvirtd import PrivateLibvirtd
from he_ha.vm import (
    Deadlines,
    EventKind,
    HealthStatus,
    HypervisorBusy,
    HypervisorHealth,
    HypervisorTimeout,
    HypervisorUnreachable,
    LibvirtConnection,
    UpdateCause,
    VmController,
    VmStatus,
)
from tests.integration.vm.helpers import (
    ENGINE,
    TEST_DEADLINES,
    LoopLagProbe,
    domain_xml,
    started_connection,
    watching,
    write_node,
)

pytestmark = pytest.mark.root


@pytest.fixture
async def remote(libvirtd: PrivateLibvirtd, tmp_path: Path) -> AsyncIterator[LibvirtConnection]:
    write_node(tmp_path, domain_xml())
    deadlines = Deadlines(**{**vars(TEST_DEADLINES), "query": 0.5})
    async with started_connection(libvirtd.uri(tmp_path / "node.xml"), deadlines=deadlines) as conn:
        assert conn.health.status is HealthStatus.CONNECTED, conn.health
        yield conn


async def _wait_for_status(conn: LibvirtConnection, status: HealthStatus, timeout: float = 10.0) -> None:
    async def settled() -> None:
        while conn.health.status is not status:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(settled(), timeout)


async def test_hung_libvirtd_times_out_without_blocking_the_loop(
    libvirtd: PrivateLibvirtd, remote: LibvirtConnection
) -> None:
    vm = VmController(remote, ENGINE)
    assert (await vm.state()).status is VmStatus.RUNNING

    libvirtd.freeze()
    try:
        async with LoopLagProbe() as probe:
            with pytest.raises(HypervisorTimeout, match=re.escape("'state' did not return within 0.5 s")):
                await vm.state()
        assert probe.ticks >= 10 and probe.max_lag < 0.05

        health = remote.health
        assert health.status is HealthStatus.HUNG and "'state' stuck" in health.detail
        with pytest.raises(HypervisorBusy, match="earlier call 'state' stuck"):
            await vm.destroy()  # refused at once, not queued behind the stuck call
    finally:
        libvirtd.thaw()

    # The daemon answers again: the stuck call returns and the connection is usable.
    await _wait_for_status(remote, HealthStatus.CONNECTED)
    assert (await vm.state()).status is VmStatus.RUNNING


async def test_reconnects_after_libvirtd_restart_and_re_registers_events(
    libvirtd: PrivateLibvirtd, remote: LibvirtConnection
) -> None:
    vm = VmController(remote, ENGINE)
    health_changes: list[HypervisorHealth] = []
    remote.add_health_listener(health_changes.append)
    async with watching(vm) as events:
        libvirtd.kill()

        down = await events.next()
        assert down.cause is UpdateCause.DISCONNECTED
        # "hypervisor unreachable", never "VM down"
        assert down.state.status is VmStatus.UNKNOWN and "hypervisor unreachable" in down.state.detail
        assert down.health.status is HealthStatus.UNREACHABLE
        with pytest.raises(HypervisorUnreachable):
            await vm.state()
        await asyncio.sleep(0.3)  # a few reconnect attempts fail against the missing socket
        assert remote.health.failed_attempts >= 1

        libvirtd.start()

        up = await events.next()
        assert up.cause is UpdateCause.RECONNECTED
        assert up.state.status is VmStatus.RUNNING  # re-read from the new daemon
        assert up.health.status is HealthStatus.CONNECTED
        assert [h.status for h in health_changes] == [HealthStatus.UNREACHABLE, HealthStatus.CONNECTED]

        # The lifecycle callback was registered again on the new connection.
        await vm.destroy()
        update = await events.next_event(EventKind.DESTROYED)
        assert update.state.status is VmStatus.SHUTOFF
