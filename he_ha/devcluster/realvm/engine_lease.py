"""The engine's own disk lease on the deployed layout, for the real-VM tier (docs/realvm.md).

On an oVirt host the HE VM is protected by the HE disk's volume lease: resource ``<VOL>`` in
the storage domain's lockspace ``<SD>`` (``<SD>/dom_md/ids``), at offset 0 of
``<SD>/images/<IMG>/<VOL>.lease`` (spec ovirt-host-integration.md §1.4, §4.5). The deployed
layout leaves ``ids`` empty and ``<VOL>.lease`` unformatted (VDSM formats them); here they are
written with sanlock, as VDSM would (write_lockspace, write_resource), but with io_timeout 1
instead of VDSM's 10: the tier's hosts all use io_timeout 1, so that a crashed host's ids are
free after about 70 s of host-dead time rather than about 140 s.

``engine_lease_xml`` makes the tiny engine image's domain XML an engine XML: the HE disk named
by its VDSM path (resolved by he-ha to the volume under the host's mount root; the guest never
uses it) and the disk's ``<lease>`` with VDSM's LEASE-PATH/LEASE-OFFSET placeholders, plus the
hosted-engine hook's channel in the host's own directory (where the hook would put it under
/var/lib/libvirt, which these private libvirtds do not own). The disk is ``<shareable/>``: all
simulated hosts share one machine and one file, and QEMU's own image locking would refuse a
second host's QEMU before libvirt asks sanlock for the leases (which it does only before the
vCPUs run); shared, the refusal is the lease's, as between real hosts.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from he_ha.devcluster.deployed import BLANK, DeployedHostView, Deployment
from he_ha.lease import MIB, LeaseClient, Lockspace, VmLease, domain_lockspace, domain_resource
from he_ha.ovirt.engine_xml import HOOK_CHANNEL

ENGINE_LEASE_IO_TIMEOUT = 1  # VDSM's is 10; see the module doc


def engine_lease_paths(view: DeployedHostView) -> tuple[Path, Path]:
    """(``<SD>/dom_md/ids``, ``<SD>/images/<IMG>/<VOL>.lease``) of the HE disk, as ``view`` sees them."""
    disk = view.deployment.disk("vm")
    return view.domain_dir / "dom_md" / "ids", view.volume("vm").with_name(f"{disk.volume}.lease")


def engine_lease_areas(view: DeployedHostView, io_timeout: int = ENGINE_LEASE_IO_TIMEOUT) -> tuple[Lockspace, VmLease]:
    """The lockspace ``<SD>`` and the HE disk's lease ``<VOL>`` as he-ha computes them from the lease path."""
    d, disk = view.deployment, view.deployment.disk("vm")
    _, lease = engine_lease_paths(view)
    return (
        domain_lockspace(d.sd_uuid, lease, io_timeout=io_timeout),
        domain_resource(d.sd_uuid, disk.volume, lease, 0, io_timeout=io_timeout),
    )


def write_engine_lease(view: DeployedHostView, run_dir: Path, io_timeout: int = ENGINE_LEASE_IO_TIMEOUT) -> None:
    """Format the domain's ids (lockspace ``<SD>``) and the HE disk's volume lease through the
    sanlock daemon of ``run_dir``. Blocking."""
    lockspace, lease = engine_lease_areas(view, io_timeout)
    if lockspace.path.stat().st_size < MIB:  # created empty; sanlock formats it to about 1 MiB
        os.truncate(lockspace.path, MIB)

    async def write() -> None:
        async with await LeaseClient.start(run_dir=run_dir) as client:
            await client.init_lockspace(lockspace)
            await client.init_vm_lease(lease)

    asyncio.run(write())


def engine_lease_xml(xml: str, d: Deployment, channel_dir: Path, *, readonly_disk: bool = False) -> str:
    """``xml`` (the tiny engine's domain) with the HE disk and its lease as the engine writes them.

    ``readonly_disk``: the HE disk ``<readonly/>`` as well, for a live migration. libvirt
    refuses to migrate a VM with a writable disk on a local file system ("Migration without
    shared storage is unsafe": it accepts NFS, GFS2, OCFS2, CephFS, GPFS... or a block device);
    on oVirt the HE disk is on the shared storage domain, here the domain is a directory of
    this machine's ext4. The guest never uses the disk, and the lease is the disk's
    ``<lease>``, not QEMU's use of the disk."""
    disk = d.disk("vm")
    source = f"/rhev/data-center/{BLANK}/{d.sd_uuid}/images/{disk.image}/{disk.volume}"
    readonly = "<readonly/>" if readonly_disk else ""
    devices = (
        "<disk type='file' device='disk' snapshot='no'><driver name='qemu' type='raw'/>"
        f"<source file='{source}'/><target dev='vdb' bus='virtio'/><serial>{disk.image}</serial>"
        f"{readonly}<shareable/>{_pci(0x0A)}</disk>"
        f"<lease><key>{disk.volume}</key><lockspace>{d.sd_uuid}</lockspace>"
        f"<target offset='LEASE-OFFSET:{disk.volume}:{d.sd_uuid}' path='LEASE-PATH:{disk.volume}:{d.sd_uuid}'/>"
        "</lease>"
        f"<controller type='virtio-serial' index='0'>{_pci(0x0B)}</controller>"
        f"<channel type='unix'><source mode='bind' path='{channel_dir}/engine.{HOOK_CHANNEL}'/>"
        f"<target type='virtio' name='{HOOK_CHANNEL}'/></channel>"
    )
    # explicit PCI slots: the NIC is passed to QEMU on its command line (domain.py), where
    # QEMU puts it in the first free slot, which libvirt knows nothing of
    if "</devices>" not in xml:
        raise ValueError("the domain XML has no <devices>")
    return xml.replace("</devices>", devices + "</devices>", 1)


def _pci(slot: int) -> str:
    return f"<address type='pci' domain='0x0000' bus='0x00' slot='0x{slot:02x}' function='0x0'/>"
