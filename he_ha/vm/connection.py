"""One libvirt connection for the whole process, kept open across libvirtd restarts.

Every blocking libvirt call goes through :meth:`LibvirtConnection.call`, which runs it in a
dedicated bounded executor with a deadline. The connection is watched three ways: libvirt's
close callback (remote connections: socket EOF, keepalive expiry), errors from calls that
mean the transport died, and a periodic ``isAlive()`` probe. When it dies the health turns
UNREACHABLE ("hypervisor unreachable", never "VM down") and a background task reopens it
with exponential backoff, then re-runs the open hooks (event registration, state re-read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import libvirt
import structlog

from he_ha.vm.deadlines import Deadlines
from he_ha.vm.errors import HypervisorError, HypervisorUnreachable, LibvirtCallError, VmError
from he_ha.vm.eventthread import ensure_event_thread, post_to_loop
from he_ha.vm.executor import LibvirtExecutor

log = structlog.get_logger(__name__)

T = TypeVar("T")

OpenHook = Callable[[libvirt.virConnect], Awaitable[None]]


class HealthStatus(StrEnum):
    CONNECTING = "connecting"  # start() has not finished its first attempt
    CONNECTED = "connected"
    HUNG = "hung"  # connected, but a call is stuck in libvirt past its deadline
    UNREACHABLE = "unreachable"  # lost or never opened; reconnecting in the background
    CLOSED = "closed"


@dataclass(frozen=True)
class HypervisorHealth:
    status: HealthStatus
    detail: str
    since: float  # monotonic time of the last change of status
    failed_attempts: int = 0  # reconnect attempts that failed since the connection was lost

    @property
    def usable(self) -> bool:
        return self.status is HealthStatus.CONNECTED


HealthListener = Callable[[HypervisorHealth], None]


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 15.0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum) or self.factor < 1:
            raise ValueError(f"invalid backoff {self!r}: need 0 < initial <= maximum and factor >= 1")

    def delay(self, failed_attempts: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, failed_attempts - 1))


_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "connection error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "libvirtd closed the connection",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "keepalive timed out",
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed by client",
}


def _looks_like_transport_error(exc: libvirt.libvirtError) -> bool:
    code, domain = exc.get_error_code(), exc.get_error_domain()
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN):
        return True
    # "client socket is closed", "Cannot recv data: Connection reset by peer", ...
    return domain == libvirt.VIR_FROM_RPC and code in (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_ERR_SYSTEM_ERROR)


def means_connection_lost(conn: libvirt.virConnect, exc: libvirt.libvirtError) -> bool:
    """True when a call failed because OUR transport to libvirtd is gone (in a worker thread).

    The error alone is not enough: a peer-to-peer migration to an unreachable destination
    fails with the same RPC errors ("Failed to connect socket ...") while our own
    connection is fine. ``isAlive()`` looks at the local socket state only (no RPC).
    """
    if not _looks_like_transport_error(exc):
        return False
    try:
        return not conn.isAlive()
    except libvirt.libvirtError:
        return True


class _TransportLost(Exception):
    """Raised in the worker thread, turned into HypervisorUnreachable on the loop."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def retry_lost_errors(fn: Callable[[], T], attempts: int = 3) -> T:
    """Run a libvirt call again when it failed but its error lost its details.

    libvirt keeps the last error per thread and the binding reads it only after the call
    returned; a garbage collection in between that frees a libvirt object (virDomainFree
    and virConnectClose reset the thread's error) leaves a libvirtError without a code,
    which would turn e.g. "no such domain" into an unexplained failure. The quiet error
    handler (eventthread.py) makes this rare; this is the safety net for what remains.
    Only for calls whose failure had no effect.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() is not None or attempt == attempts:
                raise
            log.debug("libvirt error lost its details; calling again", attempt=attempt, message=str(exc))
    raise AssertionError("unreachable")


def as_call_error(operation: str, exc: libvirt.libvirtError) -> LibvirtCallError:
    return LibvirtCallError(
        operation, exc.get_error_code() or 0, exc.get_error_domain() or 0, exc.get_error_message() or str(exc)
    )


def _close_quietly(conn: libvirt.virConnect) -> None:
    """Close a connection we are giving up on (in a worker thread)."""
    for step in (conn.unregisterCloseCallback, conn.close):
        try:
            step()
        except libvirt.libvirtError as exc:  # a dead or half-set-up connection fails to close cleanly
            log.debug("closing a libvirt connection", step=step.__name__, error=str(exc))


class LibvirtConnection:
    def __init__(
        self,
        uri: str,
        *,
        deadlines: Deadlines | None = None,
        backoff: Backoff | None = None,
        probe_interval: float = 5.0,
        keepalive: tuple[int, int] = (5, 3),
        max_threads: int = 4,
    ) -> None:
        if not uri:
            raise ValueError("libvirt URI must not be empty")
        if probe_interval <= 0:
            raise ValueError(f"probe_interval must be > 0, got {probe_interval!r}")
        self.uri = uri
        self.deadlines = deadlines or Deadlines()
        self._backoff = backoff or Backoff()
        self._probe_interval = probe_interval
        self._keepalive = keepalive
        self._executor = LibvirtExecutor(max_threads=max_threads)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: libvirt.virConnect | None = None
        self._generation = 0  # bumps on every open, so stale close callbacks are ignored
        self._status = HealthStatus.CONNECTING
        self._detail = "not started"
        self._since = time.monotonic()
        self._failed_attempts = 0
        self._open_hooks: list[OpenHook] = []
        self._listeners: list[HealthListener] = []
        self._reconnect_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False
        self._up = asyncio.Event()  # set while a connection is usable
        self._lifecycle_owner: object | None = None

    # --- observers -------------------------------------------------------------------------

    @property
    def health(self) -> HypervisorHealth:
        if self._status is HealthStatus.CONNECTED:
            stuck = self._executor.stuck_calls()
            if stuck:
                worst = max(stuck, key=lambda c: c.age)
                detail = f"call {worst.operation!r} stuck in libvirt for {worst.age:.1f} s"
                return HypervisorHealth(HealthStatus.HUNG, detail, self._since)
        return HypervisorHealth(self._status, self._detail, self._since, self._failed_attempts)

    def add_open_hook(self, hook: OpenHook) -> None:
        """Run ``hook(conn)`` after every successful (re)open, before listeners hear of it.

        A hook that raises a VmError makes the open count as failed (retried with backoff).
        """
        self._open_hooks.append(hook)

    def remove_open_hook(self, hook: OpenHook) -> None:
        self._open_hooks.remove(hook)

    def add_health_listener(self, listener: HealthListener) -> Callable[[], None]:
        """Call ``listener(health)`` on the loop whenever the status changes; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def claim_lifecycle_events(self, owner: object) -> None:
        """Reserve the connection's lifecycle-event registration for ``owner`` (a VmWatch).

        libvirt refuses a second lifecycle callback on one connection from this binding
        ("event callback already tracked"), so a second watch must subscribe to the first.
        """
        if self._lifecycle_owner is not None and self._lifecycle_owner is not owner:
            raise RuntimeError(
                f"{self.uri}: lifecycle events already taken by {self._lifecycle_owner!r}; subscribe to it instead"
            )
        self._lifecycle_owner = owner

    def release_lifecycle_events(self, owner: object) -> None:
        if self._lifecycle_owner is owner:
            self._lifecycle_owner = None

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the connection; on failure keep retrying in the background (never raises
        for an unreachable libvirtd: watch ``health``)."""
        if self._loop is not None:
            raise RuntimeError("LibvirtConnection.start() called twice")
        ensure_event_thread()  # before the first open, or the connection gets no events
        self._loop = asyncio.get_running_loop()
        try:
            await self._open_once()
        except VmError as exc:
            log.warning("libvirt connection failed; retrying in the background", uri=self.uri, error=str(exc))
            self._failed_attempts = 1
            self._set_status(HealthStatus.UNREACHABLE, str(exc))
            self._start_reconnect()
        self._probe_task = asyncio.create_task(self._probe_loop(), name="libvirt-probe")

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the connection is usable; HypervisorUnreachable after ``timeout``."""
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise HypervisorUnreachable("wait_connected", self._detail) from None

    async def close(self) -> None:
        """Close the connection. Stop VmWatch objects first so their callbacks are removed."""
        self._closing = True
        tasks = [t for t in (self._reconnect_task, self._probe_task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        old, self._conn = self._conn, None
        self._up.clear()
        if old is not None:
            await self._dispose(old)
        self._set_status(HealthStatus.CLOSED, "closed")
        self._executor.shutdown()

    # --- calls -----------------------------------------------------------------------------

    async def call(
        self,
        operation: str,
        fn: Callable[[libvirt.virConnect], T],
        deadline: float | None = None,
        *,
        allow_while_stuck: bool = False,
        retry: bool = True,
    ) -> T:
        """Run ``fn(conn)`` off the loop within ``deadline`` (default: ``deadlines.query``).

        ``retry``: run ``fn`` again (within the same deadline) if it failed with an error
        whose details were lost (see retry_lost_errors); pass False when a failed ``fn``
        may have had an effect that must not be repeated (a migration).
        Raises HypervisorUnreachable (no connection, or it died during the call),
        HypervisorTimeout, HypervisorBusy, or LibvirtCallError for any other libvirt error.
        """
        conn, generation = self._conn, self._generation
        if conn is None:
            raise HypervisorUnreachable(operation, self._detail)

        def run() -> T:
            try:
                return retry_lost_errors(lambda: fn(conn)) if retry else fn(conn)
            except libvirt.libvirtError as exc:
                if means_connection_lost(conn, exc):
                    raise _TransportLost(exc.get_error_message() or str(exc)) from None
                raise

        try:
            return await self._executor.run(
                operation, run, deadline or self.deadlines.query, allow_while_stuck=allow_while_stuck
            )
        except _TransportLost as lost:
            self._connection_lost(generation, f"{operation}: {lost.message}")
            raise HypervisorUnreachable(operation, lost.message) from None
        except libvirt.libvirtError as exc:
            raise as_call_error(operation, exc) from None

    # --- internals -------------------------------------------------------------------------

    async def _open_once(self) -> None:
        generation = self._generation + 1
        loop = self._loop
        assert loop is not None

        def on_close(_conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
            detail = _CLOSE_REASONS.get(reason, f"closed (reason {reason})")
            post_to_loop(loop, self._connection_lost, generation, detail)

        def open_connection() -> libvirt.virConnect:
            conn = libvirt.open(self.uri)
            try:
                conn.registerCloseCallback(on_close, None)
                self._enable_keepalive(conn)
            except libvirt.libvirtError:
                _close_quietly(conn)
                raise
            return conn

        try:
            conn = await self._executor.run("open", open_connection, self.deadlines.open)
        except libvirt.libvirtError as exc:
            raise as_call_error("open", exc) from None
        self._conn, self._generation = conn, generation
        try:
            for hook in list(self._open_hooks):
                await hook(conn)
        except VmError as exc:
            self._conn = None
            self._spawn(self._dispose(conn))
            raise VmError(f"connection opened but an open hook failed: {exc}") from exc
        self._failed_attempts = 0
        self._up.set()
        self._set_status(HealthStatus.CONNECTED, f"connected to {self.uri}")
        log.info("libvirt connected", uri=self.uri, generation=generation)

    def _connection_lost(self, generation: int, detail: str) -> None:
        if generation != self._generation or self._conn is None or self._closing:
            return  # a stale report about an older connection
        old, self._conn = self._conn, None
        self._up.clear()
        log.warning("libvirt connection lost", uri=self.uri, detail=detail)
        self._set_status(HealthStatus.UNREACHABLE, detail)
        self._spawn(self._dispose(old))
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect_loop(), name="libvirt-reconnect")

    async def _reconnect_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._backoff.delay(max(1, self._failed_attempts)))
            try:
                await self._open_once()
                return
            except VmError as exc:
                self._failed_attempts += 1
                log.info("libvirt reconnect failed", uri=self.uri, attempt=self._failed_attempts, error=str(exc))
                self._set_status(HealthStatus.UNREACHABLE, str(exc))

    async def _probe_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._probe_interval)
            if self._conn is None:
                continue
            generation = self._generation
            try:
                alive = await self.call("isAlive", lambda c: c.isAlive())
            except HypervisorError as exc:
                log.debug("libvirt probe did not answer", error=str(exc))
                continue
            except LibvirtCallError as exc:
                log.warning("libvirt probe failed", error=str(exc))
                continue
            if not alive:
                self._connection_lost(generation, "isAlive() reports the connection dead")

    def _enable_keepalive(self, conn: libvirt.virConnect) -> None:
        try:
            retry_lost_errors(lambda: conn.setKeepAlive(*self._keepalive))
        except libvirt.libvirtError as exc:
            # In-process drivers (test:///, qemu:///embed) have no keepalive and need none.
            if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise

    async def _dispose(self, conn: libvirt.virConnect) -> None:
        try:
            await self._executor.run(
                "close", lambda: _close_quietly(conn), self.deadlines.close, allow_while_stuck=True
            )
        except HypervisorError as exc:
            log.warning("could not close old libvirt connection; dropping it", error=str(exc))

    def _set_status(self, status: HealthStatus, detail: str) -> None:
        """Record the status; listeners hear only of changes (not of every failed retry)."""
        changed = status is not self._status
        self._status, self._detail = status, detail
        if not changed:
            return
        self._since = time.monotonic()
        health = self.health
        for listener in list(self._listeners):
            listener(health)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
