"""What the demo prints: timestamped lines, each host's state changes, the host table.

The main thread and two background threads (the decision tail and the VM watcher's change
callback) print, so every line goes through one lock and is flushed at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli.admin_client import AdminError, DaemonUnreachable
from he_ha.devcluster.cluster import Host
from he_ha.devcluster.vm_watch import VmWatcher

NOTE_WIDTH = 100


class Narrator:
    """``say``: always printed; ``detail``: only without --quiet. Times are seconds since
    ``origin`` (monotonic)."""

    def __init__(self, quiet: bool, origin: float | None = None) -> None:
        self.quiet = quiet
        self.origin = time.monotonic() if origin is None else origin
        self._lock = threading.Lock()

    def at(self, moment: float | None = None) -> str:
        return f"[{(time.monotonic() if moment is None else moment) - self.origin:6.1f}s]"

    def say(self, text: str, moment: float | None = None) -> None:
        self._print(f"{self.at(moment)} {text}")

    def detail(self, text: str, moment: float | None = None) -> None:
        if not self.quiet:
            self.say(text, moment)

    def heading(self, text: str) -> None:
        self._print(f"\n== {text}")

    def block(self, lines: Sequence[str], *, always: bool = True) -> None:
        if always or not self.quiet:
            self._print("\n".join(f"    {line}" for line in lines))

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, flush=True)


class DecisionTail:
    """A thread following every host's decision log and narrating its state changes
    (``from_state`` != ``to_state``) with the rule and the FSM's note."""

    def __init__(self, hosts: Sequence[Host], narrator: Narrator, period: float = 0.1) -> None:
        self._files = {host.name: host.decision_log for host in hosts}
        self._offsets = dict.fromkeys(self._files, 0)
        self._narrator = narrator
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="decision-tail", daemon=True)

    def __enter__(self) -> DecisionTail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            for name, path in self._files.items():
                for entry in self._new_entries(name, path):
                    self._narrate(name, entry)

    def _new_entries(self, name: str, path: Path) -> list[dict[str, Any]]:
        try:
            with path.open("rb") as log:
                log.seek(self._offsets[name])
                chunk = log.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        self._offsets[name] += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def _narrate(self, name: str, entry: dict[str, Any]) -> None:
        record = entry["record"]
        if record["from_state"] == record["to_state"]:
            return
        note = str(record.get("note") or "")
        note = note if len(note) <= NOTE_WIDTH else note[: NOTE_WIDTH - 3] + "..."
        self._narrator.detail(
            f"{name}: {record['from_state']} -> {record['to_state']} ({record['rule']})"
            + (f": {note}" if note else ""),
            entry["meta"]["started"],
        )  # the tick's own time


def status_of(host: Host) -> dict[str, Any] | None:
    """The host supervisor's ``/v1/status`` (None: it does not answer)."""
    try:
        status: dict[str, Any] = host.admin.get("/v1/status")
    except (DaemonUnreachable, AdminError):
        return None
    return status


def own_view(status: dict[str, Any]) -> dict[str, Any] | None:
    """The reporting host's own slot in a status (None before its first tick)."""
    return next((h for h in status["hosts"] if h["local"]), None)


def state_of_host(host: Host) -> str | None:
    status = status_of(host)
    view = None if status is None else own_view(status)
    return None if view is None else view["state"]


def host_table(hosts: Sequence[Host], watcher: VmWatcher) -> list[str]:
    """One line per host: state, score and maintenance from its supervisor, the VM from its
    hypervisor."""
    running = set(watcher.running_on())
    lines = [f"{'host':<7} {'state':<26} {'score':>5}  {'maint.':<7} engine VM here"]
    for host in hosts:
        status = status_of(host)
        view = None if status is None else own_view(status)
        vm = "RUNNING" if host.name in running else "-"
        if status is None or view is None:
            why = "(down: no supervisor answers)" if status is None else "(starting)"
            lines.append(f"{host.name:<7} {why:<26} {'':>5}  {'':<7} {vm}")
            continue
        maintenance = "local" if view["maintenance"] else "global" if status["global_maintenance"] else ""
        score = "?" if view["score"] is None else view["score"]
        lines.append(f"{host.name:<7} {view['state'] or '?':<26} {score:>5}  {maintenance:<7} {vm}")
    return lines
