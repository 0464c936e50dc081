"""Run a command on a real pseudo-terminal (its controlling terminal), as a user would:
getpass needs /dev/tty, and virsh console refuses to run without one."""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TerminalRun:
    status: int
    output: str  # everything the terminal showed (stdout and stderr, echoed input)


def run_in_terminal(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    reply_to: str | None = None,
    reply: str = "",
    timeout: float = 30.0,
) -> TerminalRun:
    """Run ``argv``; when the output shows ``reply_to``, type ``reply``. Killed at ``timeout``."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once (no Python code of the test runs here)
        os.execvpe(argv[0], list(argv), dict(env))
    seen = b""
    replied = reply_to is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal (exited)
                    break
                if not chunk:
                    break
                seen += chunk
            if not replied and reply_to is not None and reply_to.encode() in seen:
                os.write(fd, reply.encode())
                replied = True
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"{argv} did not finish within {timeout} s; output so far: {seen!r}")
        _, wait_status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return TerminalRun(os.waitstatus_to_exitcode(wait_status), seen.decode(errors="replace"))
