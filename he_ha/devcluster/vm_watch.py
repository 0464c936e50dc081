"""Watch every host's hypervisor for the engine VM, continuously, from outside the supervisors.

``VmWatcher`` samples each host's private libvirtd about 10 times a second, one thread per
host (a hung hypervisor then delays only its own samples), and keeps, per host, the runs of
samples in which the VM was active (running or paused: a paused copy still owns its disk).
Two copies at once is proven when two hosts' runs overlap in time; every such overlap is
recorded in ``violations``. The runs also give the demo, the end-to-end tests and the
benches their recovery times (``wait_for_start``) and drive the health page that follows
the VM (``engine_problem``, see ``cluster.HealthPage``).

Why runs and not "two hosts seen running in one sweep": samples of different hosts are taken
at different instants. A run [first, last] (sample times, each the moment the answer arrived)
means the VM was seen active at both ends, and is taken as active throughout. A hand-over
(old copy gone, lease released, acquired, new copy launched) leaves a gap between the old
run's last sample and the new run's first, so it is never mistaken for two copies; a real
overlap of more than one sampling period is always caught. A copy destroyed and launched again
on the same host between two samples (a local restart takes ~0.1 s) is told apart by its
libvirt domain id, which every launch renews: a new id ends the run and begins another. A sample whose answer took longer
than ``MAX_SAMPLE_SECONDS`` (hypervisor slow or frozen) cannot be placed in time and is ignored.
A host whose hypervisor does not answer at all (crashed: connection refused) counts as not
running the VM: in this harness the test driver's VMs die with their libvirtd.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import libvirt
import structlog

from he_ha.devcluster.cluster import ENGINE_UUID, Host

log = structlog.get_logger(__name__)

INTERVAL = 0.1
MAX_SAMPLE_SECONDS = 0.25


@dataclass
class Run:
    """The VM seen active on one host from ``first`` to ``last`` (monotonic seconds)."""

    host: str
    first: float
    last: float
    open: bool = True  # the newest sample of that host still sees it


@dataclass(frozen=True)
class Violation:
    """Two hosts' hypervisors ran the VM at the same time, at least from ``since`` to ``until``."""

    hosts: tuple[str, str]
    since: float
    until: float

    def describe(self, origin: float = 0.0) -> str:
        return (
            f"two copies of the engine VM: {self.hosts[0]} and {self.hosts[1]} both ran it "
            f"from +{self.since - origin:.2f} s to +{self.until - origin:.2f} s"
        )


@dataclass
class _HostTrack:
    host: Host
    runs: list[Run] = field(default_factory=list)
    last_sample: float | None = None
    running: bool = False
    domain_id: int | None = None  # libvirt's id of the copy the open run follows
    error: str | None = None  # why the last sample failed (hypervisor down)


class VmWatcher:
    """Use as a context manager around the part of a run to watch. Only hosts with a
    private libvirtd can be watched (an in-process test driver is not reachable)."""

    def __init__(
        self,
        hosts: Sequence[Host],
        interval: float = INTERVAL,
        on_change: Callable[[str, bool, float], None] | None = None,
    ) -> None:
        """``on_change(host name, running, at)`` is called (from a watcher thread) whenever
        a host's VM starts or stops being seen."""
        for host in hosts:
            if host.libvirtd is None:
                raise ValueError(f"{host.name} has no private libvirtd: its VM cannot be watched from outside")
        self.interval = interval
        self._on_change = on_change
        self._tracks = {host.name: _HostTrack(host) for host in hosts}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._sample_loop, args=(t,), name=f"vm-watch-{name}", daemon=True)
            for name, t in self._tracks.items()
        ]
        self.violations: list[Violation] = []
        self.samples = 0

    def __enter__(self) -> VmWatcher:
        # libvirt's default handler prints every error to stderr: 10 lines a second for a
        # crashed host. Errors are still raised as exceptions; only the printing goes.
        libvirt.registerErrorHandler(_quiet, None)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)  # a thread stuck in a frozen libvirtd is a daemon thread

    # --- sampling (watcher threads) -----------------------------------------------------------

    def _sample_loop(self, track: _HostTrack) -> None:
        assert track.host.libvirtd is not None
        uri = track.host.libvirtd.default_uri
        conn: libvirt.virConnect | None = None
        try:
            while not self._stop.is_set():
                asked = time.monotonic()
                try:
                    if conn is None:
                        conn = libvirt.open(uri)
                    ids = [
                        d.ID()
                        for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                        if d.UUIDString() == ENGINE_UUID
                    ]
                    domain_id, error = (ids[0] if ids else None), None
                except libvirt.libvirtError as exc:  # hypervisor down (crashed host) or restarting
                    domain_id, error = None, str(exc)
                    _close(conn)
                    conn = None
                answered = time.monotonic()
                if answered - asked <= MAX_SAMPLE_SECONDS:
                    self._record(track, domain_id, answered, error)
                self._stop.wait(max(self.interval - (answered - asked), 0.0))
        finally:
            _close(conn)

    def _record(self, track: _HostTrack, domain_id: int | None, at: float, error: str | None) -> None:
        """One sample of ``track``'s host: ``domain_id`` of the active engine VM, None if none."""
        active = domain_id is not None
        with self._changed:
            self.samples += 1
            current = track.runs[-1] if track.runs and track.runs[-1].open else None
            relaunched = current is not None and active and domain_id != track.domain_id
            changed = active != track.running or relaunched
            track.last_sample, track.running, track.domain_id, track.error = at, active, domain_id, error
            if relaunched:
                assert current is not None
                current.open = False
                current = None
            if active:
                if current is None:
                    current = Run(track.host.name, at, at)
                    track.runs.append(current)
                current.last = at
                self._check_overlap(current)
            elif current is not None:
                current.open = False
            if changed:
                self._changed.notify_all()
        if changed and self._on_change is not None:
            self._on_change(track.host.name, active, at)

    def _check_overlap(self, run: Run) -> None:
        for name, other in self._tracks.items():
            if name == run.host:
                continue
            for theirs in reversed(other.runs):
                if theirs.last < run.first:
                    break  # older runs ended even earlier
                since, until = max(run.first, theirs.first), min(run.last, theirs.last)
                if since <= until:
                    first, second = sorted((run.host, name))
                    self._add_violation(Violation((first, second), since, until))

    def _add_violation(self, violation: Violation) -> None:
        for index, known in enumerate(self.violations):
            if known.hosts == violation.hosts and known.since <= violation.until and violation.since <= known.until:
                merged = Violation(known.hosts, min(known.since, violation.since), max(known.until, violation.until))
                self.violations[index] = merged
                return
        log.error("two copies of the engine VM", hosts=violation.hosts)
        self.violations.append(violation)

    # --- what callers ask ---------------------------------------------------------------------

    def running_on(self) -> list[str]:
        """Hosts whose newest sample sees the VM active (a hung hypervisor: its last answer)."""
        with self._lock:
            return [name for name, track in self._tracks.items() if track.running]

    def engine_problem(self) -> str | None:
        """The health page's gate: None while exactly one host runs the VM, else why not."""
        running = self.running_on()
        if len(running) == 1:
            return None
        if not running:
            return "engine VM not running on any host"
        return f"engine VM running on {len(running)} hosts: {', '.join(running)}"

    def runs(self) -> list[Run]:
        with self._lock:
            return sorted(
                (Run(r.host, r.first, r.last, r.open) for t in self._tracks.values() for r in t.runs),
                key=lambda r: r.first,
            )

    def wait_for_start(self, after: float, timeout: float, hosts: Sequence[str] | None = None) -> Run | None:
        """The first run beginning at or after ``after`` (monotonic) on one of ``hosts`` (any
        host if None), waiting up to ``timeout`` seconds for it; None if none began."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                started = [
                    r
                    for t in self._tracks.values()
                    for r in t.runs
                    if r.first >= after and (hosts is None or r.host in hosts)
                ]
                if started:
                    first = min(started, key=lambda r: r.first)
                    return Run(first.host, first.first, first.last, first.open)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def wait_for_stable(self, count: int, seconds: float, timeout: float) -> bool:
        """Wait until exactly ``count`` hosts run the VM and that has held for ``seconds``."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            if len(self.running_on()) == count:
                since = since if since is not None else time.monotonic()
                if time.monotonic() - since >= seconds:
                    return True
            else:
                since = None
            time.sleep(self.interval)
        return False

    def fresh(self, within: float = 1.0) -> bool:
        """Every host has a sample younger than ``within`` seconds."""
        now = time.monotonic()
        with self._lock:
            return all(t.last_sample is not None and now - t.last_sample <= within for t in self._tracks.values())


def _quiet(_context: object, _error: object) -> None:
    """libvirt error handler that prints nothing (the error is raised all the same)."""


def _close(conn: libvirt.virConnect | None) -> None:
    if conn is not None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
