"""All six monitors on one event loop for 12 s while two probes hang (the health page
never answers; a storage read is stuck in its thread): every monitor keeps publishing
and the loop never lags more than 50 ms."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import libvirt
import pytest

from he_ha.monitors.bridge import BridgeMonitor
from he_ha.monitors.cpu import CpuMonitor
from he_ha.monitors.engine_health import EngineHealthMonitor
from he_ha.monitors.framework import MonitorRunner, Snapshot
from he_ha.monitors.libvirt_domain import LibvirtDomain
from he_ha.monitors.memory import MemoryMonitor
from he_ha.monitors.network import NetworkMonitor
from he_ha.monitors.offloop import OffLoop
from he_ha.monitors.storage import StorageMonitor
from tests.integration.monitors.engine_vm import ENGINE_UUID
from tests.integration.monitors.health_page import HealthPage
from tests.integration.monitors.netns import ip

pytestmark = pytest.mark.root

RUN_SECONDS = 12.0
MAX_LAG = 0.050


@pytest.fixture
def stuck() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


async def measure_lag(seconds: float, tick: float = 0.01) -> float:
    """The worst overshoot of a short sleep: how long the loop was kept from running."""
    worst = 0.0
    end = time.monotonic() + seconds
    while (start := time.monotonic()) < end:
        await asyncio.sleep(tick)
        worst = max(worst, time.monotonic() - start - tick)
    return worst


async def test_all_monitors_with_hung_probes_never_block_the_loop(
    engine_conn: libvirt.virConnect, health_page: HealthPage, netns: str, stuck: threading.Event
) -> None:
    ip("-n", netns, "link", "add", "br0", "type", "bridge")
    ip("-n", netns, "link", "set", "br0", "up")
    health_page.mode = "hang"
    domain = LibvirtDomain(ENGINE_UUID, connection=engine_conn)
    storage_worker = OffLoop("stuck-storage")

    async def stuck_read() -> None:
        await storage_worker.call(stuck.wait, 60.0)

    monitors = [
        NetworkMonitor("ping", gateway="127.0.0.1", probes=3, probe_delay=0.1, interval=1.0),
        CpuMonitor(domain, interval=1.0, warmup=0.2),
        MemoryMonitor(1024, interval=0.5),
        BridgeMonitor("br0", netns=netns, interval=1.0),
        EngineHealthMonitor(domain, url=health_page.url, interval=0.5, page_timeout=2.0),
        StorageMonitor(stuck_read, interval=1.0, timeout=1.0),
    ]
    snapshot = Snapshot()
    async with MonitorRunner(monitors, snapshot):
        lag = await measure_lag(RUN_SECONDS)
    storage_worker.close()
    print(f"worst event-loop lag over {RUN_SECONDS:g} s: {lag * 1000:.1f} ms")

    assert lag < MAX_LAG, f"event loop lagged {lag * 1000:.1f} ms"
    counts, errors = snapshot.published, snapshot.failed
    for name, at_least in {"network": 6, "cpu": 6, "memory": 15, "bridge": 8, "engine-health": 4, "storage": 8}.items():
        assert counts[name] >= at_least, f"{name} published only {counts[name]} readings"
    assert errors["storage"] == counts["storage"]  # every storage round failed, none hung the others
    assert sum(errors[name] for name in ("network", "cpu", "memory", "bridge", "engine-health")) == 0

    health = snapshot.get("engine-health")
    assert health is not None and health.value is not None
    assert health.value.page_ok is False and "within 2 s" in (health.value.page_error or "")
    network, bridge = snapshot.get("network"), snapshot.get("bridge")
    assert network is not None and network.value is not None and network.value.raw == 1.0
    assert bridge is not None and bridge.value is not None and bridge.value.exists
