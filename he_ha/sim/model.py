"""The simulated hardware: hosts, their VM, sanlock's delta leases and the VM lease.

sanlock semantics modelled (peer-ha-systems.md §4):
  * a joined, powered host with working storage renews its delta lease every 2*io_timeout;
  * others see it LIVE until 8*io_timeout after its last renewal, FAIL until
    host_dead = 8*io_timeout + watchdog_fire_timeout, DEAD after that;
  * a host whose renewals fail for 8*io_timeout enters recovery: its lease holders (the VM)
    are killed and it loses the lockspace; it rejoins with a new generation;
  * the VM lease has one owner (host, generation). Another host may acquire it only when it
    is free, when the owner is DEAD, or when the owner has rejoined since (generation check);
  * the lease belongs to the VM process (the lease-keeper model): it is released when the VM
    ends on a host that can still write to storage, and moves with a migration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from he_ha.fsm import FsmState, LeaseStatus, SanlockHost
from he_ha.fsm.health import REASON_NOT_READY, EngineHealth
from he_ha.sim.scenario import HostSpec, SimParams

if TYPE_CHECKING:
    from he_ha.supervisor.core import Supervisor


@dataclass(slots=True)
class SimVm:
    instance: int
    up_at: float  # the engine answers its health page from then on
    hung: bool = False
    shutting_down: bool = False
    unleased: bool = False  # started by the administrator outside he-ha, without the VM lease

    def health(self, t: float, slow: bool = False) -> EngineHealth:
        """``slow``: the engine answers its health page but is not ready (a long start, a
        database upgrade: the scenario's engine-slow until engine-ready)."""
        if self.shutting_down:
            return EngineHealth("up", "bad", "Powering down", "bad vm status")
        if t < self.up_at:
            return EngineHealth("up", "bad", "Powering up", "bad vm status")
        if self.hung:
            return EngineHealth("up", "bad", "Up", "failed liveliness check")
        if slow:
            return EngineHealth("up", "bad", "Up", REASON_NOT_READY)
        return EngineHealth("up", "good", "Up")

    def healthy(self, t: float, slow: bool = False) -> bool:
        return t >= self.up_at and not self.hung and not self.shutting_down and not slow


HYPERVISOR_HUNG = EngineHealth("unknown", "unknown", "unknown", "failed to get the VM state")

# How the engine-health monitor reports a VM that is gone, by how it went (spec §5.8).
EXIT_HEALTH = {
    None: EngineHealth("down", "bad", "unknown", "vm not running on this host"),
    "shutdown": EngineHealth("down", "bad", "Down", "vm shut down"),
    "destroyed": EngineHealth("down", "bad", "Down", "vm destroyed"),
    "migrated": EngineHealth("down", "bad", "Down", "VM migrated away successfully"),
    "crashed": EngineHealth("down_unexpected", "bad", "Down", "bad vm status"),
    "killed": EngineHealth("down_unexpected", "bad", "Down", "bad vm status"),
}


class SimHost:
    """One host: power, supervisor, monitors' inputs, VM and its sanlock membership."""

    __slots__ = (
        "clock_base",
        "epoch",
        "frozen_renewal",
        "generation",
        "hypervisor_hung",
        "io_waiters",
        "joined",
        "last_rule",
        "last_tick_t",
        "local_maintenance",
        "network",
        "powered",
        "renew_anchor",
        "same_time_ticks",
        "spec",
        "stalled",
        "supervisor",
        "supervisor_started",
        "supervisor_up",
        "vm",
        "vm_exit",
    )

    def __init__(self, spec: HostSpec):
        self.spec = spec
        self.powered = spec.powered
        self.clock_base = spec.clock_offset  # monotonic = t + clock_base
        self.epoch = 0  # bumps on power-off and supervisor restart: stale timers are dropped
        self.supervisor_up = False
        self.supervisor_started = 0.0
        self.supervisor: Supervisor | None = None  # the daemon's own, once its start-up is done
        self.same_time_ticks = 0
        self.last_tick_t = -1.0
        self.last_rule = ""
        self.vm: SimVm | None = None
        self.vm_exit: str | None = None
        self.network = 1.0
        self.local_maintenance = False
        self.stalled = False
        self.hypervisor_hung = False
        self.generation = 0  # lockspace generation (0: never joined)
        self.joined = False
        self.renew_anchor = 0.0
        self.frozen_renewal: float | None = None  # last renewal once renewals stopped
        self.io_waiters: list[Any] = []  # futures of storage calls waiting for a stall to end

    @property
    def fsm(self) -> FsmState | None:
        return None if self.supervisor is None else self.supervisor.state

    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def name(self) -> str:
        return self.spec.hostname

    def mono(self, t: float) -> float:
        return t + self.clock_base

    @property
    def renewing(self) -> bool:
        return self.powered and self.joined and not self.stalled

    def last_renewal(self, t: float, sim: SimParams) -> float:
        if self.frozen_renewal is not None:
            return self.frozen_renewal
        period = sim.renewal_interval
        return self.renew_anchor + math.floor((t - self.renew_anchor) / period) * period if period else t

    def stop_renewing(self, t: float, sim: SimParams) -> None:
        if self.frozen_renewal is None and self.generation:
            self.frozen_renewal = self.last_renewal(t, sim)

    def start_renewing(self, t: float) -> None:
        self.frozen_renewal = None
        self.renew_anchor = t

    def sanlock_status(self, t: float, sim: SimParams) -> SanlockHost:
        if self.renewing:
            return SanlockHost.LIVE
        age = t - self.last_renewal(t, sim)
        if age < sim.recovery_time:
            return SanlockHost.LIVE
        return SanlockHost.FAIL if age < sim.host_dead_time else SanlockHost.DEAD

    def engine_health(self, t: float, sim: SimParams, slow: bool = False) -> EngineHealth | None:
        if t < self.supervisor_started + sim.monitor_warmup:
            return None  # the monitor has not reported yet (B14)
        if self.hypervisor_hung:
            return HYPERVISOR_HUNG
        return self.vm.health(t, slow) if self.vm is not None else EXIT_HEALTH[self.vm_exit]


class SimLease:
    """The engine VM's sanlock resource lease."""

    __slots__ = ("generation", "owner")

    def __init__(self) -> None:
        self.owner: SimHost | None = None
        self.generation = 0

    def valid_owner(self) -> SimHost | None:
        """The owner, unless it rejoined the lockspace since it acquired (its lease is void)."""
        if self.owner is not None and self.owner.generation == self.generation:
            return self.owner
        return None

    def can_acquire(self, host: SimHost, t: float, sim: SimParams) -> bool:
        owner = self.valid_owner()
        return owner is None or owner is host or owner.sanlock_status(t, sim) is SanlockHost.DEAD

    def take(self, host: SimHost) -> None:
        self.owner, self.generation = host, host.generation

    def release(self) -> None:
        self.owner, self.generation = None, 0

    def status_for(self, host: SimHost) -> LeaseStatus:
        owner = self.valid_owner()
        return LeaseStatus(None if owner is None else owner.id, owner is host)
