"""CPU and memory monitors on the real /proc, the engine VM from libvirt's test driver.

The test driver reports a running domain's CPU time as the wall clock in ns, so the fake
engine uses exactly one host CPU: its share is 1/host CPUs. That makes the exclusion
checkable: engine ≈ 1/N while the domain runs, 0 once it is destroyed, and non_engine
is always max(0, host − engine).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from he_ha.monitors.cpu import CpuMonitor, parse_proc_stat
from he_ha.monitors.libvirt_domain import LibvirtDomain, LibvirtUnavailable
from he_ha.monitors.memory import MemoryMonitor
from tests.integration.monitors.engine_vm import ENGINE_UUID, remove_engine

HOST_CPUS = parse_proc_stat(Path("/proc/stat").read_text()).cpus


@pytest.fixture
def cpu_burner() -> Iterator[None]:
    """One process spinning on one CPU for the duration of the test."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait()


async def test_host_load_is_read_from_proc(cpu_burner: None) -> None:
    monitor = CpuMonitor(None, warmup=0.5)
    load = await monitor.probe()
    # One spinning process on an N-CPU host is about 1/N of all CPUs; allow for scheduling.
    assert 0.5 / HOST_CPUS <= load.host <= 1.0
    assert load.engine == 0.0 and load.non_engine == load.host and not load.engine_running
    assert load.samples == 1 and load.average == load.non_engine


async def test_engine_cpu_is_excluded(engine_conn: libvirt.virConnect, cpu_burner: None) -> None:
    domain = LibvirtDomain(ENGINE_UUID, connection=engine_conn)
    monitor = CpuMonitor(domain, warmup=0.5)
    try:
        running = await monitor.probe()
        assert running.engine_running
        assert running.engine == pytest.approx(1 / HOST_CPUS, rel=0.2)
        assert running.non_engine == max(0.0, running.host - running.engine)

        engine_conn.lookupByUUIDString(ENGINE_UUID).destroy()
        stopped = await monitor.probe()
        assert not stopped.engine_running and stopped.engine == 0.0
        assert stopped.non_engine == stopped.host

        engine_conn.lookupByUUIDString(ENGINE_UUID).create()
        restarted = await monitor.probe()  # no baseline for the new run: measured over the warm-up
        assert restarted.engine_running
        assert restarted.engine == pytest.approx(1 / HOST_CPUS, rel=0.2)
        assert restarted.samples == 3
    finally:
        await monitor.aclose()


async def test_engine_missing_from_this_host_counts_zero(engine_conn: libvirt.virConnect) -> None:
    remove_engine(engine_conn)
    monitor = CpuMonitor(LibvirtDomain(ENGINE_UUID, connection=engine_conn), warmup=0.2)
    try:
        load = await monitor.probe()
    finally:
        await monitor.aclose()
    assert load.engine == 0.0 and not load.engine_running


async def test_libvirt_failure_is_an_error_not_a_zero(tmp_path: Path) -> None:
    """No such test-driver file: libvirt cannot connect, so the probe must fail loudly."""
    monitor = CpuMonitor(LibvirtDomain(ENGINE_UUID, uri=f"test://{tmp_path}/missing.xml"), warmup=0.2)
    try:
        with pytest.raises(LibvirtUnavailable, match="libvirt"):
            await monitor.probe()
    finally:
        await monitor.aclose()


async def test_memory_against_proc_meminfo() -> None:
    available_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    small = await MemoryMonitor(1).probe()
    assert small.enough is True and small.engine_mib == 1
    # MemAvailable moves between our read and the monitor's: compare loosely.
    assert abs(small.available_mib - available_kib // 1024) < 256
    huge = await MemoryMonitor(10 * 1024 * 1024).probe()  # 10 TiB: more than this host has
    assert huge.enough is False
    unknown = await MemoryMonitor(None).probe()
    assert unknown.enough is None and unknown.available_mib > 0
