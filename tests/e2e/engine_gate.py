"""The health page's gate for end-to-end tests: it follows the VM and can hang its engine.

``he_ha.devcluster.cluster.HealthPage`` asks its gate on every request. ``EngineGate``
answers as ``VmWatcher.engine_problem`` does (the engine answers while exactly one host runs
the VM), and ``hang()`` makes the engine of the VM running now hang: its requests get no
answer while that run of the VM lasts (the supervisors' health probe gives up after its
page timeout); once that VM is gone the late answer is a 503. A hang belongs to one run of
the VM: a restarted VM, on any host, is a fresh engine and answers again.
"""

from __future__ import annotations

import threading

from he_ha.devcluster.vm_watch import Run, VmWatcher

HUNG_POLL = 0.1


def _key(run: Run) -> tuple[str, float]:
    return run.host, run.first


class EngineGate:
    def __init__(self, watcher: VmWatcher) -> None:
        self._watcher = watcher
        self._hung: set[tuple[str, float]] = set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self.hung_requests = 0

    def current(self) -> Run | None:
        """The run of the VM going on now, if exactly one host runs it."""
        running = self._watcher.running_on()
        if len(running) != 1:
            return None
        runs = [r for r in self._watcher.runs() if r.host == running[0] and r.open]
        return runs[-1] if runs else None

    def hang(self) -> Run:
        """Hang the engine of the VM running now; returns that run."""
        run = self.current()
        assert run is not None, f"hang: the VM does not run on exactly one host: {self._watcher.running_on()}"
        self._hung.add(_key(run))
        return run

    def close(self) -> None:
        """Release the requests still held (before the page is shut down)."""
        self._closing.set()

    def __call__(self) -> str | None:
        run = self.current()
        if run is None:
            return self._watcher.engine_problem() or "engine VM changing hosts"
        if _key(run) not in self._hung:
            return None
        with self._lock:
            self.hung_requests += 1
        while not self._closing.wait(HUNG_POLL):
            now = self.current()
            if now is None or _key(now) != _key(run):
                break
        return f"engine on {run.host} hung"
