"""The real-VM tier: simulated hosts whose hypervisor is a private libvirtd running a tiny
engine VM under QEMU (TCG), its lease held inside QEMU by libvirt's sanlock plugin."""

from he_ha.devcluster.realvm.harness import (
    EnginePageWatcher,
    LeaseHolding,
    RealVmCluster,
    SplitBrainWatcher,
    lease_holdings,
)
from he_ha.devcluster.realvm.image import EngineImage, ImageError, engine_image
from he_ha.devcluster.realvm.qemu_libvirtd import QemuLibvirtd

__all__ = [
    "EngineImage",
    "EnginePageWatcher",
    "ImageError",
    "LeaseHolding",
    "QemuLibvirtd",
    "RealVmCluster",
    "SplitBrainWatcher",
    "engine_image",
    "lease_holdings",
]
