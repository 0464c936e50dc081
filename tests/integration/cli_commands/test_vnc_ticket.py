"""The VNC ticket behind ``--add-console-password`` (he_ha/supervisor/vnc_ticket.py):
its XML, the refusals and what libvirt's test driver does not support, through the VM
layer's connection (executor thread, deadline); and the real thing on real QEMU, checked
with real VNC logins."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import libvirt
import pytest

from he_ha.admin.contract import Refusal
from he_ha.supervisor.vnc_ticket import (
    TicketRefused,
    VncDisplay,
    display_of,
    set_ticket,
    ticket_device_xml,
    vnc_graphics,
)
from he_ha.vm import Backoff, Deadlines, DomainId, LibvirtCallError, LibvirtConnection

UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
ENGINE = DomainId("HostedEngine", UUID)
REPO = Path(__file__).resolve().parents[3]


def domain(devices: str) -> str:
    return (
        f"<domain type='test'><name>HostedEngine</name><uuid>{UUID}</uuid><memory>65536</memory>"
        f"<vcpu>1</vcpu><os><type>hvm</type></os><devices>{devices}</devices></domain>"
    )


# --- the XML ---------------------------------------------------------------------------------


def test_first_vnc_graphics_is_found() -> None:
    xml = domain("<graphics type='spice' port='5901'/><graphics type='vnc' port='5902'/>")
    graphics = vnc_graphics(xml)
    assert graphics is not None and graphics.get("port") == "5902"
    assert vnc_graphics(domain("<graphics type='spice' port='5901'/>")) is None
    assert vnc_graphics(domain("")) is None


@pytest.mark.parametrize(
    ("element", "display"),
    [
        ("<graphics type='vnc' port='5900' listen='192.0.2.7'/>", VncDisplay("192.0.2.7", 5900)),
        ("<graphics type='vnc' port='5901'><listen type='address' address='::1'/></graphics>", VncDisplay("::1", 5901)),
        ("<graphics type='vnc' port='5902'/>", VncDisplay("", 5902)),
        ("<graphics type='vnc' port='-1' autoport='yes'/>", None),  # not assigned yet
        ("<graphics type='vnc'><listen type='socket' socket='/run/vnc.sock'/></graphics>", None),
        ("<graphics type='vnc' port='x'/>", None),
    ],
)
def test_display(element: str, display: VncDisplay | None) -> None:
    assert display_of(ET.fromstring(element)) == display


def test_ticket_xml_keeps_the_element_and_sets_password_expiry_and_keep() -> None:
    graphics = ET.fromstring(
        "<graphics type='vnc' port='5900' listen='0.0.0.0'><listen type='address' address='0.0.0.0'/></graphics>"
    )
    valid_to = datetime(2030, 1, 2, 6, 5, 6, tzinfo=timezone(timedelta(hours=2)))  # libvirt wants UTC
    device = ET.fromstring(ticket_device_xml(graphics, "s3cret", valid_to))
    assert device.attrib == {
        "type": "vnc",
        "port": "5900",
        "listen": "0.0.0.0",
        "passwd": "s3cret",
        "passwdValidTo": "2030-01-02T04:05:06",
        "connected": "keep",
    }
    assert device.find("listen").attrib == {"type": "address", "address": "0.0.0.0"}  # type: ignore[union-attr]
    assert "passwd" not in graphics.attrib  # the element read from libvirt is left as it was


# --- libvirt's test driver, through the VM layer's connection ----------------------------------


@pytest.fixture
async def hypervisor(tmp_path: Path) -> AsyncIterator[tuple[LibvirtConnection, Path]]:
    node = tmp_path / "node.xml"
    node.write_text("<node/>")
    conn = LibvirtConnection(
        f"test://{node}",
        deadlines=Deadlines(open=5, query=5, start=5, shutdown_request=5, destroy=5, migrate=5, close=5),
        backoff=Backoff(initial=0.05, maximum=0.5),
    )
    await conn.start()
    await conn.wait_connected(5)
    try:
        yield conn, tmp_path
    finally:
        await conn.close()


async def ticket(conn: LibvirtConnection) -> VncDisplay:
    return await conn.call("set-vnc-ticket", lambda c: set_ticket(c, ENGINE, "s3cret", 120))


async def test_vm_not_here(hypervisor: tuple[LibvirtConnection, Path]) -> None:
    conn, _ = hypervisor
    with pytest.raises(TicketRefused, match="is not running on this host") as refused:
        await ticket(conn)
    assert refused.value.refusal is Refusal.VM_NOT_HERE
    await conn.call("define", lambda c: c.defineXML(domain("<graphics type='vnc' port='5900'/>")))
    with pytest.raises(TicketRefused, match="is not running on this host"):  # defined, shut off
        await ticket(conn)


@pytest.mark.parametrize(
    ("devices", "text"),
    [("", "has no VNC graphics device"), ("<graphics type='spice' port='5901'/>", "has no VNC graphics device")],
)
async def test_no_vnc_display(hypervisor: tuple[LibvirtConnection, Path], devices: str, text: str) -> None:
    conn, _ = hypervisor
    await conn.call("create", lambda c: c.createXML(domain(devices), 0))
    with pytest.raises(TicketRefused, match=text) as refused:
        await ticket(conn)
    assert refused.value.refusal is Refusal.NO_VNC


async def test_the_test_driver_cannot_update_devices(hypervisor: tuple[LibvirtConnection, Path]) -> None:
    """What libvirt's test driver does not support: virDomainUpdateDeviceFlags."""
    conn, _ = hypervisor
    await conn.call("create", lambda c: c.createXML(domain("<graphics type='vnc' port='5900'/>"), 0))
    with pytest.raises(LibvirtCallError) as failed:
        await ticket(conn)
    assert failed.value.code == libvirt.VIR_ERR_NO_SUPPORT
    assert "virDomainUpdateDeviceFlags" in str(failed.value)


# --- real QEMU -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.root
def test_ticket_on_real_qemu_lets_a_vnc_viewer_in() -> None:
    from tests.integration.vm.test_qemu import QEMU_CONF, QEMU_DRIVER

    missing = [
        what
        for what, ok in (
            ("qemu-system-x86", shutil.which("qemu-system-x86_64")),
            ("libvirt-daemon-driver-qemu", QEMU_DRIVER.exists()),
            ("openssl", shutil.which("openssl")),
        )
        if not ok
    ]
    if missing:
        pytest.fail("needs the Debian packages " + ", ".join(missing))
    # Not tmp_path: QEMU's monitor socket lives at <root>/lib/qemu/domain-1-HostedEngine/
    # monitor.sock, and under pytest-xdist (…/popen-gw2/test_ticket_on_real_qemu_lets_0/) that
    # passed the 108-byte limit of a UNIX socket path.
    root = Path(tempfile.mkdtemp(prefix="he-vnc-", dir="/tmp"))
    try:
        (root / "etc").mkdir()
        (root / "etc" / "qemu.conf").write_text(QEMU_CONF)
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.cli_commands.qemu_vnc_probe", str(root)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["login_before"] is False  # the start-time password had expired
    address, port, live_port = report["display"]
    assert (address, port) == ("127.0.0.1", live_port)
    assert report["login_right"] is True and report["login_wrong"] is False
    graphics = report["graphics"]
    assert graphics["passwd"] == "s3cret" and graphics["connected"] == "keep"
    valid_to = datetime.strptime(graphics["passwdValidTo"], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    assert timedelta(seconds=60) < valid_to - datetime.now(UTC) <= timedelta(seconds=120)
    assert "Could not set password" in report["no_start_password"]
