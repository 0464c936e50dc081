"""A host as ``hosted-engine --deploy`` and VDSM left it: where its volumes are (layout)."""

from he_ha.ovirt.layout import (
    DEFAULT_MOUNT_ROOT,
    HeVolumes,
    ResolvedVolume,
    VdsmRoots,
    VolumeNotFound,
    mount_dir_name,
    resolve_volume,
    resolve_volumes,
)

__all__ = [
    "DEFAULT_MOUNT_ROOT",
    "HeVolumes",
    "ResolvedVolume",
    "VdsmRoots",
    "VolumeNotFound",
    "mount_dir_name",
    "resolve_volume",
    "resolve_volumes",
]
