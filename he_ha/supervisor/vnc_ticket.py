"""A temporary VNC password (a "ticket") on the engine VM running here.

``hosted-engine --add-console-password`` made VDSM call ``VM.updateDevice`` (graphics vnc,
password, ttl, existingConnAction=keep). In libvirt terms that is ``updateDeviceFlags`` with
the LIVE ``<graphics type='vnc'>`` element carrying ``passwd``, ``passwdValidTo`` (UTC) and
``connected='keep'`` (viewers already connected stay). The live element is sent back whole:
QEMU refuses a graphics update that changes its listen address or port.

``set_ticket`` is blocking; the controller runs it through ``LibvirtConnection.call`` (an
executor thread, a deadline). libvirt's test driver has no ``updateDeviceFlags``: there the
call fails with VIR_ERR_NO_SUPPORT, reported as such.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import libvirt

from he_ha.admin.contract import Refusal
from he_ha.vm import DomainId

WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # listening everywhere: no address to tell a viewer


class TicketRefused(Exception):
    """No ticket set: the VM is not here, or it has no VNC display with a port."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(frozen=True)
class VncDisplay:
    address: str  # as libvirt reports the listen address; may be a wildcard (WILDCARDS)
    port: int


def vnc_graphics(domain_xml: str) -> ET.Element | None:
    """The domain's first VNC ``<graphics>`` element, or None."""
    for graphics in ET.fromstring(domain_xml).iterfind("devices/graphics"):
        if graphics.get("type") == "vnc":
            return graphics
    return None


def display_of(graphics: ET.Element) -> VncDisplay | None:
    """Where a viewer connects; None without a TCP port (autoport not assigned, a unix socket)."""
    try:
        port = int(graphics.get("port", "-1"))
    except ValueError:
        return None
    if port <= 0:
        return None
    address = graphics.get("listen")
    if address is None:
        listen = graphics.find("listen")
        address = listen.get("address") if listen is not None else None
    return VncDisplay(address or "", port)


def ticket_device_xml(graphics: ET.Element, password: str, valid_to: datetime) -> str:
    """The live element with the new password, valid until ``valid_to`` (made UTC)."""
    device = ET.fromstring(ET.tostring(graphics))  # a copy: the caller's element stays as read
    device.set("passwd", password)
    device.set("passwdValidTo", valid_to.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    device.set("connected", "keep")
    return ET.tostring(device, encoding="unicode")


def _domain(conn: libvirt.virConnect, domain: DomainId) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(domain.uuid) if domain.uuid else conn.lookupByName(domain.name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def set_ticket(conn: libvirt.virConnect, domain: DomainId, password: str, ttl: int) -> VncDisplay:
    """Blocking: set the ticket on the running domain; TicketRefused or libvirtError."""
    dom = _domain(conn, domain)
    if dom is None or not dom.isActive():
        raise TicketRefused(Refusal.VM_NOT_HERE, f"the engine VM {domain} is not running on this host")
    graphics = vnc_graphics(dom.XMLDesc(0))
    if graphics is None:
        raise TicketRefused(Refusal.NO_VNC, f"the engine VM {domain} has no VNC graphics device")
    display = display_of(graphics)
    if display is None:
        raise TicketRefused(Refusal.NO_VNC, f"the VNC display of the engine VM {domain} has no TCP port")
    valid_to = datetime.now(UTC) + timedelta(seconds=ttl)
    dom.updateDeviceFlags(ticket_device_xml(graphics, password, valid_to), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    return display
