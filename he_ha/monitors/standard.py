"""The full monitor set of one host, built from hosted-engine.conf."""

from __future__ import annotations

from typing import Any

import libvirt

from he_ha.config import HostedEngineConf
from he_ha.monitors.bridge import BridgeMonitor
from he_ha.monitors.cpu import CpuMonitor
from he_ha.monitors.engine_health import EngineHealthMonitor
from he_ha.monitors.framework import Monitor
from he_ha.monitors.libvirt_domain import DomainObserver, LibvirtDomain
from he_ha.monitors.memory import MemoryMonitor
from he_ha.monitors.network import NetworkMonitor
from he_ha.monitors.storage import StorageMonitor, StorageProbe


def standard_monitors(
    conf: HostedEngineConf,
    *,
    engine_mem_mib: int | None,
    storage_probe: StorageProbe,
    domain: DomainObserver | None = None,
    libvirt_uri: str = "qemu:///system",
    libvirt_connection: libvirt.virConnect | None = None,
    health_url: str | None = None,
    health_grace: float = 600.0,
    bridge_netns: str | None = None,
    interval: float = 10.0,
) -> list[Monitor[Any]]:
    """network, cpu, memory, bridge, engine-health and storage, in that order.

    The cpu and engine-health monitors share one ``domain`` observer: the one given (the
    supervisor passes one over its own libvirt connection) or a ``LibvirtDomain`` on
    ``libvirt_uri``/``libvirt_connection``. Raises ValueError naming a missing
    hosted-engine.conf key.
    """
    if domain is None and not conf.vmid:
        raise ValueError("hosted-engine.conf: 'vmid' is required for the cpu and engine-health monitors")
    if not conf.bridge:
        raise ValueError("hosted-engine.conf: 'bridge' is required for the bridge monitor")
    if domain is None:
        assert conf.vmid is not None  # checked above
        domain = LibvirtDomain(conf.vmid, uri=libvirt_uri, connection=libvirt_connection)
    return [
        NetworkMonitor.from_conf(conf, interval=interval),
        CpuMonitor(domain, interval=interval),
        MemoryMonitor(engine_mem_mib, interval=interval),
        BridgeMonitor(conf.bridge, netns=bridge_netns, interval=interval),
        EngineHealthMonitor(domain, url=health_url, fqdn=conf.fqdn, interval=interval, grace=health_grace),
        StorageMonitor(storage_probe, interval=interval),
    ]
