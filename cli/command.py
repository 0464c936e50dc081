"""What every ``hosted-engine`` command is, and the checks most of them start with.

A command module exports ``COMMANDS``: a tuple of ``Command``. ``run`` gets the arguments
after the command name and returns the exit status; it prints its own output, in the
original's words where the original had words (spec/hosted-engine-cli.md). Each command
reads its arguments through the ``Syntax`` it declares (cli/arguments.py: the original's
rules for that command).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cli.admin_client import AdminClient, DaemonUnreachable

if TYPE_CHECKING:  # at run time only the commands need it: --help stays light (issue 16 item 2)
    from cli.environment import CliEnvironment

EXIT_OK = 0
EXIT_FAILED = 1

NOT_DEPLOYED = "You must run deploy first"
CANNOT_CONNECT = "Cannot connect to the HA daemon, please check the logs."


@dataclass(frozen=True)
class Command:
    name: str  # the option that selects it, e.g. "--vm-status"
    synopsis: str  # its line in the general usage, e.g. "--vm-status [--json]"
    summary: str  # its description in the general usage
    usage: str  # the text after "Usage: $0 " in its own help, e.g. "--vm-status [--json]"
    help: str  # the prose of its own help (4-space indented lines)
    run: Callable[[Sequence[str], CliEnvironment], int]


def deployed_vmid(env: CliEnvironment) -> str | None:
    """The engine VM uuid from hosted-engine.conf; None when not deployed (no file, no vmid).

    Like the original, only ``vmid`` decides. Unlike it, a file that cannot be parsed is not
    taken for "not deployed": ConfigError names the file and the bad line."""
    from he_ha.config import parse_flat_file

    if not env.paths.hosted_engine_conf.exists():
        return None
    return parse_flat_file(env.paths.hosted_engine_conf).get("vmid") or None


def require_deployed(env: CliEnvironment) -> str | None:
    """The vmid, or None after saying why not (the original's "not deployed" line; exit 1)."""
    from he_ha.config import ConfigError

    try:
        vmid = deployed_vmid(env)
    except ConfigError as exc:
        error(str(exc))
        return None
    if vmid is None:
        print(NOT_DEPLOYED)
    return vmid


def daemon_answers(env: CliEnvironment) -> bool:
    try:
        AdminClient(env.admin_socket, timeout=5.0).request("GET", "/v1/status")
    except DaemonUnreachable:
        return False
    return True


def error(message: str) -> None:
    print(message, file=sys.stderr)
