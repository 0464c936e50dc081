"""The original's "vm.conf not retrieved yet" check (spec/hosted-engine-cli.md §1).

The engine VM's definition file (``conf`` in hosted-engine.conf) must be readable before a
start. If it is not, three lines go to stdout, the second naming the likely cause: the HA
service is not running (its admin socket does not answer), or it runs and the file is
still missing (then sanlock and the logs tell why).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cli.admin_client import AdminClient, DaemonUnreachable
from cli.command import error

if TYPE_CHECKING:
    from cli.environment import CliEnvironment

NOT_RETRIEVED = "The hosted engine configuration has not been retrieved from shared storage yet,"
SERVICE_DOWN = "please ensure that the he-ha service is running."
CHECK_SANLOCK = "for more details please check sanlock status."


def vm_conf_missing(env: CliEnvironment, path: Path) -> list[str] | None:
    """None if ``path`` (the configured vm.conf) is readable; else the original's three lines.
    A running daemon that knows why (no usable VM definition source) says so on stderr."""
    if vm_conf_readable(path):
        return None
    try:
        _, status = AdminClient(env.admin_socket, timeout=5.0).request("GET", "/v1/status")
    except DaemonUnreachable:
        return [NOT_RETRIEVED, SERVICE_DOWN, ""]
    definition = status.get("vm_definition") if isinstance(status, dict) else None
    if isinstance(definition, dict) and definition.get("problem"):
        error(f"he-ha: {definition['problem']}")
    return [NOT_RETRIEVED, CHECK_SANLOCK, ""]


def vm_conf_readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


def vm_conf_ready(env: CliEnvironment) -> bool:
    """True if the configured vm.conf is readable; else print why (the caller exits 1)."""
    from he_ha.config import ConfigError

    try:
        path = env.engine_conf().vm_conf
    except ConfigError as exc:
        error(str(exc))
        return False
    lines = vm_conf_missing(env, path)
    for line in lines or ():
        print(line)
    return lines is None
