"""The demo's running cluster and what its scenarios ask of it: who runs the engine VM, wait
for states and restarts (narrating progress), record measured times."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from he_ha.devcluster.cluster import Cluster, Host
from he_ha.devcluster.demo_narrate import Narrator, host_table, state_of_host
from he_ha.devcluster.demo_shim import hosted_engine
from he_ha.devcluster.vm_watch import Run, VmWatcher

PROGRESS_EVERY = 15.0  # seconds between "still waiting" lines during long waits
STEADY_SECONDS = 2.0
BRIEF_LINES = ("!!", "--==", "Score", "Engine status", "Local maintenance", "he-ha FSM state")


def first_seen(run: Run | None) -> float | None:
    """When the watcher first saw the VM of ``run`` (None: no run)."""
    return None if run is None else run.first


def last_decision(host: Host) -> str:
    """One line: the host's newest decision from its decision log (state change, rule, note)."""
    decisions = host.decisions()
    if not decisions:
        return f"  {host.name}: no decision yet"
    last = decisions[-1]["record"]
    return f"  {host.name}: {last['from_state']} -> {last['to_state']} ({last['rule']}): {last['note']}"


class ScenarioFailed(Exception):
    """A recovery did not happen within its bound; the message says what was expected."""


@dataclass(frozen=True)
class Measure:
    scenario: str
    what: str
    seconds: float | None  # None: it did not happen within the bound
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.seconds is not None


@dataclass
class Stage:
    cluster: Cluster
    watcher: VmWatcher
    out: Narrator
    host_dead: int  # sanlock's host-dead time for the cluster's io_timeout
    measures: list[Measure] = field(default_factory=list)

    def host(self, name: str) -> Host:
        return next(h for h in self.cluster.hosts if h.name == name)

    def others(self, host: Host) -> list[Host]:
        return [h for h in self.cluster.hosts if h is not host]

    def engine_host(self) -> Host:
        running = self.watcher.running_on()
        if len(running) != 1:
            raise ScenarioFailed(f"expected the engine VM on exactly one host, it runs on {running or 'none'}")
        return self.host(running[0])

    # --- measuring -------------------------------------------------------------------------

    def record(self, scenario: str, what: str, start: float, end: float | None, note: str = "") -> Measure:
        measure = Measure(scenario, what, None if end is None else end - start, note)
        self.measures.append(measure)
        if measure.seconds is None:
            self.out.say(f"FAILED: {what}: did not happen ({note})")
            self.out.block(["what each host last decided:"] + [last_decision(h) for h in self.cluster.hosts])
        else:
            self.out.say(f">> {what}: {measure.seconds:.1f} s" + (f" ({note})" if note else ""), end)
        return measure

    def wait_for_start(
        self,
        after: float,
        timeout: float,
        hosts: Sequence[Host] | None = None,
        waiting_for: str = "the engine VM to start",
    ) -> Run | None:
        """The VM's first start at/after ``after`` on ``hosts``, with a progress line every
        PROGRESS_EVERY seconds (host states) so a long wait is visibly alive."""
        names = None if hosts is None else [h.name for h in hosts]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            run = self.watcher.wait_for_start(after, min(left, PROGRESS_EVERY), names)
            if run is not None or left <= PROGRESS_EVERY:
                return run
            states = ", ".join(f"{h.name} {state_of_host(h) or 'down'}" for h in self.cluster.hosts)
            self.out.say(f"... waiting for {waiting_for} ({time.monotonic() - after:.0f} s so far): {states}")

    def wait_for_states(
        self, hosts: Sequence[Host], wanted: Callable[[str | None], bool], timeout: float
    ) -> float | None:
        """When every one of ``hosts`` reports a state for which ``wanted`` holds (monotonic
        time of the poll that saw it), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(wanted(state_of_host(h)) for h in hosts):
                return time.monotonic()
            time.sleep(0.1)
        return None

    def wait_steady(self, timeout: float = 90.0) -> Host:
        """Exactly one host runs the VM, stably, and reports EngineUp."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = deadline - time.monotonic()
            if self.watcher.wait_for_stable(1, STEADY_SECONDS, left):
                engine = self.engine_host()
                if self.wait_for_states([engine], lambda s: s == "EngineUp", min(deadline - time.monotonic(), 30)):
                    return engine
        raise ScenarioFailed(
            f"no single healthy engine VM within {timeout:.0f} s (running on: {self.watcher.running_on() or 'none'})"
        )

    # --- showing ---------------------------------------------------------------------------

    def show_table(self) -> None:
        self.out.block(host_table(self.cluster.hosts, self.watcher))

    def show_vm_status(self, host: Host, *, brief: bool = False) -> None:
        """``hosted-engine --vm-status`` run as ``host`` (not with --quiet); ``brief``: only
        the banners, host headers, scores, engine status and FSM states."""
        if self.out.quiet:
            return
        run = hosted_engine(host, "--vm-status")
        self.out.say(f"{run.command}   (run as {host.name}, exit {run.code})" + (", abridged:" if brief else ":"))
        lines = [line for line in run.stdout.rstrip().splitlines() if line.strip()]
        if brief:
            lines = [line for line in lines if line.lstrip().startswith(BRIEF_LINES)]
        self.out.block(lines or ["(no output)"])
        if run.stderr.strip():
            self.out.block([f"stderr: {line}" for line in run.stderr.strip().splitlines()])
