"""Host monitors: one coroutine per signal, publishing into a shared snapshot.

See docs/monitors.md. The supervisor builds the set (``standard_monitors``), runs it with
``MonitorRunner`` and reads ``runner.snapshot``.
"""

from he_ha.monitors.bridge import BridgeMonitor, BridgeStatus
from he_ha.monitors.commands import DeadlineExceeded, OffLoop, WorkerBusy
from he_ha.monitors.cpu import CpuLoad, CpuMonitor
from he_ha.monitors.engine_health import EngineHealthMonitor, EngineHealthReport, engine_status
from he_ha.monitors.framework import Monitor, MonitorError, MonitorRunner, Reading, ReadingsSnapshot
from he_ha.monitors.libvirt_domain import DomainInfo, DomainObserver, LibvirtDomain, LibvirtUnavailable
from he_ha.monitors.memory import MemoryMonitor, MemoryStatus
from he_ha.monitors.network import NetworkMonitor, NetworkStatus
from he_ha.monitors.standard import standard_monitors
from he_ha.monitors.storage import StorageMonitor, StorageStatus, direct_read_probe

__all__ = [
    "BridgeMonitor",
    "BridgeStatus",
    "CpuLoad",
    "CpuMonitor",
    "DeadlineExceeded",
    "DomainInfo",
    "DomainObserver",
    "EngineHealthMonitor",
    "EngineHealthReport",
    "LibvirtDomain",
    "LibvirtUnavailable",
    "MemoryMonitor",
    "MemoryStatus",
    "Monitor",
    "MonitorError",
    "MonitorRunner",
    "NetworkMonitor",
    "NetworkStatus",
    "OffLoop",
    "Reading",
    "ReadingsSnapshot",
    "StorageMonitor",
    "StorageStatus",
    "WorkerBusy",
    "direct_read_probe",
    "engine_status",
    "standard_monitors",
]
