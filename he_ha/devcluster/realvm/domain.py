"""The engine VM's domain XML for a real QEMU (TCG) and the vm.conf that carries it.

Direct kernel boot of the cached image (no disk), one virtio NIC on QEMU user networking
with the guest's port 80 forwarded to ``127.0.0.1:<port>`` of this machine, the serial
console to a file. libvirt 9.0 forwards ports of a user-mode interface only with the passt
backend, so the NIC is passed to QEMU directly (``<qemu:commandline>``). He-ha adds the
``<lease>`` itself at launch (``--lease-holder qemu``); the XML here has none.
"""

from __future__ import annotations

import base64
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from he_ha.devcluster.realvm.image import HEALTH_PATH, KERNEL_CMDLINE, EngineImage

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
MEMORY_MIB = 128


def engine_domain_xml(name: str, uuid: str, image: EngineImage, *, http_port: int, console: Path) -> str:
    netdev = f"user,id=henet0,hostfwd=tcp:127.0.0.1:{http_port}-:80"
    args = ["-netdev", netdev, "-device", "virtio-net-pci,netdev=henet0"]
    qemu_args = "".join(f"<qemu:arg value={quoteattr(arg)}/>" for arg in args)
    return (
        f"<domain type='qemu' xmlns:qemu='{QEMU_NS}'>"
        f"<name>{escape(name)}</name><uuid>{uuid}</uuid>"
        f"<memory unit='MiB'>{MEMORY_MIB}</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type>"
        f"<kernel>{escape(str(image.kernel))}</kernel><initrd>{escape(str(image.initrd))}</initrd>"
        f"<cmdline>{escape(KERNEL_CMDLINE)}</cmdline></os>"
        "<on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        f"<serial type='file'><source path={quoteattr(str(console))}/></serial>"
        "<controller type='usb' model='none'/><memballoon model='none'/></devices>"
        f"<qemu:commandline>{qemu_args}</qemu:commandline>"
        "</domain>"
    )


def health_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}{HEALTH_PATH}"


def write_vm_conf(path: Path, name: str, uuid: str, xml: str) -> None:
    """vm.conf as hosted-engine deployment leaves it: the domain XML in ``xmlBase64``."""
    encoded = base64.b64encode(xml.encode()).decode()
    path.write_text(f"vmId={uuid}\nmemSize={MEMORY_MIB}\nvmName={name}\nxmlBase64={encoded}\n")
