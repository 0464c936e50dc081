"""Start-up step 1: read and check every configuration file before touching anything.

A problem here is a ``ConfigError`` naming the file, the key and the value; the daemon exits
with it instead of starting half-way. The VM definition is the exception: a missing or bad
vm.conf is not a configuration error (after a reboot the run directory's copy is gone). Its
sources are looked at in order (he_ha/ovirt/vm_definition.py: OVF_STORE first where
hosted-engine.conf names the storage domain); only the VM's identity must be known, from a
definition or from hosted-engine.conf's ``vmid``. The sources on shared storage (OVF_STORE,
the configuration volume) are read under a deadline; when they do not answer, the local
files decide the identity and the daemon's refreshes read the shared ones later.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from he_ha.config import ConfigError, HostConfig, HostedEngineConf, load_host_config
from he_ha.ovirt import HeVolumes, VdsmRoots, resolve_volumes
from he_ha.ovirt.vm_definition import (
    DEFAULT_VM_NAME,
    DefinitionPlan,
    Expected,
    Resolution,
    call_with_deadline,
    ovf_store_source,
)
from he_ha.supervisor.settings import SupervisorSettings
from he_ha.vm import DomainId, DomainXmlError


@dataclass(frozen=True)
class HostPlan:
    config: HostConfig
    hostname: str
    volumes: HeVolumes  # where each shared volume is, and the rule that found it
    definitions: DefinitionPlan  # the VM definition's sources, in order, and where it is written
    first: Resolution  # what the sources gave at start-up
    identity: DomainId  # the engine VM (by UUID), fixed for this run
    vm_memory_mib: int | None
    resource: str  # the VM lease's sanlock resource name: the VM id

    @property
    def host_id(self) -> int:
        return self.config.engine.host_id

    @property
    def priority(self) -> int:
        """This host's priority (issue 14): hosted-engine.conf he_ha_priority, default 0."""
        return self.config.engine.he_ha_priority

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
        raise ConfigError(
            he_conf, "this host is not configured for the hosted engine ('configured' is not True)", key="configured"
        )
    roots = VdsmRoots.from_mount_root(settings.mount_root)
    volumes = resolve_volumes(engine, roots, he_conf)
    expected = _expected(engine, he_conf)
    definitions = DefinitionPlan.for_host(
        conf=engine.vm_conf,
        state_dir=settings.state_dir,
        explicit=settings.vm_conf,
        conf_volume=volumes.conf.path if volumes.conf is not None else None,
        expected=expected,
        ovf_store=ovf_store_source(engine, he_conf, roots),
    )
    timeout = settings.definition_timeout
    try:
        first = call_with_deadline(definitions.resolve, timeout, "vm-definition-first")
    except TimeoutError:
        first = definitions.resolve_local(why=f"no answer from shared storage within {timeout:g} s at start-up")
    best = first.best
    if best is not None:
        identity = best.identity
    elif expected.vm_id is not None:
        identity = DomainId(DEFAULT_VM_NAME, expected.vm_id)
    else:
        raise ConfigError(
            he_conf, f"no 'vmid', and no VM definition names the engine VM ({first.problem()})", key="vmid"
        )
    return HostPlan(
        config=config,
        hostname=settings.hostname or socket.gethostname(),
        volumes=volumes,
        definitions=definitions,
        first=first,
        identity=identity,
        vm_memory_mib=best.memory_mib if best is not None else None,
        resource=identity.uuid or identity.name,
    )


def _expected(engine: HostedEngineConf, he_conf: Path) -> Expected:
    where = f"vmid in {he_conf}"
    if not engine.vmid:
        return Expected(None, where)
    try:
        return Expected(str(DomainId(DEFAULT_VM_NAME, engine.vmid).uuid), where)
    except DomainXmlError:
        raise ConfigError(he_conf, "not a UUID", key="vmid", value=engine.vmid) from None
