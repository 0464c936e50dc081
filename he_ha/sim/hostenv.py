"""The simulated ``HostEnv`` of one host (he_ha/supervisor/env.py): the daemon's tick runs
against these instead of storage, sanlock, libvirt and the monitors.

Each piece answers from the world's models (he_ha/sim/model.py) and changes them only
through the world (he_ha/sim/world.py), which logs the change and runs the safety checks.
Calls that reach shared storage wait while this host's storage is stalled, and fail at the
caller's deadline as the real ones do; libvirt calls fail at once while the hypervisor hangs.
Durations (a launch, a migration, a destroy, joining the lockspace) are ``asyncio.sleep``s on
the virtual clock (vloop.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from he_ha.fsm import DecisionRecord, EngineHealth, FsmState, Observation, SanlockHost
from he_ha.lease import HostInfo, HostStatus, JoinOutcome, LeaseError, LeaseOwner, Lockspace, LockspaceState, VmLease
from he_ha.monitors import Reading
from he_ha.monitors.bridge import BridgeStatus
from he_ha.monitors.cpu import CpuLoad
from he_ha.monitors.engine_health import EngineHealthReport
from he_ha.monitors.memory import MemoryStatus
from he_ha.monitors.network import NetworkStatus
from he_ha.monitors.storage import StorageStatus
from he_ha.supervisor.env import HostEnv
from he_ha.supervisor.execute import DefinitionState
from he_ha.supervisor.lease_holder import QUERY_TIMEOUT, LeaseContext, LeaseHolder
from he_ha.vm import (
    DomainId,
    DomainSpec,
    LeaseToken,
    StartResult,
    StartWithoutLease,
    StopResult,
    VmError,
    VmState,
)
from he_ha.vm.domain import StartOutcome, StopOutcome
from he_ha.vm.errors import LibvirtCallError
from he_ha.vm.state import VmStatus
from he_ha.whiteboard import SLOT_COUNT, GlobalBlock, HostSlot, StorageError
from he_ha.whiteboard import DecodedBoard as RawView

if TYPE_CHECKING:
    from he_ha.ovirt.vm_definition import VmDefinition
    from he_ha.sim.model import SimHost
    from he_ha.sim.vloop import VirtualLoop
    from he_ha.sim.world import World

WALL_EPOCH = 1_700_000_000.0  # wall-clock time at virtual time 0
LOCKSPACE = Lockspace(Path("/sim/lockspace"))
VM_LEASE = VmLease(Path("/sim/lockspace"), "sim-engine-vm", 0)
DOMAIN = DomainId("HostedEngine")
MIGRATE_URI = "sim://{host_id}"  # the executor formats it; SimLibvirt.migrate reads the target back
HUNG = "hypervisor call timed out"

_STATUS = {SanlockHost.LIVE: HostStatus.LIVE, SanlockHost.FAIL: HostStatus.FAIL, SanlockHost.DEAD: HostStatus.DEAD}
_RUNNING = VmState(VmStatus.RUNNING)
_HOST_INFOS: dict[tuple[int, HostStatus, int, int], HostInfo] = {}


def _host_info(host_id: int, status: HostStatus, generation: int, io_timeout: int) -> HostInfo:
    """sanlock's record of a host (immutable: the same object for the same values)."""
    key = (host_id, status, generation, io_timeout)
    info = _HOST_INFOS.get(key)
    if info is None:
        info = _HOST_INFOS[key] = HostInfo(host_id, status, generation, 0, io_timeout)
    return info


_GLOBAL = {True: GlobalBlock(maintenance=True), False: GlobalBlock(maintenance=False)}
_STORAGE = {True: StorageStatus(True, 0.0), False: StorageStatus(False, 0.0)}
_REPORTS: dict[EngineHealth, EngineHealthReport] = {}  # immutable both: one report per distinct health


def _report(health: EngineHealth) -> EngineHealthReport:
    """The engine-health monitor's report of ``health`` (the same object for equal healths)."""
    report = _REPORTS.get(health)
    if report is None:
        report = _REPORTS[health] = EngineHealthReport(health.to_mapping(), None, None, 0, None, False)
    return report


class SimClock:
    """This host's clocks: its monotonic clock is the virtual time plus its own offset."""

    def __init__(self, loop: VirtualLoop, host: SimHost) -> None:
        self._loop = loop
        self._host = host

    def monotonic(self) -> float:
        return self._loop.now + self._host.clock_base  # host.mono(loop.time()), inlined: the hottest call

    def wall(self) -> float:
        return WALL_EPOCH + self._loop.now


async def storage_io(host: SimHost, timeout: float, what: str) -> None:
    """Return when this host's storage answers: at once, or when a stall ends within
    ``timeout``; TimeoutError otherwise."""
    if not host.stalled:
        return
    resumed = asyncio.get_running_loop().create_future()
    host.io_waiters.append(resumed)
    try:
        await asyncio.wait_for(resumed, timeout)
    except TimeoutError:
        raise TimeoutError(f"{what}: storage did not answer within {timeout:g} s") from None
    finally:
        if resumed in host.io_waiters:
            host.io_waiters.remove(resumed)


class SimWhiteboard:
    def __init__(self, world: World, host: SimHost, timeout: float) -> None:
        self._world, self._host, self._timeout = world, host, timeout

    @property
    def own_host_id(self) -> int:
        return self._host.id

    async def read_all(self, slots: int = SLOT_COUNT) -> RawView:
        try:
            await storage_io(self._host, self._timeout, "read")
        except TimeoutError as exc:
            raise StorageError("/sim/metadata", "read", str(exc)) from None
        world = self._world
        return RawView(_GLOBAL[world.global_maintenance], None, dict(world.slots), {}, {}, scanned_slots=slots)

    async def publish(self, slot: HostSlot) -> None:
        try:
            await storage_io(self._host, self._timeout, "write")
        except TimeoutError as exc:
            raise StorageError("/sim/metadata", "write", str(exc)) from None
        self._world.slots[self._host.id] = slot


class SimSanlock:
    """The host's sanlock daemon. Lockspace membership is answered from its memory; host
    status and lease owners read storage. Without ``sim.sanlock_status`` those two fail (the
    state machine then decides as the original did, without sanlock's view)."""

    def __init__(self, world: World, host: SimHost) -> None:
        self._world, self._host = world, host

    async def lockspace_state(self, lockspace: Lockspace, host_id: int, *, timeout: float) -> LockspaceState:
        return LockspaceState.JOINED if self._host.joined else LockspaceState.NOT_JOINED

    async def _read(self, timeout: float, what: str) -> None:
        if not self._world.sim.sanlock_status:
            raise LeaseError(f"{what}: sanlock status is not modelled in this scenario")
        if not self._host.joined:
            raise LeaseError(f"{what}: the lockspace is not joined")
        await storage_io(self._host, timeout, what)

    async def hosts(self, lockspace: Lockspace, host_id: int = 0, *, timeout: float | None = None) -> list[HostInfo]:
        await self._read(timeout or QUERY_TIMEOUT, "hosts")
        world = self._world
        t, sim = world.t, world.sim
        return [
            _host_info(h.id, _STATUS[h.sanlock_status(t, sim)], h.generation, int(sim.io_timeout))
            for h in world.order
            if h.generation and host_id in (0, h.id)
        ]

    async def owners(self, lease: VmLease, *, timeout: float) -> list[LeaseOwner]:
        await self._read(timeout, "owners")
        vm_lease = self._world.lease
        return [] if vm_lease.owner is None else [LeaseOwner(vm_lease.owner.id, vm_lease.generation, 0)]

    async def join(self, lockspace: Lockspace, host_id: int, *, timeout: float) -> JoinOutcome:
        return await self._world.join(self._host, timeout)


class SimHolder(LeaseHolder):
    """The VM lease belongs to the VM's process, as with the QEMU holder: the launch acquires
    it (SimLibvirt.start), it moves with a live migration, and sanlock releases it when the VM
    ends on a host whose storage works (the world does that)."""

    kind = "sim"
    held_by_qemu = True

    def __init__(self, world: World, host: SimHost, timeout: float) -> None:
        super().__init__(None, VM_LEASE, on_lost=lambda reason: None)  # type: ignore[arg-type]
        self._world, self._host, self._timeout = world, host, timeout

    async def acquire(self, timeout: float) -> None:
        """Nothing before the launch: the launch takes the lease or fails."""

    def prepare(self, spec: DomainSpec) -> DomainSpec:
        self._held = True  # the XML now carries the lease: libvirt acquires it or fails
        return spec

    def launched(self) -> None:
        self._held = False

    async def check(self, ctx: LeaseContext) -> bool | None:
        if not self._world.sim.sanlock_status:
            raise LeaseError("held: sanlock status is not modelled in this scenario")
        await storage_io(self._host, self._timeout, "held")
        return self._world.lease.valid_owner() is self._host

    async def release(self) -> None:
        try:
            await storage_io(self._host, self._timeout, "release")
        except TimeoutError as exc:
            raise LeaseError(str(exc)) from None
        self._world.release_lease(self._host)


class SimLaunchRefused(LibvirtCallError):
    """libvirt's sanlock plugin could not take the lease; worded as the simulator logs it."""

    def __init__(self, message: str, *, lock: bool) -> None:
        code = libvirt.VIR_ERR_RESOURCE_BUSY if lock else libvirt.VIR_ERR_INTERNAL_ERROR
        super().__init__("start", code, 0, message)

    def __str__(self) -> str:
        return self.message


class SimLibvirt:
    """libvirt on this host, for the engine VM (env.VmControl)."""

    def __init__(self, world: World, host: SimHost) -> None:
        self._world, self._host = world, host

    def _responsive(self) -> None:
        if self._host.hypervisor_hung:
            raise VmError(HUNG)

    async def state(self) -> VmState:
        self._responsive()
        return _RUNNING if self._host.vm is not None else VmState.absent()

    async def start(self, spec: DomainSpec, lease: LeaseToken, *, paused: bool = False) -> StartResult:
        world, host = self._world, self._host
        await asyncio.sleep(world.sim.vm_start_time)
        self._responsive()
        if host.vm is not None:
            return StartResult(StartOutcome.ALREADY_RUNNING, _RUNNING)
        if not lease.is_held():
            raise StartWithoutLease("the lease token says the VM lease is not held")
        refused = world.launch(host)
        if refused is not None:
            raise SimLaunchRefused(refused[0], lock=refused[1])
        return StartResult(StartOutcome.STARTED, _RUNNING)

    async def shutdown(self, timeout: float) -> StopResult:
        """Ask the guest, then wait until it is gone (polling as VmController does)."""
        world, host = self._world, self._host
        self._responsive()
        vm = host.vm
        if vm is None:
            return StopResult(StopOutcome.ALREADY_STOPPED, VmState.absent())
        world.request_shutdown(host)
        waited = 0.0
        while host.vm is vm:
            if waited >= timeout:
                return StopResult(StopOutcome.TIMED_OUT, _RUNNING)
            await asyncio.sleep(min(1.0, timeout - waited))
            waited += 1.0
        return StopResult(StopOutcome.STOPPED, VmState.absent())

    async def destroy(self) -> StopResult:
        world, host = self._world, self._host
        await asyncio.sleep(world.sim.vm_destroy_time)
        self._responsive()
        if host.vm is None:
            return StopResult(StopOutcome.ALREADY_STOPPED, VmState.absent())
        world.vm_gone(host, "destroyed")
        return StopResult(StopOutcome.STOPPED, VmState.absent())

    async def migrate(self, destination_uri: str, *, deadline: float | None = None) -> VmState:
        world, host = self._world, self._host
        await asyncio.sleep(world.sim.vm_migrate_time)
        self._responsive()
        problem = world.migrate(host, int(destination_uri.rpartition("/")[2]))
        if problem is not None:
            raise VmError(problem)
        return VmState.absent()


class SimReadings:
    """The monitors: each reading taken the moment it is asked for (always fresh, so an
    action's result reaches the very next tick, env.MonitorReadings)."""

    def __init__(self, world: World, host: SimHost, clock: SimClock) -> None:
        self._world, self._host, self._clock = world, host, clock
        spec = host.spec
        self._memory = MemoryStatus(int(spec.free_memory_mib), None, None)
        self._cpu = CpuLoad(spec.cpu_load, 0.0, spec.cpu_load, spec.cpu_load, 0.0, 0, False)
        self._bridge = BridgeStatus("sim", True, True)
        self._network: NetworkStatus | None = None  # the latest, reused while host.network stays

    @property
    def version(self) -> int:
        return 0

    async def wait_for_update(self, after_version: int) -> int:
        await asyncio.get_running_loop().create_future()  # never: every reading is fresh when read
        return after_version

    def get(self, monitor: str) -> Reading[Any] | None:
        if monitor != "engine-health":
            return self.readings().get(monitor)
        world, host = self._world, self._host
        health = host.engine_health(world.t, world.sim, world.engine_slow)
        if health is None:
            return None
        return Reading("engine-health", _report(health), self._clock.monotonic(), 0.0)

    def readings(self) -> Mapping[str, Reading[Any]]:
        host, now = self._host, self._clock.monotonic()
        network = self._network
        if network is None or network.effective != host.network:
            network = self._network = NetworkStatus("sim", host.network, host.network, 0, 0, None, None)
        out: dict[str, Reading[Any]] = {
            "network": Reading("network", network, now, 0.0),
            "bridge": Reading("bridge", self._bridge, now, 0.0),
            "memory": Reading("memory", self._memory, now, 0.0),
            "cpu": Reading("cpu", self._cpu, now, 0.0),
            "storage": Reading("storage", _STORAGE[not host.stalled], now, 0.0),
        }
        health = self.get("engine-health")
        if health is not None:
            out["engine-health"] = health
        return out


class SimHaConf:
    def __init__(self, host: SimHost) -> None:
        self._host = host

    async def local_maintenance(self) -> bool:
        return self._host.local_maintenance


class SimDefinitions:
    """A VM definition that is always there (the simulator does not model vm.conf)."""

    def __init__(self, clock: SimClock) -> None:
        self.loaded_at = clock.monotonic()
        self.loaded_epoch = clock.wall() - self.loaded_at
        self._spec = DomainSpec("<domain/>", DOMAIN, "sim")

    async def load(self) -> DomainSpec:
        return self._spec

    def in_use(self) -> VmDefinition | None:
        return None

    def state(self, now: float | None = None) -> DefinitionState:
        return DefinitionState(True, "sim", None, None, None)


class SimDecisions:
    def __init__(self, world: World, host: SimHost) -> None:
        self._world, self._host = world, host

    def decided(self, before: FsmState, obs: Observation, record: DecisionRecord, meta: dict[str, Any]) -> None:
        self._world.decided(self._host, before, obs, record)


class NoSystemd:
    watchdog_interval = None

    def status(self, text: str) -> bool:
        return False

    def ready(self, status: str | None = None) -> bool:
        return False

    def watchdog(self) -> bool:
        return False


def host_env(world: World, host: SimHost, loop: VirtualLoop, storage_timeout: float) -> HostEnv:
    clock = SimClock(loop, host)
    return HostEnv(
        clock=clock,
        whiteboard=SimWhiteboard(world, host, storage_timeout),
        sanlock=SimSanlock(world, host),
        lockspace=LOCKSPACE,
        vm_lease=VM_LEASE,
        holder=SimHolder(world, host, storage_timeout),
        vm=SimLibvirt(world, host),
        readings=SimReadings(world, host, clock),
        health=None,
        ha_conf=SimHaConf(host),
        definitions=SimDefinitions(clock),
        notifier=None,
        decisions=SimDecisions(world, host),
        systemd=NoSystemd(),
    )
