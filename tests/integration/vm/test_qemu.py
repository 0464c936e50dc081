"""A real QEMU VM through libvirt's embedded QEMU driver (``qemu:///embed?root=<dir>``).

The driver runs inside the test process with all its state under a temporary root, so no
libvirtd and no host-wide libvirt configuration is involved. The guest has no disk and no
OS: QEMU runs the firmware, which never answers the ACPI power button, so a graceful
shutdown times out for real. Start paused, pause/resume, destroy and the lifecycle events
are QEMU's own. Needs root, qemu-system-x86, libvirt-daemon-driver-qemu and the
libvirt-qemu user and group that Debian's QEMU driver resolves at start-up.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from he_ha.devcluster.realvm.qemu_libvirtd import UNCONFINED_QEMU_CONF
from he_ha.vm import (
    Deadlines,
    EventKind,
    HealthStatus,
    LibvirtCallError,
    PausedReason,
    StartOutcome,
    StopOutcome,
    VmController,
    VmStatus,
    parse_domain_xml,
)
from tests.integration.vm.helpers import ENGINE_NAME, ENGINE_UUID, StandInLease, started_connection, watching

pytestmark = [pytest.mark.slow, pytest.mark.root]

QEMU_DRIVER = Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so")
GUEST_XML = f"""<domain type='qemu'>
  <name>{ENGINE_NAME}</name><uuid>{ENGINE_UUID}</uuid>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>"""
# Runs QEMU as root without confinement: nothing of the host's libvirt set-up is needed.
QEMU_CONF = UNCONFINED_QEMU_CONF
DEADLINES = Deadlines(open=60.0, query=10.0, start=60.0, shutdown_request=10.0, destroy=30.0, migrate=30.0)


def _missing_prerequisites() -> list[str]:
    missing = []
    if shutil.which("qemu-system-x86_64") is None:
        missing.append("apt package qemu-system-x86")
    if not QEMU_DRIVER.exists():
        missing.append("apt package libvirt-daemon-driver-qemu")
    for lookup, name in ((pwd.getpwnam, "user libvirt-qemu"), (grp.getgrnam, "group libvirt-qemu")):
        try:
            lookup("libvirt-qemu")
        except KeyError:
            missing.append(name)
    return missing


@pytest.fixture(scope="module")
def embed_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One root for the module: libvirt allows a single embedded root per process."""
    missing = _missing_prerequisites()
    if missing:
        pytest.fail("real-QEMU tier needs: " + ", ".join(missing))
    root = tmp_path_factory.mktemp("qemu-embed")
    (root / "etc").mkdir()
    (root / "etc" / "qemu.conf").write_text(QEMU_CONF)
    yield root
    _kill_left_over_qemu(root)


def _kill_left_over_qemu(root: Path) -> None:
    """If a test failed before destroying its VM, end the QEMU it started, by its pid."""
    pid_file = root / "run" / "qemu" / f"{ENGINE_NAME}.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):  # already gone: nothing to clean up
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


@pytest.fixture
async def qemu(embed_root: Path) -> AsyncIterator[VmController]:
    async with started_connection(f"qemu:///embed?root={embed_root}", deadlines=DEADLINES) as conn:
        assert conn.health.status is HealthStatus.CONNECTED, conn.health
        vm = VmController(conn, parse_domain_xml(GUEST_XML, "guest").id, poll_interval=0.1)
        yield vm
        await vm.destroy()


async def test_real_qemu_lifecycle(qemu: VmController) -> None:
    spec = parse_domain_xml(GUEST_XML, "guest")
    async with watching(qemu) as events:
        assert events.initial is not None and events.initial.state.status is VmStatus.ABSENT

        started = await qemu.start(spec, StandInLease(held=True), paused=True)
        assert started.outcome is StartOutcome.STARTED
        assert started.state.status is VmStatus.PAUSED and started.state.reason is PausedReason.USER
        assert (await events.next_event(EventKind.STARTED)).event is not None
        await events.next_event(EventKind.PAUSED)

        again = await qemu.start(spec, StandInLease(held=True))
        assert again.outcome is StartOutcome.ALREADY_RUNNING and again.state.status is VmStatus.PAUSED

        assert (await qemu.resume()).status is VmStatus.RUNNING
        await events.next_event(EventKind.RESUMED)

        # No guest OS answers the ACPI power button: a real graceful-shutdown timeout.
        timed_out = await qemu.shutdown(timeout=2.0)
        assert timed_out.outcome is StopOutcome.TIMED_OUT and not timed_out.ok
        assert timed_out.state.status is VmStatus.RUNNING

        destroyed = await qemu.destroy()
        assert destroyed.outcome is StopOutcome.STOPPED
        assert destroyed.state.status is VmStatus.ABSENT  # transient: nothing left defined
        update = await events.next_event(EventKind.DESTROYED)
        assert update.state.status is VmStatus.ABSENT

        assert (await qemu.destroy()).outcome is StopOutcome.ALREADY_STOPPED


async def test_failed_migration_keeps_the_vm_and_the_connection(qemu: VmController, tmp_path: Path) -> None:
    await qemu.start(parse_domain_xml(GUEST_XML, "guest"), StandInLease(held=True))
    destination = f"qemu+unix:///system?socket={tmp_path}/no-libvirtd-here"

    # The source driver cannot reach the destination: an RPC error that must not be
    # mistaken for the loss of our own connection.
    with pytest.raises(LibvirtCallError, match="Failed to connect socket"):
        await qemu.migrate(destination)

    assert qemu.connection.health.status is HealthStatus.CONNECTED
    assert (await qemu.state()).status is VmStatus.RUNNING
