"""The engine VM defined only by the engine's OVF in an OVF_STORE volume, for the real-VM tier
(docs/realvm.md, spec ovirt-host-integration.md §3).

``engine_ovf_xml`` is the tiny engine image's domain in the engine's form: ``ovirt-vm`` metadata
whose first disk device is ``exclusive``, sysinfo with VDSM's ``OS-NAME:``/``OS-VERSION:``/
``HOST-SERIAL:`` placeholders (``<smbios mode='sysinfo'/>``), the HE disk by its
``/rhev/data-center/<pool>/<SD>/images/<IMG>/<VOL>`` path and its ``<lease>`` with
``LEASE-PATH:``/``LEASE-OFFSET:`` (engine_lease.py). ``engine_ovf`` wraps it, as ``EngineXml``,
in an engine-written OVF (a template such as the shared ``ovf_test_v4.2.xml``) whose VM id, disk
ids, storage domain and memory item are this deployment's, so that the original's safety rule
accepts it and he-ha's conversion yields ``xmlBase64``.

One OVF serves every host, as on oVirt, so nothing in it may be per host. What is per host is
reached through paths that each host's libvirtd (and its QEMU) sees in its own mount namespace
(libvirtd.py binds a directory of its own over ``/var/lib/libvirt`` and ``/var/log/libvirt``):

* the NIC: ``-readconfig /var/lib/libvirt/he-engine-net.cfg`` on QEMU's command line, a QEMU
  config file defining the user-mode netdev with the host's own forwarded port
  (``write_host_files``; one port per host, see harness.py);
* the serial console: ``/var/log/libvirt/engine-console.log``;
* the hosted-engine hook's channel: ``/var/lib/libvirt/qemu/channels/``, where the hook puts it.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from he_ha.devcluster.deployed import BLANK, Deployment
from he_ha.devcluster.realvm.engine_lease import engine_lease_xml
from he_ha.devcluster.realvm.guest import CONSOLE, NET_CONFIG, QEMU_NS, write_host_net
from he_ha.devcluster.realvm.image import KERNEL_CMDLINE, EngineImage
from he_ha.devcluster.realvm.qemu_libvirtd import QemuLibvirtd
from he_ha.ovirt.engine_xml import CHANNEL_DIR
from he_ha.ovirt.ovf import OVIRT_VM_NS


def engine_ovf_xml(name: str, vm_uuid: str, image: EngineImage, d: Deployment, *, memory_mib: int) -> str:
    """The tiny engine's domain XML as the engine writes it into the OVF (see the module doc)."""
    args = ["-readconfig", str(NET_CONFIG), "-device", "virtio-net-pci,netdev=henet0"]
    qemu_args = "".join(f"<qemu:arg value={quoteattr(arg)}/>" for arg in args)
    disk = d.disk("vm")
    sysinfo = (
        "<sysinfo type='smbios'><system><entry name='manufacturer'>oVirt</entry>"
        "<entry name='product'>OS-NAME:</entry><entry name='version'>OS-VERSION:</entry>"
        f"<entry name='serial'>HOST-SERIAL:</entry><entry name='uuid'>{vm_uuid}</entry></system></sysinfo>"
    )
    metadata = (
        f"<metadata><ovirt-vm:vm><ovirt-vm:device devtype='disk' name='vdb'>"
        f"<ovirt-vm:poolID>{BLANK}</ovirt-vm:poolID><ovirt-vm:volumeID>{disk.volume}</ovirt-vm:volumeID>"
        "<ovirt-vm:shared>exclusive</ovirt-vm:shared>"
        f"<ovirt-vm:imageID>{disk.image}</ovirt-vm:imageID><ovirt-vm:domainID>{d.sd_uuid}</ovirt-vm:domainID>"
        "</ovirt-vm:device></ovirt-vm:vm></metadata>"
    )
    xml = (
        f"<domain type='qemu' xmlns:qemu='{QEMU_NS}' xmlns:ovirt-vm='{OVIRT_VM_NS}'>"
        f"<name>{escape(name)}</name><uuid>{vm_uuid}</uuid>"
        f"<memory unit='MiB'>{memory_mib}</memory><currentMemory unit='MiB'>{memory_mib}</currentMemory>"
        f"<vcpu>1</vcpu>{sysinfo}"
        "<os><type arch='x86_64' machine='pc'>hvm</type>"
        f"<kernel>{escape(str(image.kernel))}</kernel><initrd>{escape(str(image.initrd))}</initrd>"
        f"<cmdline>{escape(KERNEL_CMDLINE)}</cmdline><smbios mode='sysinfo'/></os>"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        f"<serial type='file'><source path={quoteattr(str(CONSOLE))}/></serial>"
        "<controller type='usb' model='none'/><memballoon model='none'/></devices>"
        f"{metadata}<qemu:commandline>{qemu_args}</qemu:commandline>"
        "</domain>"
    )
    return engine_lease_xml(xml, d, Path(CHANNEL_DIR))


def engine_ovf(template: str, d: Deployment, engine_xml: str, *, memory_mib: int) -> bytes:
    """``template`` (an engine-written OVF with one disk and ``EngineXml``) made this
    deployment's: its VM id, storage domain, HE disk image/volume and memory item replaced,
    its ``EngineXml`` = ``engine_xml`` (escaped text, with an XML declaration as the engine writes it)."""
    (vm_id,) = set(re.findall(r'<Section ovf:id="([0-9a-f-]{36})"[^>]*OperatingSystemSection_Type', template))
    ((image, volume),) = set(re.findall(r'ovf:fileRef="([0-9a-f-]{36})/([0-9a-f-]{36})"', template))
    (sd,) = set(re.findall(r"<rasd:StorageId>([0-9a-f-]{36})</rasd:StorageId>", template))
    disk = d.disk("vm")
    text = template
    for old, new in ((vm_id, d.vm_uuid), (sd, d.sd_uuid), (image, disk.image), (volume, disk.volume)):
        text = text.replace(old, new)
    text, found = re.subn(
        r"(<rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:VirtualQuantity>)\d+",
        rf"\g<1>{memory_mib}",
        text,
    )
    if found != 1:
        raise ValueError(f"the OVF template has {found} memory items, not 1")
    declared = '<?xml version="1.0" encoding="UTF-8"?>' + engine_xml
    text, found = re.subn(
        r"<EngineXml>.*?</EngineXml>", lambda _: f"<EngineXml>{escape(declared)}</EngineXml>", text, flags=re.S
    )
    if found != 1:
        raise ValueError("the OVF template has no EngineXml")
    return text.encode()


def host_serial(host_id: int) -> str:
    """The host's ``/etc/vdsm/vdsm.id`` (HOST-SERIAL:), one per simulated host."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"he-ha realvm host {host_id}"))


def write_host_files(host_root: Path, host_id: int, libvirtd: QemuLibvirtd, http_port: int) -> None:
    """What the one OVF needs per host: the QEMU netdev config with the host's port and the hook's
    channel directory in its libvirtd's namespace; the host facts VDSM reads for the sysinfo
    placeholders under ``host_root`` (``he-ha run --host-root``): ``etc/vdsm/vdsm.id``, ``etc/debian_version``."""
    write_host_net(libvirtd.state / "lib", http_port)
    vdsm = host_root / "etc" / "vdsm"
    vdsm.mkdir(parents=True, exist_ok=True)
    (vdsm / "vdsm.id").write_text(host_serial(host_id) + "\n")
    (host_root / "etc" / "debian_version").write_text("12.0\n")


def console_path(libvirtd: QemuLibvirtd) -> Path:
    """Where ``CONSOLE`` is outside the host's libvirtd namespace."""
    return libvirtd.state / "log" / CONSOLE.name
