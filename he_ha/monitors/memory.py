"""Memory monitor: MemAvailable compared with the engine VM's memory size.

The original asked VDSM for ``memFree`` (spec §5.5) and the agent subtracted 400 points
when it was below vm.conf ``memSize``. he-ha reads MemAvailable from /proc/meminfo (the
kernel's estimate of memory usable without swapping) directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from he_ha.config import VmConf
from he_ha.monitors.framework import Monitor, MonitorError


@dataclass(frozen=True, slots=True)
class MemoryStatus:
    available_mib: int
    engine_mib: int | None  # the engine VM's memory size; None while unknown
    enough: bool | None  # available_mib >= engine_mib; None while the size is unknown


def parse_mem_available_mib(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) != 3 or parts[2] != "kB" or not parts[1].isdigit():
                raise MonitorError(f"/proc/meminfo: unexpected MemAvailable line {line!r}")
            return int(parts[1]) // 1024
    raise MonitorError("/proc/meminfo has no MemAvailable line")


class MemoryMonitor(Monitor[MemoryStatus]):
    """``engine_mem_mib``: vm.conf ``memSize``. The supervisor may assign the attribute
    again when it re-reads vm.conf. ``interval`` 10 s."""

    name = "memory"

    def __init__(
        self,
        engine_mem_mib: int | None,
        *,
        interval: float = 10.0,
        meminfo: Path = Path("/proc/meminfo"),
    ) -> None:
        if engine_mem_mib is not None and engine_mem_mib <= 0:
            raise ValueError(f"MemoryMonitor: engine_mem_mib must be > 0, got {engine_mem_mib!r}")
        super().__init__(interval=interval, deadline=5.0)
        self.engine_mem_mib = engine_mem_mib
        self.meminfo = meminfo

    @classmethod
    def from_vm_conf(cls, vm_conf: VmConf, *, interval: float = 10.0) -> MemoryMonitor:
        return cls(vm_conf.mem_size_mib, interval=interval)

    async def probe(self) -> MemoryStatus:
        try:
            text = self.meminfo.read_text()  # procfs: fast, fine inline
        except OSError as exc:
            raise MonitorError(f"cannot read {self.meminfo}: {exc.strerror}") from None
        available = parse_mem_available_mib(text)
        needed = self.engine_mem_mib
        return MemoryStatus(available, needed, None if needed is None else available >= needed)
