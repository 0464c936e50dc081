"""The monitor runner and the shared snapshot.

Each monitor is one coroutine on its own interval. Every probe runs under a deadline; its
outcome becomes a ``Reading`` published into the ``ReadingsSnapshot`` that the supervisor hands to
the state machine. A failing or hanging probe produces an error reading for that monitor
only: the others keep running and the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from he_ha.durations import DurationHistogram

log = structlog.get_logger(__name__)

T = TypeVar("T")

LOG_EVERY = 30  # while a probe keeps failing, log every 30th failure (5 min at 10 s)


class MonitorError(Exception):
    """An expected probe failure (target unreachable, command failed, bad output).

    The runner reports it as an error reading with a warning, not a traceback.
    """


def require_positive(owner: str, **values: float) -> None:
    """Reject a non-positive interval/timeout/count with an error naming it."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Reading(Generic[T]):
    """The outcome of one probe.

    ``error is None`` means ``value`` is a fresh, trustworthy measurement. Otherwise
    ``value`` is None and ``error`` says why: a missing value is never read as healthy.
    """

    monitor: str
    value: T | None
    taken_at: float  # time.monotonic() when the probe finished
    duration: float  # seconds the probe took (up to its deadline)
    error: str | None = None
    consecutive_errors: int = 0  # error readings in a row, this one included

    @property
    def ok(self) -> bool:
        return self.error is None

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.taken_at


class ReadingsSnapshot:
    """Latest reading per monitor. Written only by the runner, read by the supervisor.

    Everything happens on one event loop, so no lock is needed; ``readings()`` returns a
    copy so a caller's view does not change under it.
    """

    def __init__(self) -> None:
        self._readings: dict[str, Reading[Any]] = {}
        self._version = 0
        self._changed = asyncio.Event()
        # Running totals per monitor, e.g. for metrics: readings published, error readings,
        # probe durations.
        self.published: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.durations: defaultdict[str, DurationHistogram] = defaultdict(DurationHistogram)

    @property
    def version(self) -> int:
        """Increases by one on every publish."""
        return self._version

    def publish(self, reading: Reading[Any]) -> None:
        self._readings[reading.monitor] = reading
        self._version += 1
        self.published[reading.monitor] += 1
        self.durations[reading.monitor].observe(reading.duration)
        if reading.error is not None:
            self.failed[reading.monitor] += 1
        # Wake every waiter, then re-arm for the next publish.
        self._changed.set()
        self._changed = asyncio.Event()

    def get(self, monitor: str) -> Reading[Any] | None:
        """The latest reading of one monitor, None before its first probe finished."""
        return self._readings.get(monitor)

    def readings(self) -> Mapping[str, Reading[Any]]:
        return dict(self._readings)

    async def wait_for_update(self, after_version: int) -> int:
        """Return the version once it is above ``after_version`` (at once if it already is)."""
        while self._version <= after_version:
            await self._changed.wait()
        return self._version


class Monitor(ABC, Generic[T]):
    """One signal. Subclasses implement ``probe``; the runner schedules and guards it.

    ``interval``: seconds from the start of one probe to the start of the next.
    ``deadline``: the runner abandons a probe after this many seconds (error reading).
    """

    name: str

    def __init__(self, *, interval: float, deadline: float) -> None:
        require_positive(type(self).__name__, interval=interval, deadline=deadline)
        self.interval = interval
        self.deadline = deadline
        self._wake: asyncio.Event | None = None

    @abstractmethod
    async def probe(self) -> T:
        """Take one measurement; raise MonitorError for an expected failure."""

    def poke(self) -> None:
        """Ask for an immediate probe instead of waiting out the interval (e.g. on a
        libvirt lifecycle event). Harmless when the monitor is not running."""
        if self._wake is not None:
            self._wake.set()

    async def aclose(self) -> None:
        """Release what the monitor holds (sessions, connections). Default: nothing."""

    async def run(self, snapshot: ReadingsSnapshot) -> None:
        """Probe forever on the interval; only cancellation ends it."""
        self._wake = asyncio.Event()
        errors = 0
        while True:
            started = time.monotonic()
            self._wake.clear()
            reading = await self._guarded_probe(started, errors)
            errors = reading.consecutive_errors
            snapshot.publish(reading)
            remaining = started + self.interval - time.monotonic()
            if remaining > 0:
                await self._sleep_unless_poked(remaining)

    async def _sleep_unless_poked(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if a poke cut the sleep short."""
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _guarded_probe(self, started: float, errors: int) -> Reading[T]:
        error: str | None = None
        value: T | None = None
        # Log the first failure of a run and every LOG_EVERY-th after it, not every round
        # of a long outage; the readings themselves carry every failure.
        loud = errors % LOG_EVERY == 0
        try:
            value = await asyncio.wait_for(self.probe(), self.deadline)
        except TimeoutError:
            error = f"probe timed out after {self.deadline:g} s"
            if loud:
                log.warning("monitor probe failed", monitor=self.name, error=error, in_a_row=errors + 1)
        except MonitorError as exc:
            error = str(exc)
            if loud:
                log.warning("monitor probe failed", monitor=self.name, error=error, in_a_row=errors + 1)
        except Exception as exc:  # a bug must not kill the monitor or pass as healthy (B3)
            error = f"unexpected {type(exc).__name__}: {exc}"
            if loud:
                log.exception("monitor probe raised", monitor=self.name, in_a_row=errors + 1)
        if error is None and errors:
            log.info("monitor probe recovered", monitor=self.name, after_errors=errors)
        finished = time.monotonic()
        return Reading(
            monitor=self.name,
            value=value,
            taken_at=finished,
            duration=finished - started,
            error=error,
            consecutive_errors=0 if error is None else errors + 1,
        )


class MonitorRunner:
    """Runs a set of monitors concurrently on the current event loop.

    Use as ``async with MonitorRunner(monitors) as runner:``; ``runner.snapshot`` holds
    the readings. Leaving the block cancels every monitor and closes it.
    """

    def __init__(self, monitors: Iterable[Monitor[Any]], snapshot: ReadingsSnapshot | None = None) -> None:
        self.monitors: dict[str, Monitor[Any]] = {}
        for monitor in monitors:
            if monitor.name in self.monitors:
                raise ValueError(f"two monitors named {monitor.name!r}")
            self.monitors[monitor.name] = monitor
        self.snapshot = snapshot if snapshot is not None else ReadingsSnapshot()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self._tasks:
            raise RuntimeError("monitor runner already started")
        for monitor in self.monitors.values():
            task = asyncio.create_task(monitor.run(self.snapshot), name=f"monitor-{monitor.name}")
            task.add_done_callback(self._check_ended)
            self._tasks.append(task)

    def _check_ended(self, task: asyncio.Task[None]) -> None:
        """``run`` only ends by cancellation; anything else is a bug that silenced a
        monitor, so say so loudly (its readings stop, and their age shows it)."""
        if not task.cancelled():
            log.error("monitor stopped", task=task.get_name(), error=repr(task.exception()))

    def poke(self, name: str) -> None:
        try:
            self.monitors[name].poke()
        except KeyError:
            raise KeyError(f"no monitor named {name!r}; have {sorted(self.monitors)}") from None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for monitor in self.monitors.values():
            await monitor.aclose()

    async def __aenter__(self) -> MonitorRunner:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
