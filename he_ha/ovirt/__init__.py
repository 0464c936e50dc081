"""A host as ``hosted-engine --deploy`` and VDSM left it, and the engine's VM definition on it.

- ``layout``: where the hosted-engine volumes are (VDSM's storage-domain layout);
- ``domain_meta``: what the storage domain records about its volumes (the volume metadata
  block, a block domain's LV tags and metadata slots);
- ``lvm``: a block domain's LVM tags, read with ``lvs`` on a host (the devcluster's side file
  under a relocated root);
- ``ovf``: the engine's OVF converted into vm.conf, as the original agent converts it;
- ``ovf_store``: the OVF_STORE volumes of the storage domain, and ``<vmid>.ovf`` read from them;
- ``engine_xml``: the engine's domain XML made startable (what VDSM and its hook do at create);
- ``vm_definition``: the VM definition from the best source (OVF_STORE, vm.conf files, the
  configuration volume), and the vm.conf files written from it.

One public name per concept here, each from the one module that implements it: the volume
metadata (``parse_volume_metadata``, bytes or text) and a block domain's LV tags
(``BlockDomainTags``, read from a file by ``load_block_tags``) are domain_meta's, which
ovf_store and engine_xml both use; lvm's ``block_domain_tags`` reads the tags where a host has
them (``find_domain_stores`` reads them itself). Everything but ``layout``
is imported on first use, so the ``hosted-engine`` shim, which needs only the layout, does
not load libvirt.
"""

from __future__ import annotations

import importlib
from typing import Any

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

_LAZY = {
    "domain_meta": (
        "BlockDomainTags",
        "DomainMetaError",
        "load_block_tags",
        "metadata_slot_offset",
        "parse_volume_metadata",
    ),
    "lvm": ("block_domain_tags", "read_lvm_tags"),
    "ovf": ("OvfConversion", "OvfError", "convert_ovf", "describe_changes", "parse_vm_conf", "render_vm_conf"),
    "ovf_store": (
        "OvfStore",
        "OvfStoreError",
        "StoreRead",
        "StoreScan",
        "find_domain_stores",
        "read_vm_conversion",
        "read_vm_ovf",
    ),
    "engine_xml": (
        "EngineXmlError",
        "HostFacts",
        "PlaceholderError",
        "ResolveContext",
        "ResolvedEngineXml",
        "UnresolvedVolume",
        "VolumeInfo",
        "VolumeLookup",
        "VolumeLookupError",
        "block_volume_lookup",
        "file_volume_lookup",
        "read_host_facts",
        "resolve_engine_xml",
        "vdsm_network_xml",
    ),
    "vm_definition": (
        "DefinitionError",
        "DefinitionPlan",
        "Expected",
        "OvfStoreVmConf",
        "Resolution",
        "SourceNote",
        "VmDefinition",
        "ovf_store_source",
        "write_vm_conf",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MOUNT_ROOT",
    "HeVolumes",
    "ResolvedVolume",
    "VdsmRoots",
    "VolumeNotFound",
    "mount_dir_name",
    "resolve_volume",
    "resolve_volumes",
    *sorted(_MODULE_OF),
]
