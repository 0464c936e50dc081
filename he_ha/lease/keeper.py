"""A lease keeper: a process whose only job is to be the sanlock holder of the VM lease.

Sanlock ties a resource lease to the registered process it was acquired for and releases it
when that process exits. If the supervisor (or its lease worker) held the VM lease itself,
a supervisor crash would free the lease while the VM still runs (breaking invariant 2).
So the lease can be acquired FOR a keeper: ``LeaseClient.acquire(lease, holder_pid=keeper.pid)``
(sanlock's ``acquire(pid=...)``; verified to survive the acquiring process's exit and to end
with the keeper's). The keeper is started in its own session, so it outlives the supervisor.

Run as ``python -m he_ha.lease.keeper [--killpath-json JSON] [--detach]`` with the
host's SANLOCK_RUN_DIR: it registers, prints ``ready <pid>``, and waits for SIGTERM/SIGINT;
exiting releases its leases.

``--killpath-json '["/path/of/program", "arg", ...]'`` registers a sanlock killpath for the
keeper: when the lockspace is lost (storage gone), sanlock runs that program instead of
killing the keeper with SIGKILL, which would free the lease while the VM runs. The program
(he-ha's ``fence`` command) destroys the VM and then ends the keeper. ``{pid}`` in an argument
is replaced by the keeper's pid. Sanlock still sends SIGKILL after its kill grace time (40 s
by default) if the program did not make the keeper exit.

``--detach`` forks once more and lets the intermediate process exit, so the keeper is not a
child of whoever started it. ``start_detached`` uses it: asyncio kills a subprocess that is
still running when its transport is closed (at loop shutdown), which must never happen to a
process holding the VM lease. ``LeaseKeeper`` (an ordinary child) remains for callers that
stop their keeper themselves.

Under systemd (``$INVOCATION_ID`` set by the service manager, and /run/systemd/system present)
``start_detached`` runs the keeper through ``systemd-run --scope``: a transient scope unit of its
own (``he-ha-lease-keeper-*.scope``), so it is outside he-ha.service's cgroup, and
``systemctl stop/restart/kill he-ha`` and a watchdog abort (default KillMode=control-group)
never reach it. Outside systemd the command is unchanged.

The supervisor's view of its keeper is here too (``KeeperRecord``, ``KeeperProcess``): the
keeper outlives the supervisor, so a restarted supervisor must find it again. The pid file
records the pid and the process start time (``/proc/<pid>/stat`` field 22), so a recycled pid
is never mistaken for our keeper; ``is_keeper`` checks the command line. Exit is watched with a
pidfd on the event loop: the keeper is not our child (it is started detached), and a pidfd
turns readable the moment the process ends, without polling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from he_ha.lazylog import get_logger
from he_ha.lease.lease_errors import LeaseConfigError, LeaseError
from he_ha.lease.sanlock_env import process_env

if TYPE_CHECKING:
    import asyncio

# The keeper process runs this module: what only the supervisor's side uses (asyncio, structlog,
# systemd-run's lookup) is imported where it is used, so the keeper stays small (issue 16 item 3);
# keep it so (no pydantic, aiohttp or libvirt on this module's import path).
log = get_logger(__name__)

READY = b"ready"
MODULE = "he_ha.lease.keeper"
# Keepers started by the release before he_ha.lease existed run ``python -m he_ha.storage.lease_keeper``
# and keep running across the upgrade (they hold the VM lease while the VM runs): the new
# supervisor adopts them and ``fence`` ends them, so both names identify a keeper.
KEEPER_MODULES = (MODULE, "he_ha.storage.lease_keeper")
# sanlock.h: SANLK_HELPER_PATH_LEN and SANLK_HELPER_ARGS_LEN, both including the NUL.
KILLPATH_PATH_MAX = 127
KILLPATH_ARGS_MAX = 127
PID_PLACEHOLDER = "{pid}"
MAX_PID_TEXT = 7  # /proc/sys/kernel/pid_max is at most 4194304


@dataclass(frozen=True)
class Killpath:
    """The program sanlock runs to fence the keeper, and its arguments (``{pid}``: the keeper)."""

    path: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not os.path.isabs(self.path):
            raise LeaseConfigError(f"killpath program must be an absolute path, got {self.path!r}")
        if len(os.fsencode(self.path)) > KILLPATH_PATH_MAX:
            raise LeaseConfigError(f"killpath program {self.path!r} is longer than sanlock's {KILLPATH_PATH_MAX} bytes")
        # sanlock escapes spaces with a backslash; a pid takes at most MAX_PID_TEXT digits.
        joined = " ".join(arg.replace(" ", "\\ ") for arg in self.args)
        longest = len(joined.encode()) + joined.count(PID_PLACEHOLDER) * (MAX_PID_TEXT - len(PID_PLACEHOLDER))
        if longest > KILLPATH_ARGS_MAX:
            raise LeaseConfigError(
                f"killpath arguments {joined!r} may reach {longest} bytes, over sanlock's {KILLPATH_ARGS_MAX}: "
                "use shorter paths (e.g. a shorter run directory)"
            )

    def to_json(self) -> str:
        return json.dumps([self.path, *self.args])

    @classmethod
    def from_json(cls, text: str) -> Killpath:
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LeaseConfigError(f"killpath is not JSON: {exc}") from None
        if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
            raise LeaseConfigError(f"killpath must be a JSON list of strings, got {text!r}")
        return cls(items[0], tuple(items[1:]))

    def for_pid(self, pid: int) -> list[bytes]:
        return [arg.replace(PID_PLACEHOLDER, str(pid)).encode() for arg in self.args]


class LeaseKeeper:
    """Handle on a running keeper process that is our child (see the module doc)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    async def start(
        cls, *, run_dir: Path | None = None, timeout: float = 10.0, killpath: Killpath | None = None
    ) -> LeaseKeeper:
        import asyncio

        process = await asyncio.create_subprocess_exec(
            *_command(killpath, detach=False),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=process_env(run_dir),
            start_new_session=True,  # must outlive the supervisor's process group
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                line = await process.stdout.readline()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise LeaseError(f"lease keeper pid {process.pid} did not register within {timeout:g} s") from None
        if not line.startswith(READY):
            code = await process.wait()
            raise LeaseError(f"lease keeper pid {process.pid} failed to register with sanlock (exit code {code})")
        log.info("lease keeper registered", pid=process.pid)
        return cls(process)

    async def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM the keeper (sanlock releases what it held); SIGKILL after ``timeout``."""
        import asyncio

        if self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(timeout):
                    return await self._process.wait()
            except TimeoutError:
                self._process.kill()
        return await self._process.wait()


def _command(killpath: Killpath | None, *, detach: bool) -> list[str]:
    command = [sys.executable, "-m", MODULE]
    if killpath is not None:
        command += ["--killpath-json", killpath.to_json()]
    if detach:
        command.append("--detach")
    return command


SCOPE_PREFIX = "he-ha-lease-keeper-"


def under_systemd(env: Mapping[str, str] | None = None, *, booted: bool | None = None) -> bool:
    """True when this process runs in a systemd unit on a systemd-booted host (sd_booted(3):
    /run/systemd/system exists; systemd sets $INVOCATION_ID for every unit it starts)."""
    env = os.environ if env is None else env
    if booted is None:
        booted = os.path.isdir("/run/systemd/system")
    return booted and bool(env.get("INVOCATION_ID"))


def scope_prefix(
    env: Mapping[str, str] | None = None, *, booted: bool | None = None, systemd_run: str | None = None
) -> list[str]:
    """The ``systemd-run --scope`` words that put a keeper in a transient scope of its own,
    outside the calling service's kill path; [] when not under systemd (or no systemd-run)."""
    import secrets
    import shutil

    if not under_systemd(env, booted=booted):
        return []
    systemd_run = systemd_run or shutil.which("systemd-run")
    if systemd_run is None:
        log.warning("under systemd but systemd-run not found: the lease keeper stays in this unit's cgroup")
        return []
    return [
        systemd_run,
        "--scope",
        "--quiet",
        "--collect",
        f"--unit={SCOPE_PREFIX}{secrets.token_hex(4)}",
        "--description=he-ha lease keeper (holds the hosted-engine VM lease)",
    ]


async def start_detached(
    *,
    run_dir: Path | None = None,
    killpath: Killpath | None = None,
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> int:
    """Start a keeper that is nobody's child (adopted by init) and return its pid once it is
    registered with sanlock. Its stderr goes to ``log_path`` (appended), else /dev/null.
    Under systemd it runs in a transient scope of its own (``scope_prefix``)."""
    import asyncio

    err = open(log_path, "ab") if log_path is not None else asyncio.subprocess.DEVNULL  # noqa: SIM115
    try:
        starter = await asyncio.create_subprocess_exec(
            *scope_prefix(),
            *_command(killpath, detach=True),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=process_env(run_dir),
            start_new_session=True,
        )
    finally:
        if not isinstance(err, int):
            err.close()
    assert starter.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            line = await starter.stdout.readline()
            await starter.wait()  # the intermediate process exits right after its fork
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            starter.kill()
        raise LeaseError(f"lease keeper did not register with sanlock within {timeout:g} s") from None
    words = line.split()
    if len(words) != 2 or words[0] != READY or not words[1].isdigit():
        where = f"; see {log_path}" if log_path is not None else ""
        raise LeaseError(f"lease keeper failed to register with sanlock (it said {line!r}){where}")
    pid = int(words[1])
    log.info("lease keeper registered", pid=pid, detached=True, killpath=killpath.path if killpath else None)
    return pid


# --- the supervisor's view of a keeper: its pid file, identity and exit ----------------------


def is_keeper(pid: int) -> bool:
    """True when ``pid`` is a live process running this module, under its current or its
    former name (``KEEPER_MODULES``), not a reused pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(module.encode() in cmdline for module in KEEPER_MODULES)


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
    from he_ha.atomicfile import replace_file  # the supervisor's side only: not in the keeper

    replace_file(path, record.to_json())


def is_our_keeper(record: KeeperRecord) -> bool:
    """The recorded process still runs, is the same process (start time), and is a keeper."""
    return start_time_of(record.pid) == record.start_time and is_keeper(record.pid)


class KeeperProcess:
    """A running keeper whose exit is reported through ``on_exit`` (once, on the loop)."""

    def __init__(self, record: KeeperRecord, on_exit: Callable[[KeeperProcess], None]) -> None:
        self.record = record
        import asyncio

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
        import asyncio

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


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    import sanlock  # only the keeper process itself talks to sanlock

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--killpath-json", type=Killpath.from_json, default=None)
    parser.add_argument("--detach", action="store_true")
    args = parser.parse_args(argv)
    if args.detach and os.fork() != 0:
        os._exit(0)  # the intermediate: our parent sees it exit; the keeper is adopted by init
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # so sigwait receives them
    fd = sanlock.register()  # the connection stays open for the life of the process
    killpath: Killpath | None = args.killpath_json
    if killpath is not None:
        sanlock.killpath(killpath.path.encode(), killpath.for_pid(os.getpid()), slkfd=fd)
    sys.stdout.buffer.write(READY + b" %d\n" % os.getpid())
    sys.stdout.buffer.flush()
    if args.detach:  # nobody reads our stdout any more: never write into a dead pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
