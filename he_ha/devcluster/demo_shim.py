"""Running the ``hosted-engine`` shim as one simulated host, as an administrator would.

The shim is a separate process (``python -m cli.main``) with the host's environment
(``Host.cli_env()``: its configuration files, admin socket, libvirt URI, sanlock run dir).
Commands the shim does not offer yet ("Invalid option") fall back to the same call on the
host's admin socket, and the demo says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from cli.admin_client import DaemonUnreachable
from he_ha.devcluster.cluster import Host

SHIM_TIMEOUT = 60.0


@dataclass(frozen=True)
class ShimRun:
    command: str  # as a user would type it
    code: int
    stdout: str
    stderr: str

    @property
    def available(self) -> bool:
        """False when the shim does not know the command (yet)."""
        return not (self.code == 1 and "Invalid option" in self.stderr)

    @property
    def message(self) -> str:
        """The last line it printed (stderr first): its error, or its answer."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else ""


def hosted_engine(host: Host, *args: str, timeout: float = SHIM_TIMEOUT) -> ShimRun:
    result = subprocess.run([sys.executable, "-m", "cli.main", *args], env={**os.environ, **host.cli_env()},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
    return ShimRun(f"hosted-engine {' '.join(args)}", result.returncode, result.stdout, result.stderr)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    via: str  # what was run: the shim command line, or the admin route it fell back to
    message: str


def admin_post(host: Host, route: str, body: dict[str, Any] | None = None) -> Outcome:
    try:
        status, answer = host.admin.post(route, body)
    except DaemonUnreachable as exc:
        return Outcome(False, f"POST {route}", str(exc))
    message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
    return Outcome(status == 200, f"POST {route} {body or {}}", message)


def shim_or_admin(host: Host, args: tuple[str, ...], route: str, body: dict[str, Any] | None = None) -> Outcome:
    """Run ``hosted-engine *args`` as ``host``; if the shim lacks the command, the admin call."""
    run = hosted_engine(host, *args)
    if run.available:
        return Outcome(run.code == 0, run.command, run.message)
    fallback = admin_post(host, route, body)
    return Outcome(fallback.ok, f"{fallback.via} (the shim has no {args[0]} yet)", fallback.message)


def set_maintenance(host: Host, mode: str) -> Outcome:
    return shim_or_admin(host, ("--set-maintenance", f"--mode={mode}"), "/v1/maintenance", {"mode": mode})


def poweroff(host: Host) -> Outcome:
    return shim_or_admin(host, ("--vm-poweroff",), "/v1/vm/poweroff")
