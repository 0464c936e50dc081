"""The simulated cluster on a virtual clock: every host runs the daemon's own tick
(he_ha.supervisor.assemble: Observer, fsm.step, ActionExecutor, publish, Ticker) against a
simulated environment (he_ha.sim.hostenv); whiteboard, sanlock, VM and lease are models
(he_ha.sim.model). Everything runs on one asyncio loop whose clock is virtual (vloop.py):
scripted events, the supervisors' ticks and the durations of their calls are its timers, so
a run is fully deterministic. After every change of a VM or the lease, and after every event,
the safety checks run; a violation raises SafetyViolation with the schedule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from he_ha.fsm import (
    AcquireLeaseAndStartVm,
    Action,
    DecisionRecord,
    DestroyVm,
    FsmState,
    MigrateVm,
    Observation,
    ReleaseLease,
    ShutdownVm,
    initial_state,
)
from he_ha.fsm.actions import VM_ACTIONS
from he_ha.fsm.states import StateName
from he_ha.lease import JoinOutcome, LeaseError, wait_deadline
from he_ha.sim.hostenv import MIGRATE_URI, host_env, storage_io
from he_ha.sim.model import SimHost, SimLease, SimVm
from he_ha.sim.safety import SafetyViolation, check_transition, check_world
from he_ha.sim.scenario import Event, Scenario
from he_ha.sim.vloop import VirtualLoop
from he_ha.supervisor.assemble import TickMachinery, TickSettings, assemble
from he_ha.supervisor.observe import Completed
from he_ha.supervisor.settings import RETRY_PAUSE
from he_ha.whiteboard import HostSlot

_MAX_TICKS_AT_ONE_TIME = 50  # a NOWAIT chain longer than this is a bug (a livelock)
STORAGE_TIMEOUT = 5.0  # the daemon's --storage-timeout default


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
    for (t, ok), following in zip(engine_ok, [*engine_ok[1:], None], strict=True):
        if not ok:
            outages.append((t, following[0] if following is not None else None))
    return [(s, e) for s, e in outages if s <= until]


@contextmanager
def _daemon_logs_muted() -> Iterator[None]:
    """The supervisors' structlog lines are not the simulator's log (and would cost time)."""
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


@dataclass
class _Daemon:
    """One host's supervisor process (vloop process ``key``): killed, all its tasks end."""

    key: object
    stopping: asyncio.Event
    machinery: TickMachinery | None = None


class World:
    def __init__(self, scenario: Scenario, *, record_steps: bool = False, seed: int | None = None):
        self.scenario = scenario
        self.sim = scenario.sim
        self.seed = seed
        self.hosts = {spec.id: SimHost(spec) for spec in scenario.hosts}
        self.order = [self.hosts[i] for i in sorted(self.hosts)]
        self.lease = SimLease()
        self.slots: dict[int, HostSlot] = {}
        self.global_maintenance = False
        self.engine_slow = False  # the engine answers but is not ready (engine-slow .. engine-ready)
        self.log: list[str] = []
        self.vm_counter = 0
        self.steps = 0
        self.engine_ok: list[tuple[float, bool]] = [(0.0, False)]
        self.recorded: list[tuple[FsmState, Observation, DecisionRecord]] | None = [] if record_steps else None
        self.loop = VirtualLoop()
        self.loop.set_exception_handler(self._loop_error)
        self._daemons: dict[int, _Daemon] = {}
        self._joins: dict[int, asyncio.Future[JoinOutcome]] = {}
        self._failure: BaseException | None = None
        for event in scenario.events:
            self._at(event.at, self._command, event)
        for host in self.order:
            if host.powered:
                self._at(0.0, self._supervisor_start, host, host.epoch)

    @property
    def t(self) -> float:
        return self.loop.time()

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> SimResult:
        self.run_until(self.scenario.until)
        states = " ".join(f"{h.name}={h.fsm.name.value if h.fsm else '-'}" for h in self.order)
        self._say("sim", f"end: {states}")
        result = self.result()
        self.close()
        return result

    def run_until(self, until: float) -> None:
        with _daemon_logs_muted():
            self.loop.run_until(until)
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """End every supervisor and let their tasks finish cancelling (the loop stays usable
        for inspection; it holds no OS resources)."""
        for host in self.order:
            self._supervisor_gone(host)
            self.loop.kill(("sanlock", host.id))
        self.loop.run_until(self.t)

    def result(self) -> SimResult:
        return SimResult(
            log=self.log,
            engine_ok=self.engine_ok,
            steps=self.steps,
            final_states={h.id: (h.fsm.name.value if h.fsm else None) for h in self.order},
            recorded=self.recorded or [],
        )

    def _at(self, t: float, handler: Callable[..., None], *args: Any) -> None:
        self.loop.call_at(t, self._event, handler, args)

    def _event(self, handler: Callable[..., None], args: tuple[Any, ...]) -> None:
        if self._failure is not None:
            return
        try:
            handler(*args)
            self._after_event()
        except (SafetyViolation, SimError) as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self.loop.stop()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is not None and self._failure is None:
            self._fail(exc)

    def _violation(self, message: str) -> SafetyViolation:
        """Record the violation (the run stops with it) and return it for raising."""
        exc = SafetyViolation(message, self.t, self.scenario, self.log, self.seed)
        self._fail(exc)
        return exc

    def _say(self, who: str, message: str) -> None:
        self.log.append(f"{self.t:8.1f}  {who:<6}  {message}")

    def check(self) -> None:
        """Raise SafetyViolation if an invariant is broken now."""
        problem = check_world(self.order, self.lease)
        if problem:
            raise self._violation(problem)

    def _after_event(self) -> None:
        self.check()
        ok = False
        for host in self.order:
            if host.vm is not None:
                ok = host.vm.healthy(self.t, self.engine_slow)
                break
        if ok is not self.engine_ok[-1][1]:
            self.engine_ok.append((self.t, ok))

    # --- the supervisors -------------------------------------------------------------------------

    def _supervisor_start(self, host: SimHost, epoch: int) -> None:
        if epoch != host.epoch or not host.powered:
            return
        host.supervisor_up = True
        host.supervisor_started = self.t
        host.vm_exit = None  # the engine-health monitor starts afresh
        host.last_rule = ""
        self._say(host.name, "supervisor started")
        daemon = _Daemon(object(), asyncio.Event())
        self._daemons[host.id] = daemon
        task = self.loop.spawn(daemon.key, self._run_daemon(host, daemon.stopping))
        task.add_done_callback(self._task_done)

    async def _run_daemon(self, host: SimHost, stopping: asyncio.Event) -> None:
        """daemon.py's start-up as far as the tick depends on it: join the lockspace (retried
        every RETRY_PAUSE), the rest of start-up (the host's tick phase), then the tick."""
        timing = self.scenario.timing
        env = host_env(self, host, self.loop, STORAGE_TIMEOUT)
        while True:
            try:
                await env.sanlock.join(env.lockspace, host.id, timeout=wait_deadline(int(self.sim.io_timeout)))
                break
            except LeaseError:
                await asyncio.sleep(RETRY_PAUSE)
        await asyncio.sleep(host.spec.tick_phase)
        settings = TickSettings(
            host_id=host.id,
            hostname=host.name,
            conf_up_to_date=True,
            vm_memory_mib=host.spec.vm_memory_mib,
            storage_timeout=STORAGE_TIMEOUT,
            tick_period=timing.loop_delay,
            migrate_uri=MIGRATE_URI,
            io_timeout=int(self.sim.io_timeout),
            join_timeout=wait_deadline(int(self.sim.io_timeout)),
        )
        fsm = initial_state(host.id, timing, self.scenario.score, host.spec.priority)
        machinery = assemble(env, settings, fsm, stopping, on_result=lambda done: self._result(host, done))
        self._daemons[host.id].machinery = machinery
        host.supervisor = machinery.supervisor
        for helper in (machinery.gate.run(), machinery.lease_watch.run()):
            asyncio.ensure_future(helper).add_done_callback(self._task_done)
        await machinery.ticker.run(stopping)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())  # type: ignore[arg-type]

    def _supervisor_gone(self, host: SimHost) -> None:
        """The supervisor process ends (restart, power loss): its tasks die with it."""
        host.supervisor_up = False
        host.supervisor = None
        daemon = self._daemons.pop(host.id, None)
        if daemon is None:
            return
        daemon.stopping.set()
        self.loop.kill(daemon.key)

    def _vm_event(self, host: SimHost, what: str) -> None:
        """libvirt's lifecycle event reaches the host's supervisor (VmWatch → gate → ticker)."""
        daemon = self._daemons.get(host.id)
        if daemon is not None and daemon.machinery is not None:
            daemon.machinery.gate.request("vm-event", what, host.mono(self.t))

    def decided(self, host: SimHost, before: FsmState, obs: Observation, record: DecisionRecord) -> None:
        """A supervisor's step (its decision sink): checked, logged."""
        if self.t == host.last_tick_t:
            host.same_time_ticks += 1
            if host.same_time_ticks > _MAX_TICKS_AT_ONE_TIME:
                error = SimError(f"{host.name} ticked {_MAX_TICKS_AT_ONE_TIME} times at t={self.t}: livelock")
                self._fail(error)
                raise error
        else:
            host.same_time_ticks, host.last_tick_t = 0, self.t
        self.steps += 1
        after = record.to_state
        problem = check_transition(before.name, StateName(after), record.rule)
        if problem:
            raise self._violation(problem)
        if self.recorded is not None:
            self.recorded.append((before, obs, record))
        note = f" ({record.note})" if record.note else ""
        if after != before.name.value:
            self._say(host.name, f"{before.name.value} -> {after} [{record.rule}] score={record.score.total}{note}")
        elif record.rule != host.last_rule:
            self._say(host.name, f"{after} [{record.rule}] score={record.score.total}{note}")
        host.last_rule = record.rule
        raised, now_active = {a.kind for a in before.alerts}, {a.kind for a in record.alerts}
        for alert in record.alerts:
            if alert.kind not in raised:
                self._say(host.name, f"ALERT {alert.kind}: {alert.reason}")
        for kind in sorted(raised - now_active):
            self._say(host.name, f"alert cleared: {kind}")
        for action in record.actions:
            if isinstance(action, ReleaseLease) and host.vm is not None:
                raise self._violation(f"{host.name} asked to release the lease while its VM runs ({action.reason})")
            if isinstance(action, VM_ACTIONS):
                self._say(host.name, f"action {_describe(action)}")
        self._after_event()

    def _result(self, host: SimHost, done: Completed) -> None:
        result = done.result
        self._say(
            host.name, f"result #{result.seq} {result.outcome.value}" + (f" ({result.reason})" if result.reason else "")
        )

    # --- sanlock and the VM (called by the hosts' environments) -----------------------------------

    def join(self, host: SimHost, timeout: float) -> asyncio.Future[JoinOutcome]:
        """add_lockspace: one join at a time per host; it takes ``lockspace_join_time``."""
        running = self._joins.get(host.id)
        if running is None or running.done():
            # sanlock's add_lockspace, not the supervisor's: it outlives a supervisor restart
            running = self.loop.spawn(("sanlock", host.id), self._join(host, timeout))
            self._joins[host.id] = running
        return running

    async def _join(self, host: SimHost, timeout: float) -> JoinOutcome:
        if host.joined:
            return JoinOutcome.ALREADY_JOINED
        try:
            await storage_io(host, timeout, "add_lockspace")
        except TimeoutError as exc:
            raise LeaseError(str(exc)) from None
        await asyncio.sleep(self.sim.lockspace_join_time)
        if host.stalled or not host.powered:
            raise LeaseError("add_lockspace: storage stalled while joining")
        host.generation += 1
        host.joined = True
        host.start_renewing(self.t)
        self._say(host.name, f"lockspace joined (generation {host.generation})")
        return JoinOutcome.JOINED

    def launch(self, host: SimHost) -> tuple[str, bool] | None:
        """libvirt launches the VM and its sanlock plugin takes the lease first; None when it
        runs, else (why not, whether the lease was the reason)."""
        if host.stalled or not host.joined:
            return "storage unavailable", False
        if not self.lease.can_acquire(host, self.t, self.sim):
            owner = self.lease.valid_owner()
            return f"lease held by {owner.name if owner else '?'}", True
        self.lease.take(host)
        self.vm_counter += 1
        host.vm = SimVm(self.vm_counter, self.t + self.sim.vm_boot_time)
        host.vm_exit = None
        self._say(host.name, "lease acquired, vm started")
        self._at(host.vm.up_at, self._vm_up, host, host.vm.instance)
        self._after_event()
        return None

    def release_lease(self, host: SimHost) -> None:
        """The supervisor's holder gives the lease up (invariant 2 is checked here)."""
        if host.vm is not None:
            raise self._violation(f"{host.name} released the lease while its VM runs")
        if self.lease.valid_owner() is host and not host.stalled:
            self.lease.release()
            self._say(host.name, "lease released")
        self._after_event()

    def request_shutdown(self, host: SimHost) -> None:
        vm = host.vm
        if vm is None or vm.hung:
            return  # a hung guest ignores the request
        vm.shutting_down = True
        self._at(self.t + self.sim.vm_shutdown_time, self._vm_exit, host, (vm.instance, "shutdown"))
        self._after_event()

    def migrate(self, host: SimHost, target_id: int) -> str | None:
        """Live migration; None when the VM (and its lease) moved, else why not."""
        target = self.hosts.get(target_id)
        vm = host.vm
        if vm is None or host.stalled:
            return "no migratable VM here"
        if target is None or not target.powered or not target.joined or target.stalled:
            return f"host{target_id} cannot receive the VM"
        if target.vm is not None:
            return f"{target.name} already runs a VM"
        if target.spec.refuses_migration:
            return f"{target.name} refuses incoming migrations (no lock manager for the VM lease)"
        host.vm, host.vm_exit = None, "migrated"
        target.vm, target.vm_exit = vm, None
        vm.shutting_down = False
        self.lease.take(target)
        self._say(host.name, f"vm migrated to {target.name}, lease moved")
        self._after_event()
        self._vm_event(target, "migrated in")
        return None

    def vm_gone(self, host: SimHost, how: str) -> None:
        host.vm = None
        host.vm_exit = how
        released = self.lease.valid_owner() is host and not host.stalled
        if released:
            self.lease.release()
        self._say(host.name, f"vm {how}" + (", lease released" if released else ""))
        self._after_event()

    # --- world events ---------------------------------------------------------------------------------

    def _vm_up(self, host: SimHost, instance: int) -> None:
        if host.vm is not None and host.vm.instance == instance:
            self._say(host.name, "vm booted" + (" (engine hung)" if host.vm.hung else ""))

    def _vm_exit(self, host: SimHost, payload: tuple[int, str]) -> None:
        instance, how = payload
        if host.vm is not None and host.vm.instance == instance:
            self.vm_gone(host, how)
            self._vm_event(host, how)

    def _recovery(self, host: SimHost, stalled_since: float) -> None:
        """sanlock recovery on a host whose renewals failed for 8 * io_timeout."""
        if not (host.stalled and host.powered and host.joined and host.frozen_renewal == stalled_since):
            return
        host.joined = False
        self._say(host.name, "sanlock recovery: lockspace lost" + (", kills the VM" if host.vm else ""))
        if host.vm is not None:
            self.vm_gone(host, "killed")
            self._vm_event(host, "killed")

    # --- scripted events ----------------------------------------------------------------------------------

    def _vm_host(self, event: Event) -> SimHost | None:
        if event.host is not None:
            host = self.hosts[event.host]
            return host if host.vm is not None else None
        return next((h for h in self.order if h.vm is not None), None)

    def _command(self, event: Event) -> None:
        host = self.hosts[event.host] if event.host is not None else None
        self._say(host.name if host else "sim", f"event {event.describe()}")
        do = event.do
        if do in ("vm-crash", "engine-hang", "engine-recover"):
            target = self._vm_host(event)
            if target is None or target.vm is None:
                self._say("sim", "no VM to act on")
            elif do == "vm-crash":
                self.vm_gone(target, "crashed")
                self._vm_event(target, "crashed")
            else:
                target.vm.hung = do == "engine-hang"
        elif do == "engine-migrate":
            assert host is not None
            source = self._vm_host(Event(event.at, do))
            if source is None or source is host:
                self._say("sim", "no VM to migrate")
            else:
                problem = self.migrate(source, host.id)
                self._say(
                    source.name, "engine-driven migration " + ("ok" if problem is None else f"failed ({problem})")
                )
                self._vm_event(source, "migrated out")
        elif do == "global-maintenance":
            self.global_maintenance = bool(event.value)
        elif do == "admin-vm-stop":
            target = self._vm_host(event)
            if target is None or target.vm is None:
                self._say("sim", "no VM to act on")
            else:
                self.request_shutdown(target)
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
            self._supervisor_gone(host)
            host.powered = host.joined = False
            host.epoch += 1
            host.io_waiters = []  # calls of the dead supervisor: they never return
            self.loop.kill(("sanlock", host.id))
            if host.vm is not None:
                host.vm, host.vm_exit = None, None  # gone with the host; the lease stays recorded
                self._say(host.name, "vm lost with the host")
        elif do == "power-on" and not host.powered:
            host.powered = True
            host.stalled = host.hypervisor_hung = False
            host.clock_base = -self.t  # the monotonic clock restarts at boot
            host.network = 1.0
            self._at(self.t + sim.host_boot_time, self._supervisor_start, host, host.epoch)
        elif do == "supervisor-restart" and host.supervisor_up:
            host.epoch += 1
            self._supervisor_gone(host)
            self._at(self.t + sim.supervisor_restart_time, self._supervisor_start, host, host.epoch)
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
                self._at(host.frozen_renewal + sim.recovery_time, self._recovery, host, host.frozen_renewal)
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
        self._at(host.vm.up_at, self._vm_up, host, host.vm.instance)
        self._vm_event(host, "started")

    def _storage_resume(self, host: SimHost) -> None:
        host.stalled = False
        self._wake_io(host)
        if host.joined:
            host.start_renewing(self.t)
            if host.vm is None and self.lease.valid_owner() is host:
                self.lease.release()  # sanlock writes the release the stall held back
                self._say(host.name, "lease released")

    def _wake_io(self, host: SimHost) -> None:
        """Storage calls waiting on this host's stall return (or, powered off, never will)."""
        waiters, host.io_waiters = host.io_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
