"""Which sanlock daemon a process talks to.

libsanlock finds its daemon through ``$SANLOCK_RUN_DIR/sanlock.sock`` (default /run/sanlock)
and reads the variable ONCE, at the first call of the process; changing os.environ later has
no effect (verified with sanlock 3.8.5). So the daemon is chosen per process: the lease
worker and the lease keeper are started with the host's run dir in their environment.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

DEFAULT_RUN_DIR = Path("/run/sanlock")
SOCKET_NAME = "sanlock.sock"
ENV_VAR = "SANLOCK_RUN_DIR"


def socket_path(run_dir: Path | None) -> Path:
    return (run_dir or DEFAULT_RUN_DIR) / SOCKET_NAME


def process_env(run_dir: Path | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a process that must talk to the daemon of ``run_dir``
    (None: the system daemon, whatever the parent's environment said)."""
    env = dict(os.environ if base is None else base)
    if run_dir is None:
        env.pop(ENV_VAR, None)
    else:
        env[ENV_VAR] = str(run_dir)
    return env


def current_run_dir() -> Path | None:
    value = os.environ.get(ENV_VAR)
    return Path(value) if value else None


def daemon_answers(run_dir: Path | None, timeout: float = 1.0) -> bool:
    """True when something accepts connections on the daemon socket (blocking, short)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(str(socket_path(run_dir)))
        except OSError:
            return False
    return True
