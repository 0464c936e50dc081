"""The engine VM's domain XML for a real QEMU (TCG) and the vm.conf that carries it.

Direct kernel boot of the cached image (no disk), one virtio NIC on QEMU user networking
with the guest's port 80 forwarded to ``127.0.0.1:<port>`` of this machine, the serial
console to a file. libvirt 9.0 forwards ports of a user-mode interface only with the passt
backend, so the NIC is passed to QEMU directly (``<qemu:commandline>``). He-ha adds the
``<lease>`` itself at launch (``--lease-holder qemu``); the XML here has none.

One XML for every host, as on oVirt (and as a live migration needs: the destination's QEMU
is started from the source's XML): what is per host is reached through paths each host's
libvirtd and its QEMU see in their own mount namespace (libvirtd.py binds a directory of the
host's own over ``/var/lib/libvirt`` and ``/var/log/libvirt``): the NIC is defined by
``-readconfig NET_CONFIG``, a QEMU config file with the host's own forwarded port
(``write_host_net``), and the serial console goes to ``CONSOLE``. Each host keeps a port of
its own (harness.py), so a VM migrated to another host answers on that host's port.
``engine_domain_xml(..., http_port=N)`` gives the older one-host form (the port on the command line).
"""

from __future__ import annotations

import base64
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from he_ha.devcluster.realvm.image import HEALTH_PATH, KERNEL_CMDLINE, EngineImage
from he_ha.ovirt.engine_xml import CHANNEL_DIR as HOOK_CHANNEL_DIR

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
MEMORY_MIB = 128
NET_CONFIG = Path("/var/lib/libvirt/he-engine-net.cfg")  # in the host's libvirtd namespace
CONSOLE = Path("/var/log/libvirt/engine-console.log")  # likewise
CHANNEL_DIR = Path(HOOK_CHANNEL_DIR)  # likewise: the hosted-engine hook's channels


def engine_domain_xml(
    name: str, uuid: str, image: EngineImage, *, http_port: int | None = None, console: Path = CONSOLE
) -> str:
    """The tiny engine's domain. ``http_port`` None: the NIC from the host's ``NET_CONFIG``
    (the same XML on every host); else forwarded to that port on QEMU's command line."""
    if http_port is None:
        args = ["-readconfig", str(NET_CONFIG), "-device", "virtio-net-pci,netdev=henet0"]
    else:
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


def write_host_net(libvirt_lib: Path, http_port: int) -> None:
    """The host's ``NET_CONFIG`` (the user-mode netdev forwarding ``http_port``) and the hook's
    channel directory, in ``libvirt_lib``: the host's directory bound over /var/lib/libvirt."""
    (libvirt_lib / NET_CONFIG.name).write_text(
        f'[netdev "henet0"]\n  type = "user"\n  hostfwd = "tcp:127.0.0.1:{http_port}-:80"\n'
    )
    (libvirt_lib / CHANNEL_DIR.relative_to("/var/lib/libvirt")).mkdir(parents=True, exist_ok=True)


def health_url(http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}{HEALTH_PATH}"


def write_vm_conf(path: Path, name: str, uuid: str, xml: str) -> None:
    """vm.conf as hosted-engine deployment leaves it: the domain XML in ``xmlBase64``."""
    encoded = base64.b64encode(xml.encode()).decode()
    path.write_text(f"vmId={uuid}\nmemSize={MEMORY_MIB}\nvmName={name}\nxmlBase64={encoded}\n")
