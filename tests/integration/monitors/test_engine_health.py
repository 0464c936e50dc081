"""Engine-health monitor: libvirt's test driver for the VM, a real aiohttp health page.

Where a test needs minutes to pass (grace, confirmation time) a controlled clock stands
in for time.monotonic; every probe still talks to the real libvirt driver and server.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from pathlib import Path

import libvirt
import pytest

from he_ha.monitors.engine_health import EngineHealthMonitor, engine_status
from he_ha.monitors.framework import MonitorRunner
from he_ha.monitors.libvirt_domain import LibvirtDomain
from tests.integration.monitors.engine_vm import ENGINE_NAME, ENGINE_UUID, engine, remove_engine
from tests.integration.monitors.health_page import HealthPage

NOT_HERE = "vm not running on this host"
UNKNOWN_ROW = {"vm": "unknown", "health": "unknown", "detail": "unknown", "reason": "failed to getVmStats"}


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def monitor_for(conn: libvirt.virConnect, page: HealthPage, **settings: object) -> EngineHealthMonitor:
    return EngineHealthMonitor(LibvirtDomain(ENGINE_UUID, connection=conn), url=page.url, **settings)  # type: ignore[arg-type]


async def test_healthy_engine(engine_conn: libvirt.virConnect, health_page: HealthPage) -> None:
    monitor = monitor_for(engine_conn, health_page)
    async with aclosing(monitor):
        health = await monitor.probe()
    assert health.status == {"vm": "up", "health": "good", "detail": "Up"}
    assert health.to_json() == '{"vm": "up", "health": "good", "detail": "Up"}'
    assert health.page_ok is True and health.failures == 0 and not health.in_grace
    assert health_page.requests == 1


async def test_vm_found_by_name_too(engine_conn: libvirt.virConnect, health_page: HealthPage) -> None:
    monitor = EngineHealthMonitor(LibvirtDomain(ENGINE_NAME, connection=engine_conn), url=health_page.url)
    async with aclosing(monitor):
        assert (await monitor.probe()).status["health"] == "good"


NOT_READY = "engine alive, not ready"  # the page answers, but not "DB Up" (slow is not dead)


@pytest.mark.parametrize(("mode", "reason"), [("error", NOT_READY), ("db-down", NOT_READY), ("hang", "bad vm status")])
async def test_starting_engine_gets_a_grace_period(
    engine_conn: libvirt.virConnect, health_page: HealthPage, mode: str, reason: str
) -> None:
    health_page.mode = mode
    monitor = monitor_for(engine_conn, health_page, grace=600.0, page_timeout=0.3)
    async with aclosing(monitor):
        health = await monitor.probe()
    assert health.status == {"vm": "up", "health": "bad", "detail": "Powering up", "reason": reason}
    assert health.in_grace and health.page_ok is False
    assert health.page_error is not None and health.page_answered is (mode != "hang")
    expected = {"error": "HTTP 500", "db-down": "does not say 'DB Up'", "hang": "within 0.3 s"}[mode]
    assert expected in health.page_error


async def test_silent_engine_after_grace_fails_liveness(
    engine_conn: libvirt.virConnect, health_page: HealthPage
) -> None:
    health_page.mode = "hang"
    clock = Clock()
    monitor = monitor_for(engine_conn, health_page, grace=300.0, clock=clock, page_timeout=0.3)
    async with aclosing(monitor):
        assert (await monitor.probe()).status["detail"] == "Powering up"
        clock.now += 300.0
        health = await monitor.probe()
    assert health.status == {"vm": "up", "health": "bad", "detail": "Up", "reason": "failed liveliness check"}
    assert not health.in_grace and health.page_answered is False


@pytest.mark.parametrize("mode", ["error", "db-down"])
async def test_answering_engine_after_grace_is_alive_not_ready(
    engine_conn: libvirt.virConnect, health_page: HealthPage, mode: str
) -> None:
    """Any HTTP answer that is not "DB Up" (a 500, "DB Down") is a slow engine, not a dead one."""
    health_page.mode = mode
    clock = Clock()
    monitor = monitor_for(engine_conn, health_page, grace=300.0, clock=clock)
    async with aclosing(monitor):
        await monitor.probe()
        clock.now += 300.0
        health = await monitor.probe()
    assert health.status == {"vm": "up", "health": "bad", "detail": "Up", "reason": NOT_READY}
    assert not health.in_grace and health.page_answered is True


async def test_hanging_page_is_abandoned_at_its_deadline(
    engine_conn: libvirt.virConnect, health_page: HealthPage
) -> None:
    health_page.mode = "hang"
    monitor = monitor_for(engine_conn, health_page, page_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with aclosing(monitor):
        health = await monitor.probe()
    assert loop.time() - started < 5.0  # generous: proves the hang did not hold the probe
    assert health.page_ok is False and health.page_error is not None
    assert "within 0.3 s" in health.page_error
    assert health.status["health"] == "bad"


async def test_flapping_page_never_gives_a_bad_verdict(
    engine_conn: libvirt.virConnect, health_page: HealthPage
) -> None:
    clock = Clock()
    monitor = monitor_for(engine_conn, health_page, min_failures=3, min_bad_time=60.0, clock=clock)
    statuses = []
    async with aclosing(monitor):
        assert (await monitor.probe()).status["health"] == "good"
        health_page.mode = "flap"
        for _ in range(40):
            clock.now += 10.0
            health = await monitor.probe()
            statuses.append(health.status)
            assert health.failures <= 1
    assert set(health_page.answers[1:]) == {"up", "error"}  # the page really flapped
    assert all(status == {"vm": "up", "health": "good", "detail": "Up"} for status in statuses)


async def test_bad_verdict_needs_consecutive_failures_over_time(
    engine_conn: libvirt.virConnect, health_page: HealthPage
) -> None:
    clock = Clock()
    monitor = monitor_for(engine_conn, health_page, min_failures=3, min_bad_time=60.0, clock=clock)
    async with aclosing(monitor):
        assert (await monitor.probe()).status["health"] == "good"
        health_page.mode = "error"
        verdicts = []
        for _ in range(7):  # failures at t = 0, 10, ..., 60 s
            verdicts.append((await monitor.probe()).status)
            clock.now += 10.0
        health_page.mode = "up"
        recovered = await monitor.probe()
    assert all(v["health"] == "good" for v in verdicts[:6])
    assert verdicts[6] == {"vm": "up", "health": "bad", "detail": "Up", "reason": NOT_READY}  # it answered 500s
    assert recovered.status == {"vm": "up", "health": "good", "detail": "Up"} and recovered.failures == 0


async def test_vm_states_and_sticky_down(engine_conn: libvirt.virConnect, health_page: HealthPage) -> None:
    monitor = monitor_for(engine_conn, health_page)
    dom = engine(engine_conn)
    async with aclosing(monitor):
        assert (await monitor.probe()).status["vm"] == "up"
        dom.suspend()
        paused = await monitor.probe()
        assert paused.status == {"vm": "up", "health": "bad", "detail": "Paused", "reason": "bad vm status"}
        assert paused.page_ok is None  # the page is not asked while the VM is not running
        dom.resume()
        assert (await monitor.probe()).status == {"vm": "up", "health": "good", "detail": "Up"}
        requests_before = health_page.requests

        dom.destroy()
        down = await monitor.probe()
        assert down.status == {"vm": "down_unexpected", "health": "bad", "detail": "Down", "reason": "bad vm status"}
        assert (await monitor.probe()).status["vm"] == "down_unexpected"  # sticky
        dom.undefine()
        gone = await monitor.probe()
        assert gone.status == {"vm": "down_unexpected", "health": "bad", "detail": "unknown", "reason": NOT_HERE}
        assert health_page.requests == requests_before


async def test_vm_down_from_the_start_is_plain_down(engine_conn: libvirt.virConnect, health_page: HealthPage) -> None:
    engine(engine_conn).destroy()
    monitor = monitor_for(engine_conn, health_page)
    async with aclosing(monitor):
        health = await monitor.probe()
    assert health.status == {"vm": "down", "health": "bad", "detail": "Down", "reason": "bad vm status"}


async def test_vm_vanishing_while_up_is_down_missing(engine_conn: libvirt.virConnect, health_page: HealthPage) -> None:
    monitor = monitor_for(engine_conn, health_page)
    async with aclosing(monitor):
        await monitor.probe()
        remove_engine(engine_conn)
        health = await monitor.probe()
    assert health.status == {"vm": "down_missing", "health": "bad", "detail": "unknown", "reason": NOT_HERE}


async def test_migrated_away_event_for_a_vanished_domain(
    engine_conn: libvirt.virConnect, health_page: HealthPage
) -> None:
    monitor = monitor_for(engine_conn, health_page)
    async with aclosing(monitor):
        await monitor.probe()
        remove_engine(engine_conn)
        monitor.poke(libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
        health = await monitor.probe()
        after = await monitor.probe()  # the event is used once; the sticky state stays "down"
    assert health.status == {"vm": "down", "health": "bad", "detail": "Down", "reason": "VM migrated away successfully"}
    assert after.status["vm"] == "down"


async def test_lock_conflict_reported_by_the_supervisor(
    engine_conn: libvirt.virConnect, health_page: HealthPage
) -> None:
    remove_engine(engine_conn)
    monitor = monitor_for(engine_conn, health_page)
    async with aclosing(monitor):
        monitor.report_lock_conflict()
        health = await monitor.probe()
        after = await monitor.probe()
    locked = "Storage of VM is locked. Is another host already starting the VM?"
    assert health.status == {"vm": "down", "health": "bad", "detail": "Down", "reason": locked}
    assert after.status == {"vm": "down", "health": "bad", "detail": "unknown", "reason": NOT_HERE}


async def test_libvirt_failure_is_the_unknown_row(tmp_path: Path, health_page: HealthPage) -> None:
    domain = LibvirtDomain(ENGINE_UUID, uri=f"test://{tmp_path}/missing.xml")
    monitor = EngineHealthMonitor(domain, url=health_page.url)
    async with aclosing(monitor):
        health = await monitor.probe()
    assert health.status == UNKNOWN_ROW
    assert health.problem is not None and "libvirt" in health.problem
    assert json.loads(health.to_json()) == health.status


async def test_no_reading_is_unknown_never_healthy() -> None:
    assert engine_status(None) == UNKNOWN_ROW


async def test_poke_reprobes_at_once(engine_conn: libvirt.virConnect, health_page: HealthPage) -> None:
    """With an hour-long interval, only the poke can produce the second reading."""
    monitor = monitor_for(engine_conn, health_page, interval=3600.0)
    async with MonitorRunner([monitor]) as runner:
        version = await asyncio.wait_for(runner.snapshot.wait_for_update(0), 10)
        engine(engine_conn).destroy()
        monitor.poke(libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED)
        await asyncio.wait_for(runner.snapshot.wait_for_update(version), 10)
        reading = runner.snapshot.get("engine-health")
    assert reading is not None and reading.value is not None
    assert reading.value.status["detail"] == "Down" and reading.value.status["vm"] == "down_unexpected"


def test_url_defaults_to_the_engine_fqdn(engine_conn: libvirt.virConnect) -> None:
    monitor = EngineHealthMonitor(LibvirtDomain(ENGINE_UUID, connection=engine_conn), fqdn="engine.example.org")
    assert monitor.url == "http://engine.example.org/ovirt-engine/services/health"
    with pytest.raises(ValueError, match="url or the engine fqdn"):
        EngineHealthMonitor(LibvirtDomain(ENGINE_UUID, connection=engine_conn))
