"""The six monitors of one host, sharing the supervisor's libvirt connection.

``he_ha.monitors.standard_monitors`` with the cpu and engine-health monitors on a
``ConnectionDomainObserver`` (one libvirt connection per process), the intervals and health
settings ``he-ha run`` was given, and our own slot as the storage probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from he_ha.config import HostedEngineConf
from he_ha.monitors import CpuMonitor, EngineHealthMonitor, Monitor, direct_read_probe, standard_monitors
from he_ha.supervisor.domain_observer import ConnectionDomainObserver
from he_ha.whiteboard import SLOT_BYTES


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
    # The storage monitor reads our own slot: the original's storage-domain check, with O_DIRECT.
    probe = direct_read_probe(metadata_path, size=SLOT_BYTES, offset=conf.host_id * SLOT_BYTES)
    monitors = standard_monitors(
        conf,
        engine_mem_mib=engine_mem_mib,
        storage_probe=probe,
        domain=observer,
        health_url=health_url,
        health_grace=health_grace,
        interval=interval,
    )
    (health,) = [m for m in monitors if isinstance(m, EngineHealthMonitor)]
    (cpu,) = [m for m in monitors if isinstance(m, CpuMonitor)]
    return MonitorSet(monitors, health, cpu)
