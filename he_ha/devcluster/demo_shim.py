"""Running the ``hosted-engine`` shim as one simulated host, as an administrator would.

The shim is a separate process (``python -m cli.main``) with the host's environment
(``Host.cli_env()``: its configuration files, admin socket, libvirt URI, sanlock run dir).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from he_ha.devcluster.cluster import Host

SHIM_TIMEOUT = 60.0


@dataclass(frozen=True)
class ShimRun:
    command: str  # as a user would type it
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def message(self) -> str:
        """The last line it printed (stderr first): its error, or its answer."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else ""


def hosted_engine(host: Host, *args: str, timeout: float = SHIM_TIMEOUT) -> ShimRun:
    result = subprocess.run([sys.executable, "-m", "cli.main", *args], env={**os.environ, **host.cli_env()},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
    return ShimRun(f"hosted-engine {' '.join(args)}", result.returncode, result.stdout, result.stderr)


def set_maintenance(host: Host, mode: str) -> ShimRun:
    return hosted_engine(host, "--set-maintenance", f"--mode={mode}")


def poweroff(host: Host) -> ShimRun:
    return hosted_engine(host, "--vm-poweroff")
