"""One mutating call to the local he-ha daemon, with the shim's output rules applied.

Every command that changes something through the daemon (maintenance, VM start/stop,
console password) posts one request and needs the same three outcomes: done, refused or
failed with the daemon's explanation, or no daemon at all (the original's broker-socket
message, plus what the socket said).

The VM commands act without the daemon (``direct``: cli/direct_vm.py), as the original did
with VDSM alone, but only when the daemon is certainly not there: nothing listens on its
admin socket AND no ``he-ha run`` process serves its run directory (one that is starting up,
e.g. joining the lockspace, does not listen yet and must not be raced). A socket that
accepts and then does not answer is a daemon that may be acting: nothing is done then. The
direct action holds the host lock (he_ha/supervisor/runfiles.py) while it runs: a daemon
started meanwhile waits for it at start-up and then adopts what it did; the lock already
held (a daemon, or another such command) means nothing is done.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from cli.admin_client import AdminClient, DaemonUnreachable
from cli.command import CANNOT_CONNECT, EXIT_FAILED, EXIT_OK, error
from cli.environment import DEFAULT_RUN_DIR, CliEnvironment
from he_ha.admin.contract import CommandResult
from he_ha.supervisor.runfiles import HostLockBusy, try_host_lock

# Longer than the daemon's own 30 s deadline on mutating calls, so a slow call ends with
# the daemon's 504 explanation rather than with our socket timing out.
CALL_TIMEOUT = 45.0
# For the scan of /proc for a starting daemon: reading a process's cmdline waits for its memory
# map, which a process stuck on a stalled storage can hold for as long as the stall lasts.
SCAN_DEADLINE = 10.0


@dataclass(frozen=True)
class Answer:
    ok: bool  # 200: done
    message: str  # the daemon's explanation (CommandResult.message or the error message)
    detail: dict[str, Any]

    @property
    def refusal(self) -> str | None:
        """The daemon's ``detail["refusal"]`` (he_ha.admin.contract.Refusal) of a 409."""
        value = self.detail.get("refusal")
        return value if isinstance(value, str) else None


Direct = Callable[[], CommandResult | None]  # the action without the daemon; None: failed, said why


def post(
    env: CliEnvironment, url: str, body: dict[str, Any] | None = None, *, direct: Direct | None = None
) -> Answer | None:
    """The daemon's answer; or, with ``direct`` while the daemon is down, what ``direct()``
    did instead (one stderr line says so); or None after printing why there is no answer."""
    try:
        status, data = AdminClient(env.admin_socket, timeout=CALL_TIMEOUT).post(url, body)
    except DaemonUnreachable as exc:
        starting = running_supervisors(env.run_dir, deadline=SCAN_DEADLINE) if direct is not None and exc.down else []
        if direct is None or not exc.down or starting is None or starting:
            error(CANNOT_CONNECT)
            error(str(exc))
            if starting is None:
                error(
                    f"Nothing was done directly: the process list could not be read within {SCAN_DEADLINE:g} s, "
                    f"so an he-ha run starting for {env.run_dir} cannot be ruled out"
                )
            elif starting:
                error(
                    f"he-ha run (pid {', '.join(map(str, starting))}) serves {env.run_dir} but does not listen "
                    "yet (starting?): nothing was done; try again once it answers"
                )
            elif direct is not None:
                error(
                    "Nothing was done directly: a process accepts connections on that socket, so the "
                    "he-ha daemon may be running (hung or busy)"
                )
            return None
        try:  # one actor at a time on this host's VM: a daemon starting now waits for us
            lock = try_host_lock(env.run_dir, f"hosted-engine {url.rsplit('/', 1)[-1]} (pid {os.getpid()})")
        except HostLockBusy as busy:
            error(CANNOT_CONNECT)
            error(f"Nothing was done directly: {busy}")
            return None
        try:
            error(f"he-ha: {exc}; acting directly through libvirt ({env.libvirt_uri})")
            result = direct()
        finally:
            os.close(lock)
        return None if result is None else Answer(result.ok, result.message, dict(result.detail))
    if not isinstance(data, dict):
        return Answer(False, f"unexpected answer ({status}): {str(data)[:200]}", {})
    message = data.get("message")
    detail = data.get("detail")
    return Answer(
        ok=status == 200,
        message=message if isinstance(message, str) else f"status {status} without a message",
        detail=detail if isinstance(detail, dict) else {},
    )


def post_silently(
    env: CliEnvironment, url: str, body: dict[str, Any] | None = None, *, direct: Direct | None = None
) -> int:
    """The original's rule for set-maintenance, shutdown, poweroff: nothing printed when
    done (exit 0), the reason on stderr otherwise (exit 1)."""
    answer = post(env, url, body, direct=direct)
    if answer is None:
        return EXIT_FAILED
    if not answer.ok:
        error(answer.message)
        return EXIT_FAILED
    return EXIT_OK


def running_supervisors(run_dir: Path, proc: Path = Path("/proc"), deadline: float = SCAN_DEADLINE) -> list[int] | None:
    """``supervisor_pids`` within ``deadline`` seconds; None when the scan did not end in time (or
    failed; the thread prints its traceback): no daemon can be ruled out then. The scan runs in a
    daemon thread: one left hanging on a /proc read does not keep the command from exiting."""
    found: list[list[int]] = []
    scan = threading.Thread(target=lambda: found.append(supervisor_pids(run_dir, proc)), name="proc-scan", daemon=True)
    scan.start()
    scan.join(deadline)
    return found[0] if found else None


def supervisor_pids(run_dir: Path, proc: Path = Path("/proc")) -> list[int]:
    """Pids of ``he-ha run`` processes (the console script, or ``python -m he_ha.main run``)
    whose ``--run-dir`` is ``run_dir`` (theirs defaults to /run/he-ha) in this mount
    namespace: a daemon in a container has a /run of its own, whatever its command line says.
    A process whose namespace cannot be read counts (never race a daemon we cannot rule out)."""
    wanted = os.path.realpath(run_dir)
    ours = _mount_namespace(proc / "self")
    found = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        theirs = _mount_namespace(Path(entry.path))
        if ours is not None and theirs is not None and theirs != ours:
            continue
        try:
            words = [w.decode(errors="replace") for w in Path(entry.path, "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        runs = any(os.path.basename(w) in ("he-ha", "he_ha.main") and nxt == "run" for w, nxt in pairwise(words))
        if runs and os.path.realpath(_run_dir_of(words)) == wanted:
            found.append(int(entry.name))
    return found


def _mount_namespace(process: Path) -> str | None:
    """``mnt:[<inode>]`` of a /proc/<pid> entry, None if it cannot be read."""
    try:
        return os.readlink(process / "ns" / "mnt")
    except OSError:
        return None


def _run_dir_of(words: list[str]) -> str:
    for word, value in pairwise(words):
        if word == "--run-dir":
            return value
    return next((w.removeprefix("--run-dir=") for w in words if w.startswith("--run-dir=")), str(DEFAULT_RUN_DIR))
