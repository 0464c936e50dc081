"""One tick's observation: monitor snapshot + whiteboard + sanlock + ha.conf + last result.

Order matters (docs/fsm.md): the monitor readings are taken first and the sanlock queries
after them. A VM seen running in a reading was launched after its lease was acquired, so a
lease check made later can only find the lease held, unless it really was lost since. With
the QEMU holder the lease is acquired by the launch itself (libvirt, while QEMU sits paused),
so a reading and a lease answer taken while a launch was under way, or across its end, do
not belong together: that tick's lease is "cannot tell" (``launch_epoch``), and the next
tick decides on a launch that is over. Likewise with the QEMU holder, a reading of a QEMU that
has not run guest code yet (``WaitForLaunch``: libvirt's PAUSED/STARTING_UP) gets lease
"cannot tell" (``not_started``): whoever started it (this host's launch, whose reading may
arrive after the launch ended; the incoming QEMU of a live migration to this host, while the
source still owns the leases; anyone), libvirt's sanlock plugin acquires every ``<lease>``
before its vCPUs run, so it is no copy running without its lease, and the next reading says
what became of it. And
an action result is reported only together with an engine-health reading that started
after the action finished, so "start OK" never meets a reading from before the start.

Every storage or sanlock call has a deadline (``storage_timeout``): a stalled storage shows
up as ``whiteboard=None`` / ``lease=None`` in the observation, never as a frozen tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from he_ha.config import ConfigError
from he_ha.fsm import (
    ActionResult,
    EngineHealth,
    LeaseStatus,
    LocalReadings,
    Observation,
    SanlockHost,
)
from he_ha.fsm import WhiteboardView as FsmView
from he_ha.lease import (
    HostInfo,
    HostStatus,
    LeaseError,
    LeaseOwner,
    LeaseWorkerDied,
    LockspaceNotJoined,
    LockspaceNotReady,
    LockspaceState,
)
from he_ha.maintenance import MaintenanceFileError
from he_ha.monitors import Reading, engine_status
from he_ha.supervisor.board import BoardRead, BoardReader, fsm_view
from he_ha.supervisor.env import HostEnv
from he_ha.supervisor.lease_holder import QUERY_TIMEOUT, LeaseContext
from he_ha.supervisor.singleflight import SingleFlight
from he_ha.whiteboard import WhiteboardError

log = structlog.get_logger(__name__)

BOARD_REUSE = 0.5  # seconds: a poll's read this young serves the tick as well
DETAIL_NOT_LAUNCHED = "WaitForLaunch"  # the engine-health detail of PAUSED/STARTING_UP (docs/monitors.md)


@dataclass(frozen=True)
class SanlockView:
    lockspace: LockspaceState | None  # None: could not ask
    hosts: tuple[HostInfo, ...] | None
    owners: tuple[LeaseOwner, ...] | None
    held_here: bool | None
    errors: tuple[str, ...] = ()
    duration: float = 0.0  # seconds all the queries took together

    def generation_of(self, host_id: int) -> int | None:
        return next((h.generation for h in self.hosts or () if h.host_id == host_id), None)


@dataclass(frozen=True)
class Completed:
    """A VM action's outcome and when it was known (monotonic)."""

    result: ActionResult
    done_at: float


@dataclass(frozen=True)
class TickInputs:
    """An observation and what it was built from (kept for status and metrics)."""

    observation: Observation
    readings: Mapping[str, Reading[Any]]
    board: BoardRead | None
    board_error: str | None
    sanlock: SanlockView
    held_back: Completed | None  # a result not yet reported: no fresh health reading yet


# --- pure pieces -------------------------------------------------------------------------


def _value(readings: Mapping[str, Reading[Any]], name: str) -> Any:
    reading = readings.get(name)
    return None if reading is None else reading.value


def engine_health(readings: Mapping[str, Reading[Any]]) -> EngineHealth | None:
    """None before the first engine-health probe (B14); the "unknown" row for a failed one."""
    reading = readings.get("engine-health")
    return None if reading is None else EngineHealth.from_mapping(engine_status(reading))


def local_readings(
    readings: Mapping[str, Reading[Any]], *, local_maintenance: bool, vm_memory_mib: int | None, conf_up_to_date: bool
) -> LocalReadings:
    """The monitors' latest values as the FSM takes them; an error reading is None."""
    network, bridge = _value(readings, "network"), _value(readings, "bridge")
    memory, cpu, storage = _value(readings, "memory"), _value(readings, "cpu"), _value(readings, "storage")
    return LocalReadings(
        network=None if network is None else network.effective,
        bridge_up=None if bridge is None else bridge.up,
        free_memory_mib=None if memory is None else memory.available_mib,
        cpu_load=None if cpu is None else cpu.average,
        engine_health=engine_health(readings),
        storage_ok=None if storage is None else storage.valid,
        local_maintenance=local_maintenance,
        vm_memory_mib=vm_memory_mib,
        conf_up_to_date=conf_up_to_date,
    )


def fresh_result(completed: Completed | None, readings: Mapping[str, Reading[Any]]) -> ActionResult | None:
    """The result, once the engine-health reading was taken entirely after it."""
    if completed is None:
        return None
    reading = readings.get("engine-health")
    if reading is None or reading.taken_at - reading.duration < completed.done_at:
        return None
    return completed.result


_SANLOCK_HOST = {
    HostStatus.UNKNOWN: SanlockHost.UNKNOWN,
    HostStatus.FREE: SanlockHost.FREE,
    HostStatus.LIVE: SanlockHost.LIVE,
    HostStatus.FAIL: SanlockHost.FAIL,
    HostStatus.DEAD: SanlockHost.DEAD,
}


def sanlock_hosts(hosts: tuple[HostInfo, ...] | None) -> tuple[tuple[int, SanlockHost], ...] | None:
    if hosts is None:
        return None
    return tuple(sorted((h.host_id, _SANLOCK_HOST[h.status]) for h in hosts))


def not_started(health: EngineHealth | None) -> bool:
    """The local VM's QEMU exists but has not run guest code yet (``WaitForLaunch``)."""
    return health is not None and health.running and health.detail == DETAIL_NOT_LAUNCHED


def launch_overlaps(before: int, after: int) -> bool:
    """A launch was under way when the readings were taken (odd ``launch_epoch``), or began or
    ended before the lease answer: the two do not describe the same moment (module doc)."""
    return before % 2 == 1 or after != before


def lease_status(own_id: int, view: SanlockView) -> LeaseStatus | None:
    """The FSM's lease status. The recorded owner counts only if its generation is still the
    host's current one (a host that rejoined since lost its old leases: docs/fsm.md)."""
    held = view.held_here
    if held is None:
        return None
    if view.owners is None:
        return LeaseStatus(own_id if held else None, held)
    owner: int | None = None
    for record in view.owners:
        current = view.generation_of(record.host_id)
        if current is None or record.generation >= current:
            owner = record.host_id
            break
    if held:
        owner = own_id
    return LeaseStatus(owner, held)


# --- the observer ---------------------------------------------------------------------------


class Observer:
    def __init__(
        self,
        *,
        host_id: int,
        env: HostEnv,
        reader: BoardReader,
        vm_memory_mib: int | None,
        conf_up_to_date: bool,
        storage_timeout: float,
    ) -> None:
        self.host_id = host_id
        self._env = env
        self._clock = env.clock
        self._snapshot = env.readings
        self._reader = reader
        self._client = env.sanlock
        self._lockspace = env.lockspace
        self._lease = env.vm_lease
        self._holder = env.holder
        self._ha_conf = env.ha_conf
        self.vm_memory_mib = vm_memory_mib
        self._conf_up_to_date = conf_up_to_date
        self._timeout = storage_timeout
        self._flights = SingleFlight()
        self.local_maintenance = False
        self.ha_conf_error: str | None = None

    async def observe(self, completed: Completed | None) -> TickInputs:
        """Stamped with the time its inputs were complete (the whiteboard read is older)."""
        epoch = self._holder.launch_epoch  # before the readings: see the module doc
        readings = self._snapshot.readings()  # first: see the module doc
        _, (board, board_error), view = await asyncio.gather(
            self._read_ha_conf(), self._read_board(), self._ask_sanlock()
        )
        # Sanlock's lockspace members bound the slots the next reads cover (board.ScanRange).
        self._reader.note_lockspace(None if view.hosts is None else (h.host_id for h in view.hosts))
        result = fresh_result(completed, readings)
        now = self._clock.monotonic()
        local = local_readings(  # its engine health is the lease status's too: converted once
            readings,
            local_maintenance=self.local_maintenance,
            vm_memory_mib=self.vm_memory_mib,
            conf_up_to_date=self._conf_up_to_date,
        )
        observation = Observation(
            now=now,
            local=local,
            whiteboard=None if board is None else self.fsm_view(board),
            sanlock_hosts=sanlock_hosts(view.hosts),
            lease=self._lease_status(view, epoch, local.engine_health),
            result=result,
        )
        held_back = completed if completed is not None and result is None else None
        return TickInputs(observation, readings, board, board_error, view, held_back)

    def fsm_view(self, board: BoardRead) -> FsmView:
        return fsm_view(board, self.host_id)

    def _lease_status(self, view: SanlockView, epoch: int, health: EngineHealth | None) -> LeaseStatus | None:
        if launch_overlaps(epoch, self._holder.launch_epoch):
            return None
        if self._holder.kind == "qemu" and not_started(health):
            return None  # libvirt acquires the leases before its vCPUs run (module doc)
        return lease_status(self.host_id, view)

    async def close(self) -> None:
        await self._flights.cancel()

    async def _read_ha_conf(self) -> None:
        try:
            active = await self._ha_conf.local_maintenance()
        except (ConfigError, MaintenanceFileError) as exc:
            error = str(exc)
            if error != self.ha_conf_error:
                log.error("ha.conf unusable; keeping the last local maintenance flags", error=error)
            self.ha_conf_error = error
            return
        self.ha_conf_error = None
        self.local_maintenance = active

    async def _read_board(self) -> tuple[BoardRead | None, str | None]:
        try:
            return await self._reader.read(max_age=BOARD_REUSE), None
        except WhiteboardError as exc:
            return None, str(exc)

    async def _query(self, key: str, call: Any, errors: list[str]) -> Any:
        try:
            return await self._flights.run(key, call, self._timeout)
        except TimeoutError:
            errors.append(f"sanlock {key}: no answer within {self._timeout:g} s")
        except (LockspaceNotReady, LockspaceNotJoined):
            pass  # just joined, or not joined: the lockspace state says which
        except LeaseWorkerDied:
            raise  # no more sanlock calls from this process: fatal, systemd restarts us
        except LeaseError as exc:
            errors.append(f"sanlock {key}: {exc}")
        return None

    async def _ask_sanlock(self) -> SanlockView:
        started = self._clock.monotonic()
        errors: list[str] = []
        client, lockspace, lease = self._client, self._lockspace, self._lease
        state, hosts, owners = await asyncio.gather(
            self._query(
                "lockspace", lambda: client.lockspace_state(lockspace, self.host_id, timeout=QUERY_TIMEOUT), errors
            ),
            self._query("hosts", lambda: client.hosts(lockspace, timeout=QUERY_TIMEOUT), errors),
            self._query("owners", lambda: client.owners(lease, timeout=QUERY_TIMEOUT), errors),
        )
        hosts_t = None if hosts is None else tuple(hosts)
        owners_t = None if owners is None else tuple(owners)
        if state is not None and state is not LockspaceState.JOINED:
            held: bool | None = False  # no lockspace, no lease: whatever a holder still thinks
        else:
            generation = next((h.generation for h in hosts_t or () if h.host_id == self.host_id), None)
            ctx = LeaseContext(self.host_id, generation, owners_t)
            held = await self._query("held", lambda: self._holder.check(ctx), errors)
        return SanlockView(state, hosts_t, owners_t, held, tuple(errors), self._clock.monotonic() - started)
