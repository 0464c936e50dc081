"""The host environment: the one interface through which a supervisor's tick does its I/O.

DESIGN.md "One seam for all I/O" (pve-ha-manager's ``Env``): the tick path (observe.py,
core.py, execute.py, board.py, ticker.py, health_gate.py) reaches the whiteboard, sanlock, the
VM lease holder, libvirt, the monitors, ha.conf, the VM definition, notifications, the decision
log, systemd and the clock only through a ``HostEnv``. daemon.py builds the real one from the
objects it starts; he_ha/sim/hostenv.py builds a simulated one per host on the virtual clock,
so the simulator runs the daemon's own tick (assemble.py wires both the same way).

The protocols name exactly what the tick path calls, nothing more; the real classes
(``Whiteboard``, ``LeaseClient``, ``VmController``, ``Snapshot``, ...) satisfy them as they are.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from he_ha.fsm import DecisionRecord, FsmState, Observation
from he_ha.lease import HostInfo, JoinOutcome, LeaseOwner, Lockspace, LockspaceState, VmLease
from he_ha.maintenance import read_local_flags
from he_ha.monitors import Reading
from he_ha.supervisor.lease_holder import LeaseHolder
from he_ha.vm import DomainSpec, LeaseToken, StartResult, StopResult, VmState
from he_ha.whiteboard import SLOT_COUNT, HostSlot
from he_ha.whiteboard import DecodedBoard as RawView

if TYPE_CHECKING:
    from he_ha.ovirt.vm_definition import VmDefinition
    from he_ha.supervisor.execute import DefinitionState


class Clock(Protocol):
    """Every time the tick path reads: ``monotonic`` for decisions and deadlines, ``wall``
    only where a time is shown or published as wall-clock text."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()


class WhiteboardIO(Protocol):
    @property
    def own_host_id(self) -> int: ...

    async def read_all(self, slots: int = SLOT_COUNT) -> RawView: ...

    async def publish(self, slot: HostSlot) -> None: ...


class SanlockIO(Protocol):
    """The sanlock queries of a tick and the rejoin after a lost lockspace."""

    async def lockspace_state(self, lockspace: Lockspace, host_id: int, *, timeout: float) -> LockspaceState: ...

    async def hosts(
        self, lockspace: Lockspace, host_id: int = 0, *, timeout: float | None = None
    ) -> list[HostInfo]: ...

    async def owners(self, lease: VmLease, *, timeout: float) -> list[LeaseOwner]: ...

    async def join(self, lockspace: Lockspace, host_id: int, *, timeout: float) -> JoinOutcome: ...


class VmControl(Protocol):
    """The engine VM in the hypervisor (he_ha.vm.VmController)."""

    async def state(self) -> VmState: ...

    async def start(self, spec: DomainSpec, lease: LeaseToken, *, paused: bool = False) -> StartResult: ...

    async def shutdown(self, timeout: float) -> StopResult: ...

    async def destroy(self) -> StopResult: ...

    async def migrate(self, destination_uri: str, *, deadline: float | None = None) -> VmState: ...


class MonitorReadings(Protocol):
    """The monitors' latest readings (he_ha.monitors.Snapshot)."""

    @property
    def version(self) -> int: ...

    def get(self, monitor: str) -> Reading[Any] | None: ...

    def readings(self) -> Mapping[str, Reading[Any]]: ...

    async def wait_for_update(self, after_version: int) -> int: ...


class HealthProbe(Protocol):
    """The engine-health monitor, told about VM actions (he_ha.monitors.EngineHealthMonitor)."""

    def poke(self) -> None: ...

    def report_lock_conflict(self) -> None: ...


class LocalFlags(Protocol):
    async def local_maintenance(self) -> bool:
        """ha.conf's local maintenance; ConfigError / MaintenanceFileError when unusable."""
        ...


@dataclass(frozen=True)
class HaConfFile:
    """The real ``LocalFlags``: ha.conf, read under its lock with a deadline."""

    path: Path
    timeout: float

    async def local_maintenance(self) -> bool:
        return (await read_local_flags(self.path, timeout=self.timeout)).active


class Definitions(Protocol):
    """The engine VM's definition (execute.SpecSource)."""

    loaded_at: float
    loaded_epoch: float

    async def load(self) -> DomainSpec: ...

    def in_use(self) -> VmDefinition | None: ...

    def state(self, now: float | None = None) -> DefinitionState: ...


class Notifications(Protocol):
    def alert(self, kind: str, reason: str) -> object: ...

    def state_transition(self, old: str, new: str) -> object: ...


class DecisionSink(Protocol):
    """Where each step's decision goes (decisions.DecisionLog)."""

    def decided(self, before: FsmState, obs: Observation, record: DecisionRecord, meta: dict[str, Any]) -> None: ...


class Systemd(Protocol):
    @property
    def watchdog_interval(self) -> float | None: ...

    def status(self, text: str) -> object: ...

    def ready(self, status: str | None = None) -> object: ...

    def watchdog(self) -> object: ...


@dataclass(frozen=True)
class HostEnv:
    """One host's I/O, as the tick path sees it."""

    clock: Clock
    whiteboard: WhiteboardIO
    sanlock: SanlockIO
    lockspace: Lockspace
    vm_lease: VmLease
    holder: LeaseHolder
    vm: VmControl
    readings: MonitorReadings
    health: HealthProbe | None  # None: no engine-health monitor to poke
    ha_conf: LocalFlags
    definitions: Definitions
    notifier: Notifications | None
    decisions: DecisionSink
    systemd: Systemd
