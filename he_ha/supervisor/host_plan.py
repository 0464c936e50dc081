"""Start-up step 1: read and check every configuration file before touching anything.

A problem here is a ``ConfigError`` naming the file, the key and the value; the daemon exits
with it instead of starting half-way.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from he_ha.config import ConfigError, HostConfig, load_host_config, load_vm_conf
from he_ha.ovirt import HeVolumes, VdsmRoots, resolve_volumes
from he_ha.supervisor.settings import SupervisorSettings
from he_ha.vm import DomainSpec, DomainXmlError, load_domain_spec

# libvirt's <memory unit=...> units, in bytes
_UNITS = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
          "g": 1024**3, "gib": 1024**3, "gb": 1000**3}


@dataclass(frozen=True)
class HostPlan:
    config: HostConfig
    hostname: str
    volumes: HeVolumes  # where each shared volume is, and the rule that found it
    vm_conf_path: Path
    spec: DomainSpec
    vm_memory_mib: int | None
    resource: str  # the VM lease's sanlock resource name: the VM id

    @property
    def host_id(self) -> int:
        return self.config.engine.host_id

    @property
    def metadata_path(self) -> Path:
        return self.volumes.metadata.path

    @property
    def lockspace_path(self) -> Path:
        return self.volumes.lockspace.path


def load_plan(settings: SupervisorSettings) -> HostPlan:
    config = load_host_config(settings.paths)
    engine, he_conf = config.engine, settings.paths.hosted_engine_conf
    if not engine.configured:
        raise ConfigError(he_conf, "this host is not configured for the hosted engine ('configured' is not True)",
                          key="configured")
    volumes = resolve_volumes(engine, VdsmRoots.from_mount_root(settings.mount_root), he_conf)
    vm_conf_path = settings.vm_conf or engine.vm_conf
    try:
        spec = load_domain_spec(vm_conf_path)
    except DomainXmlError as exc:
        raise ConfigError(vm_conf_path, str(exc)) from None
    if engine.vmid and spec.id.uuid and engine.vmid.lower() != spec.id.uuid:
        raise ConfigError(he_conf, f"differs from the UUID {spec.id.uuid} in {vm_conf_path}", key="vmid",
                          value=engine.vmid)
    return HostPlan(
        config=config,
        hostname=settings.hostname or socket.gethostname(),
        volumes=volumes,
        vm_conf_path=vm_conf_path,
        spec=spec,
        vm_memory_mib=vm_memory_mib(vm_conf_path, spec),
        resource=spec.id.uuid or engine.vmid or spec.id.name,
    )


def vm_memory_mib(path: Path, spec: DomainSpec) -> int | None:
    """vm.conf's memSize, or the domain XML's <memory> (a plain XML file); None if neither."""
    if not path.read_text(encoding="utf-8").lstrip().startswith("<"):  # vm.conf, as load_domain_spec decided
        return load_vm_conf(path).mem_size_mib
    element = ET.fromstring(spec.xml).find("memory")
    if element is None or not (element.text or "").strip().isdigit():
        return None
    unit = element.get("unit", "KiB").lower()
    if unit not in _UNITS:
        raise ConfigError(path, f"unknown <memory unit={unit!r}>")
    return int(element.text.strip()) * _UNITS[unit] // 1024**2  # type: ignore[union-attr]
