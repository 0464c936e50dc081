"""Lifecycle events of the engine VM: classification, and a watch that hands them over.

libvirt's lifecycle callback runs in the libvirt event thread; it only filters on the
domain and posts the raw (event, detail) to the asyncio loop. There a single consumer task
classifies it, re-reads the domain state (events can coalesce or be lost, so the state is
the truth, the event the reason) and calls the subscribers with a VmUpdate. The same
happens after every reconnect (callbacks re-registered first) and, without a libvirt call,
when the connection is lost: then the state is UNKNOWN ("hypervisor unreachable"), never
"VM down".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import libvirt
import structlog

from he_ha.vm.connection import HealthStatus, HypervisorHealth, LibvirtConnection
from he_ha.vm.domain import VmController
from he_ha.vm.errors import HypervisorError, LibvirtCallError
from he_ha.vm.eventthread import post_to_loop
from he_ha.vm.state import VmState

log = structlog.get_logger(__name__)


class EventKind(StrEnum):
    CRASH = "crash"  # STOPPED/CRASHED, STOPPED/FAILED (QEMU died), CRASHED/*
    GUEST_SHUTDOWN = "guest_shutdown"  # STOPPED/SHUTDOWN: the guest powered off cleanly
    DESTROYED = "destroyed"  # STOPPED/DESTROYED: forced off from the host
    MIGRATED_AWAY = "migrated_away"  # STOPPED/MIGRATED: now runs elsewhere, not a failure
    STOPPED = "stopped"  # STOPPED for any other reason (saved, from snapshot, unknown)
    STARTED = "started"  # STARTED/* (booted, incoming migration, restored, woken up)
    PAUSED = "paused"  # SUSPENDED/* except IOERROR, PMSUSPENDED/*
    STORAGE_ERROR_PAUSE = "storage_error_pause"  # SUSPENDED/IOERROR: storage lost
    RESUMED = "resumed"  # RESUMED/*
    OTHER = "other"  # DEFINED, UNDEFINED, SHUTDOWN/* (a stop is under way; STOPPED follows)


_STOPPED = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: EventKind.GUEST_SHUTDOWN,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: EventKind.DESTROYED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: EventKind.CRASH,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: EventKind.CRASH,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: EventKind.MIGRATED_AWAY,
}
_BY_EVENT = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: EventKind.STARTED,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: EventKind.RESUMED,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: EventKind.PAUSED,
    libvirt.VIR_DOMAIN_EVENT_CRASHED: EventKind.CRASH,
}


def classify(event: int, detail: int) -> EventKind:
    """Map a lifecycle (event, detail) pair to what it means for the engine VM."""
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        return _STOPPED.get(detail, EventKind.STOPPED)
    if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
        if detail == libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR:
            return EventKind.STORAGE_ERROR_PAUSE
        return EventKind.PAUSED
    return _BY_EVENT.get(event, EventKind.OTHER)


@dataclass(frozen=True)
class LifecycleEvent:
    kind: EventKind
    event: int  # raw VIR_DOMAIN_EVENT_* and its detail, for logs and decision records
    detail: int
    received: float  # monotonic time the event reached the loop


class UpdateCause(StrEnum):
    INITIAL = "initial"  # first state read after VmWatch.start()
    EVENT = "event"  # a lifecycle event of the engine VM
    RECONNECTED = "reconnected"  # the connection was reopened; events may have been lost
    DISCONNECTED = "disconnected"  # the connection is gone: state unknown, not "down"


@dataclass(frozen=True)
class VmUpdate:
    cause: UpdateCause
    state: VmState  # re-read after the event; UNKNOWN when libvirt could not be asked
    health: HypervisorHealth
    event: LifecycleEvent | None = None


Subscriber = Callable[[VmUpdate], None]


class VmWatch:
    """Delivers VmUpdates for one domain to subscribers, on the loop, in order.

    One VmWatch per connection (libvirt takes one lifecycle callback per connection from
    this binding); every interested party subscribes to it.
    """

    def __init__(self, controller: VmController) -> None:
        self._controller = controller
        self._connection: LibvirtConnection = controller.connection
        self._subscribers: list[Subscriber] = []
        self._queue: asyncio.Queue[tuple[UpdateCause, LifecycleEvent | None]] = asyncio.Queue()
        self._callback_id: int | None = None
        self._callback_conn: libvirt.virConnect | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._remove_listener: Callable[[], None] | None = None
        self.latest: VmUpdate | None = None

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """``subscriber(update)`` is called on the loop for every update; returns an unsubscriber.

        It must not block: a supervisor sets its "tick now" event there.
        """
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def start(self) -> None:
        """Register for events now (if connected) and after every reconnect; emit INITIAL."""
        if self._consumer is not None:
            raise RuntimeError("VmWatch.start() called twice")
        self._connection.claim_lifecycle_events(self)
        self._consumer = asyncio.create_task(self._consume(), name="vm-events")
        self._connection.add_open_hook(self._on_open)
        self._remove_listener = self._connection.add_health_listener(self._on_health)
        if self._connection.connected:
            try:
                await self._register()
            except (HypervisorError, LibvirtCallError) as exc:
                log.warning("could not register for VM events yet", error=str(exc))
        self._queue.put_nowait((UpdateCause.INITIAL, None))

    async def stop(self) -> None:
        """Deregister the libvirt callback and stop delivering; before connection.close()."""
        self._connection.remove_open_hook(self._on_open)
        if self._remove_listener is not None:
            self._remove_listener()
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
        await self._deregister()
        self._connection.release_lifecycle_events(self)

    # --- libvirt side ----------------------------------------------------------------------

    async def _on_open(self, conn: libvirt.virConnect) -> None:
        # The old connection's registration died with it; register on the new one.
        self._callback_id = self._callback_conn = None
        await self._register()
        self._queue.put_nowait((UpdateCause.RECONNECTED, None))

    async def _register(self) -> None:
        loop = asyncio.get_running_loop()
        domain = self._controller.domain

        def on_lifecycle(
            _conn: libvirt.virConnect, dom: libvirt.virDomain, event: int, detail: int, _opaque: object
        ) -> None:
            # In the libvirt event thread: name() and UUIDString() are local, no RPC.
            if domain.matches(dom.name(), dom.UUIDString()):
                post_to_loop(loop, self._on_event, event, detail)

        def register(conn: libvirt.virConnect) -> tuple[libvirt.virConnect, int]:
            return conn, conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)

        self._callback_conn, self._callback_id = await self._connection.call("domainEventRegisterAny", register)

    async def _deregister(self) -> None:
        conn, callback_id = self._callback_conn, self._callback_id
        self._callback_conn = self._callback_id = None
        if conn is None or callback_id is None:
            return
        try:
            await self._connection.call(
                "domainEventDeregisterAny", lambda _c: conn.domainEventDeregisterAny(callback_id)
            )
        except (HypervisorError, LibvirtCallError) as exc:
            log.debug("could not deregister VM event callback", error=str(exc))

    # --- loop side -------------------------------------------------------------------------

    def _on_event(self, event: int, detail: int) -> None:
        kind = classify(event, detail)
        log.info("engine VM lifecycle event", kind=kind.value, libvirt_event=event, libvirt_detail=detail)
        self._queue.put_nowait((UpdateCause.EVENT, LifecycleEvent(kind, event, detail, time.monotonic())))

    def _on_health(self, health: HypervisorHealth) -> None:
        if health.status is HealthStatus.UNREACHABLE:
            self._queue.put_nowait((UpdateCause.DISCONNECTED, None))

    async def _consume(self) -> None:
        while True:
            cause, event = await self._queue.get()
            if cause is UpdateCause.DISCONNECTED:
                state = VmState.unknown(f"hypervisor unreachable: {self._connection.health.detail}")
            else:
                state = await self._read_state()
            update = VmUpdate(cause, state, self._connection.health, event)
            self.latest = update
            for subscriber in list(self._subscribers):
                try:
                    subscriber(update)
                except Exception:  # one faulty subscriber must not stop delivery to the rest
                    log.exception("VM update subscriber failed", subscriber=repr(subscriber))

    async def _read_state(self) -> VmState:
        try:
            return await self._controller.state()
        except (HypervisorError, LibvirtCallError) as exc:
            return VmState.unknown(str(exc))
