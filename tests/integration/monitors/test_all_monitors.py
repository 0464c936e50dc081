"""All six monitors on one event loop for 12 s while two probes hang (the health page
never answers; a storage read is stuck in its thread): every monitor keeps publishing
and the loop never lags more than 100 ms.

The lag counted is the loop thread's sleep overshoot minus the time the kernel kept it
waiting on the run queue for other processes (a shared 2-core CI box can starve any
process for longer than 50 ms); blocking calls, long callbacks and GIL contention from
our own threads all still count. The raw wall-clock figure must stay under 1 s."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

from he_ha.monitors.bridge import BridgeMonitor
from he_ha.monitors.commands import OffLoop
from he_ha.monitors.cpu import CpuMonitor
from he_ha.monitors.engine_health import EngineHealthMonitor
from he_ha.monitors.framework import Monitor, MonitorRunner, ReadingsSnapshot
from he_ha.monitors.libvirt_domain import LibvirtDomain
from he_ha.monitors.memory import MemoryMonitor
from he_ha.monitors.network import NetworkMonitor
from he_ha.monitors.storage import StorageMonitor
from tests.integration.monitors.engine_vm import ENGINE_UUID
from tests.integration.monitors.health_page import HealthPage
from tests.integration.monitors.netns import ip

pytestmark = pytest.mark.root

RUN_SECONDS = 12.0
# A hung probe run on the loop would block it for seconds (the health page never answers);
# 100 ms (asyncio's own slow-callback threshold) leaves room for the GIL and page-fault
# jitter of a 2-core box under a full test load (78.9 ms was seen there with no blocking call).
MAX_LAG = 0.100


@pytest.fixture
def stuck() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def runqueue_wait() -> float:
    """Seconds the calling thread has spent runnable but not running: time the CPU
    scheduler gave to other processes (/proc/thread-self/schedstat, second field)."""
    with open("/proc/thread-self/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


async def measure_lag(seconds: float, tick: float = 0.01) -> tuple[float, float]:
    """The worst overshoot of a short sleep: (as seen on the wall clock, the part not
    explained by the scheduler running other processes). The second is what our own code
    can cause (a blocking call, a long callback, the GIL held by another of our threads);
    on a loaded 2-core box the first also counts time the kernel gave to other work."""
    worst_wall = worst_own = 0.0
    end = time.monotonic() + seconds
    while (start := time.monotonic()) < end:
        waited = runqueue_wait()
        await asyncio.sleep(tick)
        lag = time.monotonic() - start - tick
        worst_wall = max(worst_wall, lag)
        worst_own = max(worst_own, lag - (runqueue_wait() - waited))
    return worst_wall, worst_own


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

    monitors: list[Monitor[Any]] = [
        NetworkMonitor("ping", gateway="127.0.0.1", probes=3, probe_delay=0.1, interval=1.0),
        CpuMonitor(domain, interval=1.0, warmup=0.2),
        MemoryMonitor(1024, interval=0.5),
        BridgeMonitor("br0", netns=netns, interval=1.0),
        EngineHealthMonitor(domain, url=health_page.url, interval=0.5, page_timeout=2.0),
        StorageMonitor(stuck_read, interval=1.0, timeout=1.0),
    ]
    snapshot = ReadingsSnapshot()
    async with MonitorRunner(monitors, snapshot):
        wall_lag, own_lag = await measure_lag(RUN_SECONDS)
    storage_worker.close()
    print(f"worst event-loop lag over {RUN_SECONDS:g} s: {own_lag * 1000:.1f} ms ({wall_lag * 1000:.1f} ms wall)")

    assert own_lag < MAX_LAG, f"event loop blocked {own_lag * 1000:.1f} ms"
    assert wall_lag < 1.0, f"event loop lagged {wall_lag * 1000:.1f} ms on the wall clock"
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
