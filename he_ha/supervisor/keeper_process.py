"""The lease keeper as seen from the supervisor: its pid file, identity and exit.

The keeper outlives the supervisor, so a restarted supervisor must find it again. The pid
file records the pid and the process start time (``/proc/<pid>/stat`` field 22), so a
recycled pid is never mistaken for our keeper. Exit is watched with a pidfd on the event
loop: the keeper is not our child (it is started detached), and a pidfd turns readable the
moment the process ends, without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from he_ha.storage.lease_keeper import is_keeper
from he_ha.supervisor.runfiles import replace_file

log = structlog.get_logger(__name__)


class KeeperFileError(Exception):
    """The keeper pid file exists but cannot be read as one."""


@dataclass(frozen=True)
class KeeperRecord:
    pid: int
    start_time: int  # clock ticks since boot, /proc/<pid>/stat field 22
    resource: str  # the lease it was started for

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "start_time": self.start_time, "resource": self.resource})


def start_time_of(pid: int) -> int | None:
    """The process start time, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may contain spaces and parentheses
    return int(fields[19])  # field 22 overall; fields[0] is field 3


def read_record(path: Path) -> KeeperRecord | None:
    try:
        data = json.loads(path.read_text())
        return KeeperRecord(int(data["pid"]), int(data["start_time"]), str(data["resource"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeeperFileError(f"{path}: not a lease-keeper record: {exc}") from None


def write_record(path: Path, record: KeeperRecord) -> None:
    replace_file(path, record.to_json())


def is_our_keeper(record: KeeperRecord) -> bool:
    """The recorded process still runs, is the same process (start time), and is a keeper."""
    return start_time_of(record.pid) == record.start_time and is_keeper(record.pid)


class KeeperProcess:
    """A running keeper whose exit is reported through ``on_exit`` (once, on the loop)."""

    def __init__(self, record: KeeperRecord, on_exit: Callable[[KeeperProcess], None]) -> None:
        self.record = record
        self.exited = asyncio.Event()
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = None
        try:
            self._fd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            self._loop.call_soon(self._ended)
            return
        self._loop.add_reader(self._fd, self._ended)

    @property
    def pid(self) -> int:
        return self.record.pid

    @property
    def alive(self) -> bool:
        return not self.exited.is_set()

    def _ended(self) -> None:
        if self.exited.is_set():
            return
        self._unwatch()
        self.exited.set()
        self._on_exit(self)

    def _unwatch(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def forget(self) -> None:
        """Stop watching without touching the process (supervisor shutdown: it must live on)."""
        self._unwatch()

    async def terminate(self, timeout: float = 5.0) -> None:
        """SIGTERM (sanlock releases what it holds as it exits), SIGKILL after ``timeout``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive:
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            try:
                await asyncio.wait_for(self.exited.wait(), timeout)
                return
            except TimeoutError:
                log.warning("lease keeper did not exit", pid=self.pid, signal=sig.name)
