"""Child process of test_vnc_ticket.py: a real QEMU VM (libvirt's embedded QEMU driver, no
libvirtd) with a VNC display, a ticket set on it with he_ha.supervisor.vnc_ticket, and real
VNC logins (RFB 3.8, VNC authentication) before and after. Prints one JSON object.

A child process because libvirt allows one embedded driver root per process (and
tests/integration/vm uses one in the test process).

VNC authentication encrypts the server's 16-byte challenge with DES, keyed by the password
(8 bytes, NUL padded, each byte's bits reversed). DES comes from the openssl command (its
legacy provider): Python's standard library has none.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from he_ha.supervisor.vnc_ticket import set_ticket
from he_ha.vm import DomainId
from he_ha.vm.eventthread import ensure_event_thread

UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
# As the engine's vm.conf has it: a password, expired, so that QEMU runs VNC with
# password authentication and a ticket can be set later (QEMU refuses set_password else).
GRAPHICS = "<graphics type='vnc' autoport='yes' listen='127.0.0.1' passwd='*****' passwdValidTo='1970-01-01T00:00:01'/>"
XML = f"""<domain type='qemu'><name>HostedEngine</name><uuid>{UUID}</uuid>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{{graphics}}
    <video><model type='cirrus'/></video><memballoon model='none'/></devices></domain>"""


def _des(key: bytes, block: bytes) -> bytes:
    done = subprocess.run(
        ["openssl", "enc", "-des-ecb", "-nopad", "-K", key.hex(), "-provider", "legacy", "-provider", "default"],
        input=block,
        capture_output=True,
        timeout=10,
        check=True,
    )
    return done.stdout


def vnc_login(port: int, password: str) -> bool:
    """One RFB 3.8 handshake with VNC authentication; True if the server accepted it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        version = sock.recv(12)
        sock.sendall(version)
        count = sock.recv(1)[0]
        types = sock.recv(count)
        if 2 not in types:
            raise AssertionError(f"VNC authentication not offered: {list(types)}")
        sock.sendall(bytes([2]))
        challenge = sock.recv(16)
        key = bytes(int(f"{byte:08b}"[::-1], 2) for byte in password.encode()[:8].ljust(8, b"\0"))
        sock.sendall(_des(key, challenge))
        return int.from_bytes(sock.recv(4), "big") == 0


def main(root: Path) -> None:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    ensure_event_thread()
    conn = libvirt.open(f"qemu:///embed?root={root}")
    engine = DomainId("HostedEngine", UUID)
    report: dict[str, object] = {}
    try:
        dom = conn.createXML(XML.format(graphics=GRAPHICS), 0)
        try:
            graphics = ET.fromstring(dom.XMLDesc(0)).find("devices/graphics")
            port_text = graphics.get("port") if graphics is not None else None
            assert port_text is not None, "no VNC port in the running domain's XML"
            port = int(port_text)
            report["login_before"] = vnc_login(port, "s3cret")
            display = set_ticket(conn, engine, "s3cret", 120)
            report["display"] = [display.address, display.port, port]
            report["login_right"] = vnc_login(port, "s3cret")
            report["login_wrong"] = vnc_login(port, "wrong")
            secure = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)).find("devices/graphics")
            report["graphics"] = dict(secure.attrib) if secure is not None else None
        finally:
            dom.destroy()
        # without a password at start, QEMU refuses to set one later: the error reaches the caller
        dom = conn.createXML(XML.format(graphics="<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>"), 0)
        try:
            set_ticket(conn, engine, "s3cret", 120)
            report["no_start_password"] = "accepted"
        except libvirt.libvirtError as exc:
            report["no_start_password"] = exc.get_error_message()
        finally:
            dom.destroy()
    finally:
        conn.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
