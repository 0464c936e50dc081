"""CPU monitor: host CPU load without the engine VM's own share, plus a windowed average.

As the original ``cpu-load-no-engine`` (spec §5.3): host load = Δbusy/Δtotal ticks of the
first ``cpu`` line of /proc/stat (user..steal; idle+iowait count as idle), the engine's
share = Δ(domain CPU time) / Δ(wall time) / host CPUs, non-engine = max(0, load − engine).
The agent's score uses a 15-minute trapezoid average of that (spec §3.9): ``average``.
The engine's CPU time comes from libvirt (virDomainGetInfo cpuTime, ns, all vCPUs).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from he_ha.monitors.framework import Monitor, MonitorError, require_positive
from he_ha.monitors.libvirt_domain import DomainInfo, DomainObserver


@dataclass(frozen=True, slots=True)
class CpuTicks:
    total: int
    busy: int
    cpus: int  # number of cpuN lines: the CPUs the ticks are summed over


def parse_proc_stat(text: str) -> CpuTicks:
    """The aggregate ``cpu`` line: total = first 8 fields (guest time is inside user)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("cpu "):
        raise MonitorError("/proc/stat: first line is not the aggregate 'cpu' line")
    try:
        fields = [int(x) for x in lines[0].split()[1:9]]
    except ValueError:
        raise MonitorError(f"/proc/stat: non-numeric field in {lines[0]!r}") from None
    if len(fields) < 8:
        raise MonitorError(f"/proc/stat: expected 8 tick fields, got {len(fields)}")
    total = sum(fields)
    idle = fields[3] + fields[4]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return CpuTicks(total=total, busy=total - idle, cpus=max(cpus, 1))


def host_load(before: CpuTicks, after: CpuTicks) -> float:
    """Busy fraction of all host CPUs between two readings (0.0 if no ticks passed)."""
    elapsed = after.total - before.total
    return 0.0 if elapsed <= 0 else min(1.0, max(0.0, (after.busy - before.busy) / elapsed))


def engine_share(before: DomainInfo, after: DomainInfo, host_cpus: int) -> float:
    """The engine VM's CPU use between two looks, as a fraction of all host CPUs."""
    if before.cpu_time_ns is None or after.cpu_time_ns is None:
        return 0.0
    wall_ns = (after.observed_at - before.observed_at) * 1e9
    used_ns = after.cpu_time_ns - before.cpu_time_ns
    if wall_ns <= 0 or used_ns <= 0:
        return 0.0
    return min(1.0, used_ns / wall_ns / host_cpus)


class WindowAverage:
    """Time-weighted average of the samples of the last ``window`` seconds (trapezoid rule,
    as the agent's load_factor). A single sample is its own average."""

    def __init__(self, window: float) -> None:
        require_positive("WindowAverage", window=window)
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, when: float, value: float) -> None:
        self._samples.append((when, value))
        while self._samples and self._samples[0][0] < when - self.window:
            self._samples.popleft()

    @property
    def span(self) -> float:
        return self._samples[-1][0] - self._samples[0][0] if self._samples else 0.0

    def __len__(self) -> int:
        return len(self._samples)

    def value(self) -> float:
        if not self._samples:
            raise ValueError("no samples in the window")
        area = 0.0
        total = 0.0
        for (t0, v0), (t1, v1) in pairwise(self._samples):
            area += (t1 - t0) * (v0 + v1) / 2
            total += t1 - t0
        return area / total if total > 0 else self._samples[-1][1]


@dataclass(frozen=True, slots=True)
class CpuLoad:
    host: float  # busy fraction of all host CPUs over the last sample period
    engine: float  # the engine VM's share of all host CPUs over the same period
    non_engine: float  # max(0, host - engine): the value the original reported
    average: float  # time-weighted average of non_engine over ``window`` (the score input)
    window: float  # seconds actually covered by ``average``
    samples: int  # samples in the window
    engine_running: bool


class CpuMonitor(Monitor[CpuLoad]):
    """Host CPU load excluding the engine VM.

    ``domain``: the engine VM in libvirt; None means there is no VM to exclude.
    ``interval`` 10 s, ``window`` 900 s (the original's 15 minutes). When there is no
    previous sample (first probe, the VM just appeared, or after a libvirt error) the
    probe takes two samples ``warmup`` seconds apart instead.
    """

    name = "cpu"

    def __init__(
        self,
        domain: DomainObserver | None,
        *,
        interval: float = 10.0,
        window: float = 900.0,
        warmup: float = 1.0,
        proc_stat: Path = Path("/proc/stat"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        require_positive("CpuMonitor", warmup=warmup)
        libvirt_time = domain.timeout if domain is not None else 0.0
        super().__init__(interval=interval, deadline=warmup + 2 * libvirt_time + 5.0)
        self.domain = domain
        self.warmup = warmup
        self.proc_stat = proc_stat
        self._clock = clock
        self._average = WindowAverage(window)
        self._previous: tuple[CpuTicks, DomainInfo | None] | None = None

    async def probe(self) -> CpuLoad:
        try:
            current = await self._sample()
            if self._previous is None or (_active(current) and not _active(self._previous)):
                # No usable baseline: take one now and measure over the warm-up period.
                self._previous = current
                await asyncio.sleep(self.warmup)
                current = await self._sample()
        except MonitorError:
            self._previous = None  # a baseline from before a failure would skew the next delta
            raise
        (ticks0, dom0), (ticks1, dom1) = self._previous, current
        self._previous = current
        load = host_load(ticks0, ticks1)
        engine = 0.0
        if dom0 is not None and dom1 is not None and dom0.active and dom1.active:
            engine = engine_share(dom0, dom1, ticks1.cpus)
        non_engine = max(0.0, load - engine)
        self._average.add(self._clock(), non_engine)
        return CpuLoad(
            host=load,
            engine=engine,
            non_engine=non_engine,
            average=self._average.value(),
            window=self._average.span,
            samples=len(self._average),
            engine_running=_active(current),
        )

    async def _sample(self) -> tuple[CpuTicks, DomainInfo | None]:
        try:
            ticks = parse_proc_stat(self.proc_stat.read_text())  # procfs: fast, fine inline
        except OSError as exc:
            raise MonitorError(f"cannot read {self.proc_stat}: {exc.strerror}") from None
        info = await self.domain.observe() if self.domain is not None else None
        return ticks, info

    async def aclose(self) -> None:
        if self.domain is not None:
            await self.domain.aclose()


def _active(sample: tuple[CpuTicks, DomainInfo | None]) -> bool:
    return sample[1] is not None and sample[1].active
