"""The fake engine VM: a libvirt test-driver node with one running domain."""

from __future__ import annotations

import libvirt

ENGINE_UUID = "6a3c9a1e-0b7e-4d3f-9a51-2f0c3d4e5f60"
ENGINE_NAME = "HostedEngine"

NODE_XML = f"""<node>
  <domain type='test'>
    <name>{ENGINE_NAME}</name>
    <uuid>{ENGINE_UUID}</uuid>
    <memory unit='MiB'>1024</memory>
    <vcpu>2</vcpu>
    <os><type>hvm</type></os>
  </domain>
</node>
"""


def engine(conn: libvirt.virConnect) -> libvirt.virDomain:
    return conn.lookupByUUIDString(ENGINE_UUID)


def remove_engine(conn: libvirt.virConnect) -> None:
    """Stop and forget the domain: libvirt then has no such domain (VDSM's NoSuchVM)."""
    dom = engine(conn)
    dom.destroy()
    dom.undefine()
