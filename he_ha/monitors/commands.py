"""Blocking work off the event loop, under a deadline: one worker thread, or a subprocess.

``OffLoop`` is a one-thread ``he_ha.offloop.Lane`` speaking the monitors' errors. A call
that misses its deadline is abandoned by the caller but keeps its thread; until it returns,
further calls fail at once with ``WorkerBusy`` instead of piling up threads behind a hung
hypervisor or NFS server. The thread is a daemon so a call stuck forever cannot hold up
process exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from he_ha.monitors.framework import MonitorError
from he_ha.offloop import CallTimeout, Lane, LaneStuck

T = TypeVar("T")


class DeadlineExceeded(MonitorError):
    """A blocking call or command did not finish within its deadline."""


class WorkerBusy(MonitorError):
    """The worker thread is still stuck in an earlier call that missed its deadline."""


class OffLoop:
    """A single daemon worker thread for one kind of blocking call (libvirt, O_DIRECT I/O).

    Concurrent callers (e.g. two monitors sharing a libvirt connection) take turns; each
    caller's ``timeout`` covers its wait for the turn and its own call. A caller cancelled
    while its call runs (the monitor runner's own deadline) leaves the worker refusing too.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lane = Lane(f"offloop-{name}")

    @property
    def busy(self) -> bool:
        """A call is running in the thread (possibly one abandoned after its deadline)."""
        return self._lane.busy_for() is not None

    async def call(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn()`` in the worker thread; raise DeadlineExceeded after ``timeout`` s,
        WorkerBusy at once while an earlier call that missed its deadline still runs."""
        try:
            return await self._lane.run(self.name, fn, timeout)
        except CallTimeout:
            raise DeadlineExceeded(f"{self.name}: no answer within {timeout:g} s") from None
        except LaneStuck as exc:
            overdue = exc.oldest.overdue
            raise WorkerBusy(
                f"{self.name}: an earlier call is still running, {overdue:.1f} s past its deadline"
            ) from None

    def close(self) -> None:
        """Let the thread exit after its current job (if any); a later call starts a new one."""
        self._lane.close()


@dataclass(frozen=True, slots=True)
class CommandOutput:
    returncode: int
    stdout: str
    stderr: str


async def run_command(argv: Sequence[str], timeout: float) -> CommandOutput:
    """Run a command without a shell; kill it and raise DeadlineExceeded after ``timeout`` s."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise MonitorError(f"cannot run {argv[0]}: {exc.strerror}") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"{argv[0]} did not finish within {timeout:g} s") from None
    finally:
        if process.returncode is None:  # deadline or cancellation: never leave it running
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return CommandOutput(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
