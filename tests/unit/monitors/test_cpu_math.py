"""CPU load arithmetic: /proc/stat parsing, deltas, the engine share, the window average."""

from __future__ import annotations

import pytest

from he_ha.monitors.cpu import CpuTicks, WindowAverage, engine_share, host_load, parse_proc_stat
from he_ha.monitors.framework import MonitorError
from he_ha.monitors.libvirt_domain import DomainInfo

PROC_STAT = """cpu  100 10 50 800 40 0 0 0 30 0
cpu0 50 5 25 400 20 0 0 0 15 0
cpu1 50 5 25 400 20 0 0 0 15 0
intr 12345
ctxt 999
"""


def test_parse_proc_stat() -> None:
    # total = user..steal (guest is already inside user); idle = idle + iowait
    assert parse_proc_stat(PROC_STAT) == CpuTicks(total=1000, busy=160, cpus=2)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "not the aggregate 'cpu' line"), ("cpu  1 2 x 4 5 6 7 8\n", "non-numeric"), ("cpu  1 2 3\n", "expected 8")],
)
def test_parse_proc_stat_errors(text: str, message: str) -> None:
    with pytest.raises(MonitorError, match=message):
        parse_proc_stat(text)


def test_host_load() -> None:
    assert host_load(CpuTicks(1000, 100, 2), CpuTicks(1200, 150, 2)) == 0.25
    assert host_load(CpuTicks(1000, 100, 2), CpuTicks(1000, 100, 2)) == 0.0


def test_engine_share_is_cpu_time_over_wall_time_over_host_cpus() -> None:
    before = DomainInfo(True, 1, 1, cpu_time_ns=0, observed_at=100.0)
    after = DomainInfo(True, 1, 1, cpu_time_ns=3 * 10**9, observed_at=102.0)  # 1.5 CPUs busy for 2 s
    assert engine_share(before, after, host_cpus=4) == pytest.approx(0.375)
    assert engine_share(after, before, host_cpus=4) == 0.0  # a restarted VM's counter went back
    assert engine_share(before, DomainInfo(True, 1, 1, None, 102.0), 4) == 0.0


def test_window_average_is_the_trapezoid_rule() -> None:
    window = WindowAverage(900.0)
    window.add(0.0, 0.0)
    assert window.value() == 0.0
    window.add(60.0, 1.0)  # area 30 over 60 s
    window.add(120.0, 1.0)  # area 60 over 60 s
    assert window.value() == pytest.approx(90.0 / 120.0)
    assert (window.span, len(window)) == (120.0, 3)


def test_window_drops_old_samples() -> None:
    window = WindowAverage(100.0)
    for t in range(0, 400, 50):
        window.add(float(t), 1.0 if t >= 250 else 0.0)
    assert len(window) == 3 and window.span == 100.0  # 250, 300, 350
    assert window.value() == 1.0
    with pytest.raises(ValueError, match="no samples"):
        WindowAverage(10.0).value()
