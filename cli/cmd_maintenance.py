"""``--set-maintenance --mode=global|local|none`` (spec/hosted-engine-cli.md §4).

The mode is checked before the deployed check, with the original's texts on stdout. The
daemon applies the mode (POST /v1/maintenance: ha.conf flags and the whiteboard's global
flag, with the original's rules) and refuses ``local`` while the engine VM runs on this
host, with the original's message. Unlike the original, a half-applied change or any
other failure is reported (stderr, exit 1), never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from cli import daemon_call
from cli.arguments import Rules, Syntax
from cli.command import EXIT_FAILED, Command, error, require_deployed
from cli.environment import CliEnvironment
from he_ha.admin.contract import MaintenanceMode

NAME = "--set-maintenance"
MODE_MISSING = "You must specify a maintenance mode with --mode"
SYNTAX = Syntax(valued=("--mode",), rules=Rules.FIXED)


def _set_maintenance(args: Sequence[str], env: CliEnvironment) -> int:
    given = sum(arg.startswith("--mode=") for arg in args)
    if not given:
        print(MODE_MISSING)
        return EXIT_FAILED
    if given > 1:
        error(f"{NAME}: --mode given {given} times; give one mode")
        return EXIT_FAILED
    options = SYNTAX.parse(NAME, args).options
    mode = str(options["--mode"])
    if mode not in {m.value for m in MaintenanceMode}:
        print(f"Invalid value '{mode}' for --mode")
        return EXIT_FAILED
    if require_deployed(env) is None:
        return EXIT_FAILED
    return daemon_call.post_silently(env, "/v1/maintenance", {"mode": mode})


COMMANDS = (
    Command(
        NAME,
        "--set-maintenance --mode=<mode>",
        "set maintenance status to the specified mode",
        "--set-maintenance --mode=<mode>",
        "    Set maintenance status to the specified mode. Valid values are:\n"
        "    'global', 'local', and 'none'.\n"
        "        global: the HA daemons of every host leave the engine VM alone, so it can\n"
        "                be started, stopped or modified by hand.\n"
        "        local:  maintenance of this host: its score drops to 0 and it never runs\n"
        "                the engine VM. Refused while the engine VM runs here: migrate it\n"
        "                first. It stays set until another mode is set with this command.\n"
        "        none:   leave maintenance; high availability resumes.\n"
        "    The modes exclude each other: 'local' ends global maintenance, 'global' ends\n"
        "    this host's local maintenance. Needs the he-ha service running on this host.",
        _set_maintenance,
    ),
)
