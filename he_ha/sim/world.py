"""The simulated cluster on a virtual clock: every host runs the real ``step`` and score;
whiteboard, sanlock, VM and lease are models (he_ha.sim.model). Discrete events, processed
in (time, insertion order): the run is fully deterministic. After every event the safety
checks run; a violation raises SafetyViolation with the schedule.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from he_ha.fsm import (
    AcquireLeaseAndStartVm,
    Action,
    ActionResult,
    DecisionRecord,
    DestroyVm,
    FsmState,
    LocalReadings,
    MigrateVm,
    Observation,
    Outcome,
    PeerRecord,
    Publish,
    PublishedRecord,
    ReleaseLease,
    ShutdownVm,
    WhiteboardView,
    initial_state,
    step,
)
from he_ha.fsm.actions import VM_ACTIONS
from he_ha.sim.model import SimHost, SimVm, VmLease
from he_ha.sim.safety import SafetyViolation, check_transition, check_world
from he_ha.sim.scenario import Event, Scenario

# event kinds
_COMMAND, _SUPERVISOR_START, _JOINED, _TICK, _READ, _ACTION_DONE, _VM_UP, _VM_EXIT, _RECOVERY = range(9)
_MAX_TICKS_AT_ONE_TIME = 50  # a NOWAIT chain longer than this is a bug (a livelock)


class SimError(RuntimeError):
    """The simulation itself went wrong (not a safety violation of the system under test)."""


@dataclass(frozen=True, slots=True)
class SimResult:
    log: list[str]
    engine_ok: list[tuple[float, bool]]  # (time, a healthy engine runs somewhere) at each change
    steps: int
    final_states: dict[int, str | None]
    recorded: list[tuple[FsmState, Observation, DecisionRecord]]


def _describe(action: Action) -> str:
    if isinstance(action, AcquireLeaseAndStartVm):
        return f"start #{action.seq}"
    if isinstance(action, ShutdownVm):
        return f"shutdown #{action.seq}"
    if isinstance(action, DestroyVm):
        return f"destroy #{action.seq} ({action.reason})"
    assert isinstance(action, MigrateVm)
    return f"migrate #{action.seq} to {action.target_hostname}"


def engine_outages(engine_ok: list[tuple[float, bool]], until: float) -> list[tuple[float, float | None]]:
    """(start, end) of every period without a healthy engine; end None if still down at `until`."""
    outages: list[tuple[float, float | None]] = []
    for (t, ok), following in zip(engine_ok, [*engine_ok[1:], None]):
        if not ok:
            outages.append((t, following[0] if following is not None else None))
    return [(s, e) for s, e in outages if s <= until]


class World:
    def __init__(self, scenario: Scenario, *, record_steps: bool = False, seed: int | None = None):
        self.scenario = scenario
        self.sim = scenario.sim
        self.seed = seed
        self.hosts = {spec.id: SimHost(spec) for spec in scenario.hosts}
        self.order = [self.hosts[i] for i in sorted(self.hosts)]
        self.lease = VmLease()
        self.slots: dict[int, PeerRecord] = {}
        self.global_maintenance = False
        self.engine_slow = False  # the engine answers but is not ready (engine-slow .. engine-ready)
        self.queue: list[tuple[float, int, int, Any, Any]] = []
        self.seq = 0
        self.t = 0.0
        self.log: list[str] = []
        self.vm_counter = 0
        self.steps = 0
        self.engine_ok: list[tuple[float, bool]] = [(0.0, False)]
        self.recorded: list[tuple[FsmState, Observation, DecisionRecord]] | None = [] if record_steps else None
        for event in scenario.events:
            self._push(event.at, _COMMAND, None, event)
        for host in self.order:
            if host.powered:
                self._push(0.0, _SUPERVISOR_START, host, host.epoch)

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> SimResult:
        self.run_until(self.scenario.until)
        states = " ".join(f"{h.name}={h.fsm.name.value if h.fsm else '-'}" for h in self.order)
        self._say("sim", f"end: {states}")
        return self.result()

    def run_until(self, until: float) -> None:
        handlers = {
            _COMMAND: self._command,
            _SUPERVISOR_START: self._supervisor_start,
            _JOINED: self._joined,
            _TICK: self._tick,
            _READ: self._read,
            _ACTION_DONE: self._action_done,
            _VM_UP: self._vm_up,
            _VM_EXIT: self._vm_exit,
            _RECOVERY: self._recovery,
        }
        queue = self.queue
        while queue and queue[0][0] <= until:
            t, _, kind, host, payload = heapq.heappop(queue)
            self.t = t
            handlers[kind](host, payload)
            self._after_event()
        self.t = max(self.t, until)

    def result(self) -> SimResult:
        return SimResult(
            log=self.log,
            engine_ok=self.engine_ok,
            steps=self.steps,
            final_states={h.id: (h.fsm.name.value if h.fsm else None) for h in self.order},
            recorded=self.recorded or [],
        )

    def _push(self, t: float, kind: int, host: SimHost | None, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, kind, host, payload))

    def _say(self, who: str, message: str) -> None:
        self.log.append(f"{self.t:8.1f}  {who:<6}  {message}")

    def check(self) -> None:
        """Raise SafetyViolation if an invariant is broken now."""
        problem = check_world(self.order, self.lease)
        if problem:
            raise SafetyViolation(problem, self.t, self.scenario, self.log, self.seed)

    def _after_event(self) -> None:
        self.check()
        ok = False
        for host in self.order:
            if host.vm is not None:
                ok = host.vm.healthy(self.t, self.engine_slow)
                break
        if ok is not self.engine_ok[-1][1]:
            self.engine_ok.append((self.t, ok))

    # --- supervisor, lockspace, ticks and reads ------------------------------------------------------

    def _supervisor_start(self, host: SimHost, epoch: int) -> None:
        if epoch != host.epoch or not host.powered:
            return
        host.supervisor_up = True
        host.supervisor_started = self.t
        host.fsm = initial_state(host.id, self.scenario.timing, self.scenario.score, host.spec.priority)
        host.vm_exit = None  # the engine-health monitor starts afresh
        host.view = None
        host.last_result = None
        host.last_rule = ""
        self._say(host.name, "supervisor started")
        if host.joined:  # the sanlock daemon kept the lockspace across the restart
            self._begin_ticking(host)
        elif not host.stalled:
            self._push(self.t + self.sim.lockspace_join_time, _JOINED, host, host.epoch)

    def _joined(self, host: SimHost, epoch: int) -> None:
        if epoch != host.epoch or not host.powered or host.stalled or host.joined:
            return
        host.generation += 1
        host.joined = True
        host.start_renewing(self.t)
        self._say(host.name, f"lockspace joined (generation {host.generation})")
        self._begin_ticking(host)

    def _begin_ticking(self, host: SimHost) -> None:
        self._push(self.t, _READ, host, host.epoch)
        self._schedule_tick(host, self.t + host.spec.tick_phase)

    def _schedule_tick(self, host: SimHost, at: float) -> None:
        host.tick_token += 1
        self._push(at, _TICK, host, host.tick_token)

    def _read(self, host: SimHost, epoch: int) -> None:
        if epoch != host.epoch or not host.supervisor_up:
            return
        if not host.stalled:
            peers = tuple(record for hid, record in sorted(self.slots.items()) if hid != host.id)
            host.view = WhiteboardView(host.mono(self.t), peers, self.global_maintenance)
        self._push(self.t + host.spec.read_period, _READ, host, epoch)

    def _observe(self, host: SimHost) -> Observation:
        t, sim, spec = self.t, self.sim, host.spec
        local = LocalReadings(
            network=host.network,
            bridge_up=True,
            free_memory_mib=spec.free_memory_mib,
            cpu_load=spec.cpu_load,
            engine_health=host.engine_health(t, sim, self.engine_slow),
            storage_ok=not host.stalled,
            local_maintenance=host.local_maintenance,
            vm_memory_mib=spec.vm_memory_mib,
        )
        sanlock = lease = None
        if sim.sanlock_status and host.joined and not host.stalled:
            sanlock = tuple((o.id, o.sanlock_status(t, sim)) for o in self.order if o is not host and o.generation)
            lease = self.lease.status_for(host)
        return Observation(host.mono(t), local, host.view, sanlock, lease, host.last_result)

    def _tick(self, host: SimHost, token: int) -> None:
        if token != host.tick_token or not host.supervisor_up or host.fsm is None:
            return
        if self.t == host.last_tick_t:
            host.same_time_ticks += 1
            if host.same_time_ticks > _MAX_TICKS_AT_ONE_TIME:
                raise SimError(f"{host.name} ticked {_MAX_TICKS_AT_ONE_TIME} times at t={self.t}: livelock")
        else:
            host.same_time_ticks, host.last_tick_t = 0, self.t
        observation = self._observe(host)
        before = host.fsm
        after, actions, record = step(before, observation)
        self.steps += 1
        problem = check_transition(before.name, after.name, record.rule)
        if problem:
            raise SafetyViolation(problem, self.t, self.scenario, self.log, self.seed)
        if self.recorded is not None:
            self.recorded.append((before, observation, record))
        host.fsm = after
        host.last_result = None
        note = f" ({record.note})" if record.note else ""
        if after.name is not before.name:
            self._say(host.name, f"{before.name.value} -> {after.name.value} [{record.rule}] score={record.score.total}{note}")
        elif record.rule != host.last_rule:
            self._say(host.name, f"{after.name.value} [{record.rule}] score={record.score.total}{note}")
        host.last_rule = record.rule
        raised, now_active = {a.kind for a in before.alerts}, {a.kind for a in after.alerts}
        for alert in after.alerts:
            if alert.kind not in raised:
                self._say(host.name, f"ALERT {alert.kind}: {alert.reason}")
        for kind in sorted(raised - now_active):
            self._say(host.name, f"alert cleared: {kind}")
        for action in actions:
            self._execute(host, action)
        self._schedule_tick(host, self.t + record.tick_after)

    # --- actions ----------------------------------------------------------------------------------------

    def _execute(self, host: SimHost, action: Action) -> None:
        if isinstance(action, Publish):
            self._publish(host, action.record)
        elif isinstance(action, ReleaseLease):
            self._release(host, action)
        elif isinstance(action, VM_ACTIONS):
            self._say(host.name, f"action {_describe(action)}")
            self._push(self.t + self._duration(action), _ACTION_DONE, host, (host.epoch, action))

    def _duration(self, action: Action) -> float:
        """How long the executor takes to report; the guest's own shutdown comes later."""
        if isinstance(action, AcquireLeaseAndStartVm):
            return self.sim.vm_start_time
        return self.sim.vm_migrate_time if isinstance(action, MigrateVm) else self.sim.vm_destroy_time

    def _publish(self, host: SimHost, record: PublishedRecord) -> None:
        if host.joined and not host.stalled:  # writes need the lockspace, as the original's
            self.slots[host.id] = PeerRecord(
                host.id, record.host_ts, record.score, record.engine_status, host.name, record.maintenance, record.stopped,
                record.priority,
            )

    def _release(self, host: SimHost, action: ReleaseLease) -> None:
        if host.vm is not None:
            raise SafetyViolation(
                f"{host.name} asked to release the lease while its VM runs ({action.reason})",
                self.t,
                self.scenario,
                self.log,
                self.seed,
            )
        if self.lease.valid_owner() is host and not host.stalled:
            self.lease.release()
            self._say(host.name, "lease released")

    def _action_done(self, host: SimHost, payload: tuple[int, Action]) -> None:
        epoch, action = payload
        if epoch != host.epoch or not host.powered:
            return  # the supervisor that asked is gone, and its executor with it
        if host.hypervisor_hung:
            outcome, reason = Outcome.FAILED, "hypervisor call timed out"
        elif isinstance(action, AcquireLeaseAndStartVm):
            outcome, reason = self._start(host)
        elif isinstance(action, ShutdownVm):
            outcome, reason = self._shutdown(host)
        elif isinstance(action, DestroyVm):
            if host.vm is not None:
                self._vm_gone(host, "destroyed")
            outcome, reason = Outcome.OK, ""
        else:
            assert isinstance(action, MigrateVm)
            outcome, reason = self._migrate(host, action.target_host_id)
        self._say(host.name, f"result #{action.seq} {outcome.value}" + (f" ({reason})" if reason else ""))
        host.last_result = ActionResult(action.seq, outcome, reason)
        self._schedule_tick(host, self.t)

    def _start(self, host: SimHost) -> tuple[Outcome, str]:
        if host.vm is not None:
            return Outcome.OK, "already running here"
        if host.stalled or not host.joined:
            return Outcome.FAILED, "storage unavailable"
        if not self.lease.can_acquire(host, self.t, self.sim):
            owner = self.lease.valid_owner()
            return Outcome.LEASE_BUSY, f"lease held by {owner.name if owner else '?'}"
        self.lease.take(host)
        self.vm_counter += 1
        host.vm = SimVm(self.vm_counter, self.t + self.sim.vm_boot_time)
        host.vm_exit = None
        self._say(host.name, "lease acquired, vm started")
        self._push(host.vm.up_at, _VM_UP, host, host.vm.instance)
        return Outcome.OK, ""

    def _shutdown(self, host: SimHost) -> tuple[Outcome, str]:
        vm = host.vm
        if vm is None:
            return Outcome.OK, "no VM here"
        if vm.hung:
            return Outcome.OK, "request sent; the hung guest ignores it"
        vm.shutting_down = True
        self._push(self.t + self.sim.vm_shutdown_time, _VM_EXIT, host, (vm.instance, "shutdown"))
        return Outcome.OK, ""

    def _migrate(self, host: SimHost, target_id: int) -> tuple[Outcome, str]:
        target = self.hosts.get(target_id)
        vm = host.vm
        if vm is None or host.stalled:
            return Outcome.FAILED, "no migratable VM here"
        if target is None or not target.powered or not target.joined or target.stalled:
            return Outcome.FAILED, f"host{target_id} cannot receive the VM"
        if target.vm is not None:
            return Outcome.FAILED, f"{target.name} already runs a VM"
        if target.spec.refuses_migration:
            return Outcome.FAILED, f"{target.name} refuses incoming migrations (no lock manager for the VM lease)"
        host.vm, host.vm_exit = None, "migrated"
        target.vm, target.vm_exit = vm, None
        vm.shutting_down = False
        self.lease.take(target)
        self._say(host.name, f"vm migrated to {target.name}, lease moved")
        if target.supervisor_up:
            self._schedule_tick(target, self.t)  # libvirt's lifecycle event on the target
        return Outcome.OK, ""

    # --- the VM ---------------------------------------------------------------------------------------------

    def _vm_gone(self, host: SimHost, how: str) -> None:
        host.vm = None
        host.vm_exit = how
        released = self.lease.valid_owner() is host and not host.stalled
        if released:
            self.lease.release()
        self._say(host.name, f"vm {how}" + (", lease released" if released else ""))

    def _vm_up(self, host: SimHost, instance: int) -> None:
        if host.vm is not None and host.vm.instance == instance:
            self._say(host.name, "vm booted" + (" (engine hung)" if host.vm.hung else ""))

    def _vm_exit(self, host: SimHost, payload: tuple[int, str]) -> None:
        instance, how = payload
        if host.vm is not None and host.vm.instance == instance:
            self._vm_gone(host, how)
            if host.supervisor_up:
                self._schedule_tick(host, self.t)

    def _recovery(self, host: SimHost, stalled_since: float) -> None:
        """sanlock recovery on a host whose renewals failed for 8 * io_timeout."""
        if not (host.stalled and host.powered and host.joined and host.frozen_renewal == stalled_since):
            return
        host.joined = False
        self._say(host.name, "sanlock recovery: lockspace lost" + (", kills the VM" if host.vm else ""))
        if host.vm is not None:
            self._vm_gone(host, "killed")
            if host.supervisor_up:
                self._schedule_tick(host, self.t)

    # --- scripted events ----------------------------------------------------------------------------------

    def _vm_host(self, event: Event) -> SimHost | None:
        if event.host is not None:
            host = self.hosts[event.host]
            return host if host.vm is not None else None
        return next((h for h in self.order if h.vm is not None), None)

    def _command(self, _host: None, event: Event) -> None:
        host = self.hosts[event.host] if event.host is not None else None
        self._say(host.name if host else "sim", f"event {event.describe()}")
        do = event.do
        if do in ("vm-crash", "engine-hang", "engine-recover"):
            target = self._vm_host(event)
            if target is None or target.vm is None:
                self._say("sim", "no VM to act on")
            elif do == "vm-crash":
                self._vm_gone(target, "crashed")
                if target.supervisor_up:
                    self._schedule_tick(target, self.t)
            else:
                target.vm.hung = do == "engine-hang"
        elif do == "engine-migrate":
            assert host is not None
            source = self._vm_host(Event(event.at, do))
            if source is None or source is host:
                self._say("sim", "no VM to migrate")
            else:
                outcome, reason = self._migrate(source, host.id)
                self._say(source.name, f"engine-driven migration {outcome.value}" + (f" ({reason})" if reason else ""))
                if source.supervisor_up:
                    self._schedule_tick(source, self.t)
        elif do == "global-maintenance":
            self.global_maintenance = bool(event.value)
        elif do == "admin-vm-stop":
            target = self._vm_host(event)
            if target is None or target.vm is None:
                self._say("sim", "no VM to act on")
            else:
                self._shutdown(target)
                self._say(target.name, "admin: shutdown requested")
        elif do in ("engine-slow", "engine-ready"):
            self.engine_slow = do == "engine-slow"
        else:
            assert host is not None
            self._host_command(host, event)

    def _host_command(self, host: SimHost, event: Event) -> None:
        do, sim = event.do, self.sim
        if do == "power-off" and host.powered:
            host.stop_renewing(self.t, sim)
            host.powered = host.supervisor_up = host.joined = False
            host.epoch += 1
            host.fsm = host.view = host.last_result = None
            if host.vm is not None:
                host.vm, host.vm_exit = None, None  # gone with the host; the lease stays recorded
                self._say(host.name, "vm lost with the host")
        elif do == "power-on" and not host.powered:
            host.powered = True
            host.stalled = host.hypervisor_hung = False
            host.clock_base = -self.t  # the monotonic clock restarts at boot
            host.network = 1.0
            self._push(self.t + sim.host_boot_time, _SUPERVISOR_START, host, host.epoch)
        elif do == "supervisor-restart" and host.supervisor_up:
            host.epoch += 1
            host.supervisor_up = False
            host.fsm = None
            self._push(self.t + sim.supervisor_restart_time, _SUPERVISOR_START, host, host.epoch)
        elif do in ("hypervisor-hang", "hypervisor-recover"):
            host.hypervisor_hung = do == "hypervisor-hang"
        elif do in ("gateway-loss", "gateway-restore", "network"):
            host.network = {"gateway-loss": 0.0, "gateway-restore": 1.0}.get(do, event.value)
        elif do == "local-maintenance":
            host.local_maintenance = bool(event.value)
        elif do in ("admin-vm-start", "admin-vm-start-unleased"):
            self._admin_start(host, leased=do == "admin-vm-start")
        elif do == "storage-stall" and not host.stalled and host.powered:
            host.stalled = True
            host.stop_renewing(self.t, sim)
            if host.joined and host.frozen_renewal is not None:
                self._push(host.frozen_renewal + sim.recovery_time, _RECOVERY, host, host.frozen_renewal)
        elif do == "storage-resume" and host.stalled:
            self._storage_resume(host)

    def _admin_start(self, host: SimHost, *, leased: bool) -> None:
        """The administrator starts the VM here: through he-ha (lease first) or without it."""
        if host.vm is not None or not host.powered:
            self._say(host.name, "admin: start refused (a VM runs here, or the host is off)")
            return
        if leased:
            if host.stalled or not host.joined or not self.lease.can_acquire(host, self.t, self.sim):
                owner = self.lease.valid_owner()
                self._say(host.name, f"admin: start refused: lease held by {owner.name if owner else '?'}")
                return
            self.lease.take(host)
        self.vm_counter += 1
        host.vm = SimVm(self.vm_counter, self.t + self.sim.vm_start_time + self.sim.vm_boot_time, unleased=not leased)
        host.vm_exit = None
        self._say(host.name, "admin: lease acquired, vm started" if leased else "admin: vm started without the lease")
        self._push(host.vm.up_at, _VM_UP, host, host.vm.instance)
        if host.supervisor_up:
            self._schedule_tick(host, self.t)  # libvirt's lifecycle event

    def _storage_resume(self, host: SimHost) -> None:
        host.stalled = False
        if host.joined:
            host.start_renewing(self.t)
            if host.vm is None and self.lease.valid_owner() is host:
                self.lease.release()  # the release the stall held back
                self._say(host.name, "lease released")
        elif host.supervisor_up:
            self._push(self.t + self.sim.lockspace_join_time, _JOINED, host, host.epoch)
