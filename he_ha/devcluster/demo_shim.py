"""Running the ``hosted-engine`` shim (and ``he-ha storage-paths``) as one simulated host, as
an administrator would.

The shim is a separate process (``python -m cli.hosted_engine``) with the host's environment
(``Host.cli_env()``: its configuration files, admin socket, libvirt URI, sanlock run dir,
VDSM mount root).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from he_ha.devcluster.cluster import Host
from he_ha.devcluster.deployed import run_storage_paths

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
    result = subprocess.run(
        [sys.executable, "-m", "cli.hosted_engine", *args],
        env={**os.environ, **host.cli_env()},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return ShimRun(f"hosted-engine {' '.join(args)}", result.returncode, result.stdout, result.stderr)


def set_maintenance(host: Host, mode: str) -> ShimRun:
    return hosted_engine(host, "--set-maintenance", f"--mode={mode}")


def poweroff(host: Host) -> ShimRun:
    return hosted_engine(host, "--vm-poweroff")


def storage_paths(host: Host) -> str:
    """What ``he-ha storage-paths`` finds for ``host``, on one line: each volume's path and rule."""
    result = run_storage_paths(host.hosted_engine_conf, host.mount_root, timeout=SHIM_TIMEOUT)
    if result.returncode != 0:
        return f"exit {result.returncode}: {result.stderr.strip()}"
    found = json.loads(result.stdout)
    return "; ".join(f"{role} {volume['path']} ({volume['rule']})" for role, volume in found.items() if volume)
