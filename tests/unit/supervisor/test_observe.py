"""The pure parts of building an observation: monitor readings, the lease status with its
generation rule, sanlock host states, and holding back a result until health is fresh."""

from __future__ import annotations

from typing import Any

from he_ha.fsm import ActionResult, EngineHealth, LeaseStatus, Outcome, SanlockHost
from he_ha.lease import HostInfo, HostStatus, LeaseOwner, LockspaceState
from he_ha.monitors import Reading
from he_ha.monitors.bridge import BridgeStatus
from he_ha.monitors.cpu import CpuLoad
from he_ha.monitors.engine_health import EngineHealthReport
from he_ha.monitors.memory import MemoryStatus
from he_ha.monitors.network import NetworkStatus
from he_ha.monitors.storage import StorageStatus
from he_ha.supervisor.observe import Completed, SanlockView, fresh_result, lease_status, local_readings, sanlock_hosts

OWN = 1


def reading(
    monitor: str, value: Any, *, taken_at: float = 100.0, duration: float = 0.1, error: str | None = None
) -> Reading[Any]:
    return Reading(monitor, None if error else value, taken_at, duration, error, 1 if error else 0)


def health_report(vm: str, health: str = "good", detail: str = "Up") -> EngineHealthReport:
    return EngineHealthReport({"vm": vm, "health": health, "detail": detail}, True, None, 0, None, False)


READINGS = {
    "network": reading("network", NetworkStatus("none", 1.0, 0.6, 5, 5, None, None)),
    "bridge": reading("bridge", BridgeStatus("ovirtmgmt", True, True, True, True, "UP", "bridge")),
    "memory": reading("memory", MemoryStatus(8192, 4096, True)),
    "cpu": reading("cpu", CpuLoad(0.5, 0.1, 0.4, 0.45, 900.0, 10, True)),
    "storage": reading("storage", StorageStatus(True, 0.01)),
    "engine-health": reading("engine-health", health_report("up")),
}


def test_readings_become_the_fsm_values() -> None:
    local = local_readings(READINGS, local_maintenance=True, vm_memory_mib=4096, conf_up_to_date=True)
    assert local.network == 0.6  # the effective (held) value, not the raw one
    assert local.bridge_up is True and local.free_memory_mib == 8192 and local.cpu_load == 0.45
    assert local.storage_ok is True and local.local_maintenance and local.vm_memory_mib == 4096
    assert local.engine_health == EngineHealth("up", "good", "Up")


def test_missing_and_failed_readings_are_never_healthy() -> None:
    local = local_readings({}, local_maintenance=False, vm_memory_mib=None, conf_up_to_date=False)
    assert local.engine_health is None  # B14: no reading yet, not "down"
    assert (local.network, local.bridge_up, local.storage_ok, local.cpu_load) == (None, None, None, None)
    failed = {name: reading(name, None, error="boom") for name in READINGS}
    local = local_readings(failed, local_maintenance=False, vm_memory_mib=None, conf_up_to_date=True)
    assert local.engine_health is not None and local.engine_health.vm == "unknown"
    assert (local.network, local.bridge_up, local.storage_ok) == (None, None, None)


def test_a_result_waits_for_a_health_reading_taken_after_it() -> None:
    done = Completed(ActionResult(3, Outcome.OK), done_at=100.0)
    assert fresh_result(done, {}) is None
    # The probe ran from 99.95 to 100.05: it started before the start finished.
    assert fresh_result(done, {"engine-health": reading("engine-health", None, taken_at=100.05, duration=0.1)}) is None
    fresh = {"engine-health": reading("engine-health", health_report("up"), taken_at=100.2, duration=0.1)}
    assert fresh_result(done, fresh) == done.result
    assert fresh_result(None, fresh) is None


def view(held: bool | None, owners: list[LeaseOwner] | None, hosts: list[HostInfo] | None = None) -> SanlockView:
    return SanlockView(
        LockspaceState.JOINED, None if hosts is None else tuple(hosts), None if owners is None else tuple(owners), held
    )


def host(host_id: int, generation: int, status: HostStatus = HostStatus.LIVE) -> HostInfo:
    return HostInfo(host_id, status, generation, 1000, 10)


def test_lease_status_owner_and_the_generation_rule() -> None:
    assert lease_status(OWN, view(None, [])) is None  # cannot tell whether we hold it: decide nothing
    assert lease_status(OWN, view(False, [])) == LeaseStatus(None, False)
    assert lease_status(OWN, view(True, [LeaseOwner(OWN, 4, 1)], [host(OWN, 4)])) == LeaseStatus(OWN, True)
    live = [host(2, 7)]
    assert lease_status(OWN, view(False, [LeaseOwner(2, 7, 1)], live)) == LeaseStatus(2, False)
    # Host 2 rejoined since (generation 8): its old lease is void, the lease counts as free.
    assert lease_status(OWN, view(False, [LeaseOwner(2, 7, 1)], [host(2, 8)])) == LeaseStatus(None, False)
    # Without sanlock's host list the recorded owner stands.
    assert lease_status(OWN, view(False, [LeaseOwner(2, 7, 1)])) == LeaseStatus(2, False)
    # Owners unreadable: only what we know about ourselves.
    assert lease_status(OWN, view(True, None)) == LeaseStatus(OWN, True)
    assert lease_status(OWN, view(False, None)) == LeaseStatus(None, False)


def test_sanlock_host_states() -> None:
    hosts = (host(2, 1, HostStatus.DEAD), host(1, 1, HostStatus.LIVE), host(3, 1, HostStatus.FAIL))
    assert sanlock_hosts(hosts) == ((1, SanlockHost.LIVE), (2, SanlockHost.DEAD), (3, SanlockHost.FAIL))
    assert sanlock_hosts(None) is None
