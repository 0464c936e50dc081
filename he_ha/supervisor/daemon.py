"""The supervisor daemon: start-up, the running tasks, and shutdown (docs/supervisor.md).

Start-up: configuration → the host lock (runfiles.py; waits for a hosted-engine VM command
acting without the daemon, refuses to run beside another daemon) → VM definition (vm.conf regenerated from its sources, OVF_STORE
first) → lease worker → lease layout → lockspace join → whiteboard → lease holder (adopting a
keeper left by a previous run) → libvirt → monitors → the host facts for the engine XML →
notifier → VM watch → ticker (its first tick publishes; then systemd hears READY) → admin
socket → broker socket (the original broker's XML-RPC interface, he_ha/broker_socket).
Transient failures (storage, sanlock, libvirt) are retried until SIGTERM; a bad
configuration exits at once with its ConfigError. A missing or bad vm.conf is not one:
without a usable VM definition the daemon supervises and refuses only the start
(execute.SpecSource).

Shutdown on SIGTERM/SIGINT: no further FSM step; VM actions under way are abandoned (their
lease stays with its holder); AgentStopped is published; everything is stopped; the
lockspace is left only if no VM lease is held here (leaving would make sanlock kill the
holder and free the lease while the VM runs). The storage domain's lockspace ``<SD>`` that
the QEMU holder joins for the engine's disk lease is never left (lease_holder.py). The VM
itself is never touched. A second signal, or ``stop_deadline`` seconds, forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
import uvloop

from he_ha.admin.metrics_listener import MetricsListener, MetricsListenError
from he_ha.admin.server import AdminServer, AdminServerError
from he_ha.broker_socket import BrokerServer, BrokerServerError
from he_ha.config import ConfigError
from he_ha.fsm import initial_state
from he_ha.lease import LeaseClient, LeaseConfigError, LeaseError, LeaseLayout, LockspaceBusy, wait_deadline
from he_ha.monitors import MemoryMonitor, MonitorRunner
from he_ha.notify import Notifier, NotifyConfigError, NotifySettings, TemplateError
from he_ha.notify.template import DEFAULT_TEMPLATE_PATH
from he_ha.sdnotify import SystemdNotifier
from he_ha.supervisor.assemble import TickMachinery, TickSettings, assemble
from he_ha.supervisor.controller import ControllerParts, SupervisorController
from he_ha.supervisor.decisions import DecisionLog
from he_ha.supervisor.domain_observer import ConnectionDomainObserver
from he_ha.supervisor.engine_launch import EngineXmlPreparer
from he_ha.supervisor.env import SYSTEM_CLOCK, HaConfFile, HostEnv
from he_ha.supervisor.execute import SpecSource
from he_ha.supervisor.health_gate import FreshHealthGate
from he_ha.supervisor.host_parts import build_holder, engine_xml_preparer
from he_ha.supervisor.host_plan import HostPlan, load_plan
from he_ha.supervisor.lease_holder import LeaseHolder, QemuHolder
from he_ha.supervisor.lockspace_reset import LockspaceReset
from he_ha.supervisor.monitor_set import MonitorSet, build_monitors
from he_ha.supervisor.observe import Observer
from he_ha.supervisor.peer_watch import PeerWatch
from he_ha.supervisor.runfiles import HostLockBusy, host_lock_holder, try_host_lock
from he_ha.supervisor.settings import RETRY_PAUSE, SupervisorSettings
from he_ha.supervisor.ticker import Ticker
from he_ha.vm import LibvirtConnection, VmController, VmUpdate, VmWatch
from he_ha.whiteboard import Whiteboard

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_FORCED = 3
DAEMON_LOCK_HOLDER = "he-ha run"  # how the daemon signs the host lock (runfiles.py)
HOST_LOCK_WAIT = 600.0  # for a VM command acting without the daemon: a lockspace join, an acquire, a launch
HOST_LOCK_POLL = 0.5

T = TypeVar("T")


class Stopped(Exception):
    """SIGTERM arrived during start-up."""


def run_daemon(settings: SupervisorSettings) -> int:
    return uvloop.run(_main(settings))


async def _main(settings: SupervisorSettings) -> int:
    stopping = asyncio.Event()
    _install_signals(stopping, settings.stop_deadline)
    try:
        plan = await asyncio.to_thread(load_plan, settings)
    except ConfigError as exc:
        log.error("configuration error", error=str(exc))
        return EXIT_CONFIG
    log.info(
        "starting",
        host_id=plan.host_id,
        hostname=plan.hostname,
        priority=plan.priority,
        vm=str(plan.identity),
        holder=settings.holder_kind,
        libvirt=settings.libvirt_uri,
        sanlock_run_dir=str(settings.sanlock_run_dir or "/run/sanlock"),
    )
    for role, volume in (
        ("metadata", plan.volumes.metadata),
        ("lockspace", plan.volumes.lockspace),
        ("conf", plan.volumes.conf),
    ):
        if volume is not None:
            log.info("shared volume", role=role, path=str(volume.path), rule=volume.rule)
    try:
        async with contextlib.AsyncExitStack() as stack:
            return await Daemon(settings, plan, stopping, stack).run()
    except (ConfigError, LeaseConfigError, NotifyConfigError, TemplateError) as exc:
        log.error("configuration error", error=str(exc))
        return EXIT_CONFIG
    except Stopped:
        log.info("stopped during start-up")
        return EXIT_OK
    except HostLockBusy as exc:  # another supervisor serves this run directory, or a VM command never ended
        log.error("cannot take the host lock", error=str(exc))
        return EXIT_FAILURE
    except AdminServerError as exc:  # e.g. another supervisor already serves this run directory
        log.error("cannot serve the admin socket", error=str(exc))
        return EXIT_FAILURE
    except BrokerServerError as exc:  # e.g. the original ovirt-ha-broker still serves it
        log.error("cannot serve the broker socket", error=str(exc))
        return EXIT_FAILURE
    except MetricsListenError as exc:  # the address is in use or not this host's
        log.error("cannot serve metrics over TCP", error=str(exc))
        return EXIT_FAILURE


def _install_signals(stopping: asyncio.Event, deadline: float) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            log.error("second stop signal: exiting at once", signal=signal.Signals(signum).name)
            os._exit(EXIT_FORCED)
        log.info("stop requested", signal=signal.Signals(signum).name)
        stopping.set()
        loop.call_later(deadline, _force_exit, deadline)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def _force_exit(deadline: float) -> None:
    log.error("shutdown did not finish in time: exiting", deadline=deadline)
    os._exit(EXIT_FORCED)


@dataclass(frozen=True)
class Hypervisor:
    connection: LibvirtConnection
    vm: VmController
    monitors: MonitorSet
    runner: MonitorRunner


@dataclass(frozen=True)
class DaemonParts:
    """What start-up built (``Daemon._build``), for the tasks, the controller and shutdown."""

    specs: SpecSource
    client: LeaseClient
    layout: LeaseLayout
    whiteboard: Whiteboard
    holder: LeaseHolder
    hv: Hypervisor
    notifier: Notifier
    decisions: DecisionLog
    machinery: TickMachinery
    watch: VmWatch


def _set_memory(observer: Observer, monitors: MonitorSet, mib: int) -> None:
    """The VM's memory size became known (or changed) with its definition: the free-memory
    score rule and the memory monitor use it from now on."""
    observer.vm_memory_mib = mib
    for monitor in monitors.monitors:
        if isinstance(monitor, MemoryMonitor):
            monitor.engine_mem_mib = mib


class Daemon:
    def __init__(
        self, settings: SupervisorSettings, plan: HostPlan, stopping: asyncio.Event, stack: contextlib.AsyncExitStack
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.stopping = stopping
        self.stack = stack
        self.systemd = SystemdNotifier()
        self._ticker: Ticker | None = None  # once built: the lease holder's loss callback wakes it

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]], errors: tuple[type[Exception], ...]) -> T:
        """Run a start-up step until it works; transient failures are logged and retried.
        SIGTERM interrupts it (a join may otherwise wait minutes for a dead host's id)."""
        attempt = 0
        while True:
            try:
                return await self._unless_stopped(call())
            except LeaseConfigError:
                raise
            except errors as exc:
                attempt += 1
                log.error(f"{what} failed; retrying", attempt=attempt, error=str(exc))
                self.systemd.status(f"start-up: {what} failed: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), RETRY_PAUSE)

    async def _take_host_lock(self) -> None:
        """Held for the daemon's life (runfiles.py). A hosted-engine VM command acting without
        the daemon is waited for (it may be joining the lockspace); another daemon is not."""
        me = f"{DAEMON_LOCK_HOLDER} {os.getpid()}"
        deadline = time.monotonic() + HOST_LOCK_WAIT
        said = ""
        while True:
            try:
                fd = await asyncio.to_thread(try_host_lock, self.settings.run_dir, me)
            except HostLockBusy as exc:
                if host_lock_holder(self.settings.run_dir).startswith(DAEMON_LOCK_HOLDER):
                    raise
                if time.monotonic() > deadline:
                    raise HostLockBusy(f"{exc} for more than {HOST_LOCK_WAIT:g} s") from None
                if str(exc) != said:
                    said = str(exc)
                    log.warning(
                        "a hosted-engine command acts on the VM without the daemon: waiting for it", holder=said
                    )
                    self.systemd.status(f"start-up: waiting: {said}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), HOST_LOCK_POLL)
                if self.stopping.is_set():
                    raise Stopped() from None
                continue
            self.stack.callback(os.close, fd)
            return

    async def _unless_stopped(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise Stopped()
        return task.result()

    async def run(self) -> int:
        """The composition root: the parts in start-up order (docs/supervisor.md), their tasks,
        the sockets, then serve until SIGTERM or a failed task, and stop."""
        parts = await self._build()
        tasks = self._start_tasks(parts)
        controller = self._controller(parts)
        await self._start_servers(controller)
        _trim_heap()
        code = await self._serve(tasks)
        await self._stop(parts, tasks, controller)
        return code

    # --- start-up, in order ----------------------------------------------------------------

    async def _build(self) -> DaemonParts:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        await self._take_host_lock()
        specs = await self._definition()  # first: vm.conf is regenerated before anything waits on storage
        client, layout = await self._join()
        whiteboard = self._whiteboard()
        holder = await self._lease_holder(client, layout)
        hv = await self._hypervisor()
        engine_xml = await self._engine_xml(hv, holder, specs)
        notifier = await self._notifier()
        decisions = DecisionLog(self.settings.decision_log, self.settings.decision_ring)
        self.stack.callback(decisions.close)
        env = self._host_env(specs, client, layout, whiteboard, holder, hv, notifier, decisions)
        machinery = self._machinery(env, engine_xml)
        specs.on_memory(lambda mib: _set_memory(machinery.observer, hv.monitors, mib))
        watch = await self._vm_watch(hv, machinery.gate)
        return DaemonParts(specs, client, layout, whiteboard, holder, hv, notifier, decisions, machinery, watch)

    async def _definition(self) -> SpecSource:
        """The VM definition, read from its sources (vm.conf written) before storage is waited on."""
        plan = self.plan
        specs = SpecSource(plan.definitions, plan.identity, plan.first, timeout=self.settings.definition_timeout)
        self.stack.callback(specs.close)
        await specs.refresh("start-up")
        return specs

    def _whiteboard(self) -> Whiteboard:
        s, plan = self.settings, self.plan
        whiteboard = Whiteboard(
            plan.metadata_path, plan.host_id, read_timeout=s.storage_timeout, write_timeout=s.storage_timeout
        )
        self.stack.callback(whiteboard.close)
        return whiteboard

    async def _lease_holder(self, client: LeaseClient, layout: LeaseLayout) -> LeaseHolder:
        """The lease holder, adopting a keeper left by a previous run."""
        plan = self.plan
        holder = await build_holder(
            self.settings,
            host_id=plan.host_id,
            identity=plan.identity,
            client=client,
            lease=layout.vm_lease,
            on_lost=self._lease_lost,
        )
        await self._retry("adopting the lease holder", holder.recover, (LeaseError,))
        return holder

    def _lease_lost(self, reason: str) -> None:
        # The holder is made before the ticker: a loss before that is seen by the first tick.
        if self._ticker is not None:
            self._ticker.wake("lease-lost", reason)

    async def _engine_xml(self, hv: Hypervisor, holder: LeaseHolder, specs: SpecSource) -> EngineXmlPreparer:
        s = self.settings
        engine_xml = engine_xml_preparer(s, self.plan, hv.connection, holder)  # tells the holder each start's lease
        self.stack.callback(engine_xml.close)
        await engine_xml.read_host_facts(s.host_root)  # once: the sysinfo values of the engine XML
        if isinstance(holder, QemuHolder):
            await _expect_engine_lease(holder, specs, engine_xml)
        return engine_xml

    async def _notifier(self) -> Notifier:
        s, plan = self.settings, self.plan
        notifier = Notifier(
            plan.config.broker,
            NotifySettings(
                template_path=s.notification_template or DEFAULT_TEMPLATE_PATH,
                state_file=s.notify_state_file,
                hostname=plan.hostname,
            ),
        )
        await notifier.start()
        self.stack.push_async_callback(notifier.stop, 2.0)
        return notifier

    def _host_env(
        self,
        specs: SpecSource,
        client: LeaseClient,
        layout: LeaseLayout,
        whiteboard: Whiteboard,
        holder: LeaseHolder,
        hv: Hypervisor,
        notifier: Notifier,
        decisions: DecisionLog,
    ) -> HostEnv:
        """The real environment of the tick (env.py)."""
        return HostEnv(
            clock=SYSTEM_CLOCK,
            whiteboard=whiteboard,
            sanlock=client,
            lockspace=layout.lockspace,
            vm_lease=layout.vm_lease,
            holder=holder,
            vm=hv.vm,
            readings=hv.runner.snapshot,
            health=hv.monitors.engine_health,
            ha_conf=HaConfFile(self.settings.paths.ha_conf, self.settings.storage_timeout),
            definitions=specs,
            notifier=notifier,
            decisions=decisions,
            systemd=self.systemd,
        )

    def _machinery(self, env: HostEnv, engine_xml: EngineXmlPreparer) -> TickMachinery:
        """The tick machinery (assemble.py), built, not started."""
        s, plan = self.settings, self.plan
        settings = TickSettings(
            host_id=plan.host_id,
            hostname=plan.hostname,
            conf_up_to_date=plan.config.engine.conf_is_up_to_date,
            vm_memory_mib=plan.vm_memory_mib,
            storage_timeout=s.storage_timeout,
            tick_period=s.tick_period,
            migrate_uri=s.migrate_uri,
            io_timeout=s.io_timeout,
            join_timeout=wait_deadline(s.io_timeout),
        )
        fsm = initial_state(plan.host_id, s.timing, plan.config.score, plan.priority)
        machinery = assemble(env, settings, fsm, self.stopping, engine_xml=engine_xml)
        self._ticker = machinery.ticker
        self.stack.push_async_callback(machinery.observer.close)
        return machinery

    async def _vm_watch(self, hv: Hypervisor, gate: FreshHealthGate) -> VmWatch:
        """libvirt's lifecycle events of the engine VM poke engine health and, once it has a
        fresh reading, wake the ticker."""
        health = hv.monitors.engine_health

        def on_vm_update(update: VmUpdate) -> None:
            event = update.event
            if event is not None:
                health.poke(event.event, event.detail)
                gate.request("vm-event", event.kind.value, event.received)
            else:
                health.poke()
                gate.request("vm-event", update.cause.value, update.health.since)

        watch = VmWatch(hv.vm)
        watch.subscribe(on_vm_update)
        await watch.start()
        self.stack.push_async_callback(watch.stop)
        return watch

    def _start_tasks(self, parts: DaemonParts) -> list[asyncio.Task[None]]:
        """The running tasks; the ticker first (``_stop`` lets it finish its tick)."""
        machinery = parts.machinery
        ticker = machinery.ticker
        tasks = [
            asyncio.create_task(ticker.run(self.stopping), name="ticker"),
            asyncio.create_task(machinery.gate.run(), name="health-gate"),
            asyncio.create_task(parts.specs.run(self.stopping), name="vm-definition"),
            asyncio.create_task(machinery.lease_watch.run(), name="lease-watch"),
        ]
        s = self.settings
        if s.peer_poll > 0:
            wake = ticker.wake
            peer_watch = PeerWatch(machinery.reader, self.plan.host_id, s.peer_poll, lambda w: wake("peer-change", w))
            machinery.supervisor.peer_watch = peer_watch
            tasks.append(asyncio.create_task(peer_watch.run(), name="peer-watch"))
        return tasks

    def _controller(self, parts: DaemonParts) -> SupervisorController:
        """The admin API's and the broker socket's view: status from the tick's snapshots."""
        s, plan, machinery = self.settings, self.plan, parts.machinery
        reset = LockspaceReset(
            parts.client,
            parts.layout.lockspace,
            plan.host_id,
            plan.metadata_path,
            parts.layout.vm_lease,
            query_timeout=s.storage_timeout,
        )
        return SupervisorController(
            ControllerParts(
                feed=machinery.feed,
                hostname=plan.hostname,
                specs=parts.specs,
                whiteboard=parts.whiteboard,
                decisions=parts.decisions,
                executor=machinery.executor,
                reader=machinery.reader,
                holder=parts.holder,
                vm=parts.hv.vm,
                watch=parts.watch,
                connection=parts.hv.connection,
                snapshot=parts.hv.runner.snapshot,
                notifier=parts.notifier,
                ticker=machinery.ticker,
                ha_conf=s.paths.ha_conf,
                file_timeout=s.storage_timeout,
                lockspace_reset=reset,
            )
        )

    async def _join(self) -> tuple[LeaseClient, LeaseLayout]:
        """The lease worker, the lease layout read from the volume, our host id joined."""
        s, plan = self.settings, self.plan
        engine = plan.config.engine
        client = await LeaseClient.start(run_dir=s.sanlock_run_dir, stderr=s.run_dir / "lease-worker.log")
        self.stack.push_async_callback(client.close)
        layout: LeaseLayout = await self._retry(
            "reading the lease volume",
            lambda: client.detect_layout(
                plan.lockspace_path,
                resource=plan.resource,
                io_timeout=s.io_timeout,
                lease_path=engine.vm_lease_path,
                lease_offset=engine.vm_lease_offset,
            ),
            (LeaseError,),
        )
        self.systemd.status("joining the lockspace")
        outcome = await self._retry(
            "joining the lockspace",
            lambda: client.join(layout.lockspace, plan.host_id, timeout=wait_deadline(s.io_timeout)),
            (LeaseError,),
        )
        log.info("lockspace joined", outcome=outcome.value, host_id=plan.host_id)
        return client, layout

    async def _hypervisor(self) -> Hypervisor:
        """The one libvirt connection, the VM controller and the monitors running on it."""
        s, plan = self.settings, self.plan
        connection = LibvirtConnection(s.libvirt_uri)
        await connection.start()  # never raises: an unreachable libvirtd is retried in the background
        self.stack.push_async_callback(connection.close)
        observer = ConnectionDomainObserver(connection, plan.identity)
        try:
            monitors = build_monitors(
                plan.config.engine,
                observer=observer,
                metadata_path=plan.metadata_path,
                engine_mem_mib=plan.vm_memory_mib,
                interval=s.monitor_interval,
                health_url=s.health_url,
                health_grace=s.health_grace,
            )
        except ValueError as exc:  # a key or setting the monitors cannot work with
            raise ConfigError(s.paths.hosted_engine_conf, str(exc)) from None
        runner = MonitorRunner(monitors.monitors)
        runner.start()
        self.stack.push_async_callback(runner.stop)
        return Hypervisor(connection, VmController(connection, plan.identity), monitors, runner)

    async def _start_servers(self, controller: SupervisorController) -> None:
        """The admin socket, the broker socket, the metrics listener: the last step of start-up."""
        await self._start_admin(controller)
        await self._start_broker(controller)
        await self._start_metrics_listener(controller)

    async def _start_admin(self, controller: SupervisorController) -> None:
        server = AdminServer(controller, self.settings.admin_socket_path, group=self.settings.admin_group)
        await server.start()
        self.stack.push_async_callback(server.stop)
        self.stack.push_async_callback(controller.close)
        log.info("admin socket listening", path=str(self.settings.admin_socket_path))

    async def _start_broker(self, controller: SupervisorController) -> None:
        path = self.settings.broker_socket
        if path is None:
            log.info("broker socket not served (--broker-socket is empty)")
            return
        server = BrokerServer(controller, path)
        await server.start()
        self.stack.push_async_callback(server.stop)

    async def _start_metrics_listener(self, controller: SupervisorController) -> None:
        if self.settings.metrics_listen is None:
            return
        listener = MetricsListener(controller.metrics, *self.settings.metrics_listen)
        await listener.start()
        self.stack.push_async_callback(listener.stop)

    async def _serve(self, tasks: list[asyncio.Task[None]]) -> int:
        """Until SIGTERM (0) or until a task fails (1: systemd restarts us; the VM stays)."""
        stop_wait = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({*tasks, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        for task in done:
            if task is not stop_wait and not task.cancelled() and task.exception() is not None:
                log.error(
                    "supervisor task failed; stopping",
                    task=task.get_name(),
                    error=repr(task.exception()),
                    exc_info=task.exception(),
                )
                self.stopping.set()
                return EXIT_FAILURE
        return EXIT_OK

    async def _stop(
        self, parts: DaemonParts, tasks: list[asyncio.Task[None]], controller: SupervisorController
    ) -> None:
        self.systemd.stopping("stopping: publishing the stopped flag")
        ticker_task = tasks[0]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ticker_task), 2 * self.settings.storage_timeout + 1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await parts.machinery.executor.stop()
        await controller.close()
        await parts.machinery.supervisor.publish_stopped()
        holder, client, layout = parts.holder, parts.client, parts.layout
        holder.detach()  # the keeper (if any) lives on with the VM
        if holder.is_held():
            log.info("VM lease held here: staying in the lockspace (leaving would free the lease)")
            return
        try:
            await client.leave(layout.lockspace, self.plan.host_id, timeout=self.settings.storage_timeout * 2)
        except LockspaceBusy:
            log.info("a lease is still held in the lockspace: staying in it")
        except LeaseError as exc:
            log.warning("could not leave the lockspace", error=str(exc))


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system, once, when start-up is done: what the
    imports, the configuration and the first XML parses allocated and freed stays mapped
    otherwise, since malloc only returns the top of its heap. Idle RSS 0.8 MiB lower over
    the bench's run (issue 16 item 3); 0.3 ms. Not glibc (no malloc_trim): nothing to do."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    malloc_trim(0)


async def _expect_engine_lease(holder: QemuHolder, specs: SpecSource, engine_xml: EngineXmlPreparer) -> None:
    """Start-up: tell the QEMU holder the engine lease of the definition in use, so that a VM
    already running here under that lease alone (started by VDSM) is adopted, not destroyed
    (lease_holder.py). Without a definition, or one that cannot be resolved now, it learns
    the lease at the next start; until then such a VM is treated as before."""
    definition = specs.in_use()
    spec = None if definition is None else definition.spec
    if spec is None:
        log.info("no domain XML at start-up: no engine lease to adopt a running VM by")
        return
    try:
        launch = await engine_xml.resolve(spec)
    except Exception as exc:  # never fatal: the lease is learnt again at the next start
        log.warning(
            "engine XML not resolved at start-up: no engine lease to adopt a running VM by",
            error=str(exc),
            kind=type(exc).__name__,
        )
        return
    lease = launch.engine_lease
    holder.expect_engine_lease(lease)
    if lease is not None:
        log.info(
            "a VM running here under the engine lease counts as held here",
            lease=f"{lease.lockspace}:{lease.key}",
            path=str(lease.path),
            offset=lease.offset,
        )
        holder.join_engine_lockspace()  # in the background: a migration target must be in <SD>
