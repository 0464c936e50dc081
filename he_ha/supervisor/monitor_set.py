"""The six monitors of one host, sharing the supervisor's libvirt connection.

Like ``he_ha.monitors.standard_monitors`` but with the cpu and engine-health monitors on a
``ConnectionDomainObserver`` (one libvirt connection per process) and the intervals and
health settings ``he-ha run`` was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from he_ha.config import HostedEngineConf
from he_ha.monitors import (
    BridgeMonitor,
    CpuMonitor,
    EngineHealthMonitor,
    MemoryMonitor,
    Monitor,
    NetworkMonitor,
    StorageMonitor,
    direct_read_probe,
)
from he_ha.storage.codec import SLOT_BYTES
from he_ha.supervisor.domain_observer import ConnectionDomainObserver


@dataclass(frozen=True)
class MonitorSet:
    monitors: list[Monitor[Any]]
    engine_health: EngineHealthMonitor
    cpu: CpuMonitor


def build_monitors(
    conf: HostedEngineConf,
    *,
    observer: ConnectionDomainObserver,
    metadata_path: Path,
    engine_mem_mib: int | None,
    interval: float,
    health_url: str | None,
    health_grace: float,
) -> MonitorSet:
    """Raises ValueError naming what hosted-engine.conf lacks."""
    if not conf.bridge:
        raise ValueError("hosted-engine.conf: 'bridge' is required for the bridge monitor")
    cpu = CpuMonitor(observer, interval=interval)
    health = EngineHealthMonitor(observer, url=health_url, fqdn=conf.fqdn, interval=interval, grace=health_grace)
    # The storage monitor reads our own slot: the original's storage-domain check, with O_DIRECT.
    probe = direct_read_probe(metadata_path, size=SLOT_BYTES, offset=conf.host_id * SLOT_BYTES)
    monitors: list[Monitor[Any]] = [
        NetworkMonitor.from_conf(conf, interval=interval),
        cpu,
        MemoryMonitor(engine_mem_mib, interval=interval),
        BridgeMonitor(conf.bridge, interval=interval),
        health,
        StorageMonitor(probe, interval=interval),
    ]
    return MonitorSet(monitors, health, cpu)
