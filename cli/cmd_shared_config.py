"""``--get-shared-config <key> [--type=<t>]`` and ``--set-shared-config <key> <value> [--type=<t>]``
(spec/hosted-engine-cli.md §12).

Types: he_local (hosted-engine.conf), ha (ha.conf), broker (broker.conf, keys
``section.option``); see cli/config_files.py. ``he_shared`` does not exist here: he-ha keeps
no configuration volume on shared storage, each host has its own hosted-engine.conf, so it
is refused with a message saying so.

Texts and exit codes are the original's. Beyond it: an unknown ``--type`` is a message, not
a traceback; a new value is checked with the daemon's own loader before anything is
written (the message names the key and the value; the file is left untouched); writes are
atomic (ha.conf: in place under its lock). he-ha reads hosted-engine.conf and broker.conf at
start-up, so a change there takes effect when the he-ha service restarts; ha.conf is read
on every cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

from cli.command import EXIT_FAILED, EXIT_OK, Command, error, parse_options, require_deployed
from cli.config_files import ConfigFile, ConfigValueRejected, ConfigWriteError, config_files
from cli.environment import CliEnvironment
from he_ha.config import ConfigError

ALL_TYPES = ("he_local", "he_shared", "ha", "broker")
NO_SHARED = (
    "he-ha keeps no shared configuration volume, so there is no he_shared configuration. "
    "Set the key in the hosted-engine.conf of each host instead: --type=he_local"
)


class Refused(Exception):
    """Printed on stderr line by line; exit 1."""


def _selected(env: CliEnvironment, wanted: str) -> list[ConfigFile]:
    files = config_files(env.paths)
    if not wanted:
        return list(files.values())
    if wanted == "he_shared":
        raise Refused(NO_SHARED)
    if wanted not in files:
        raise Refused(f"Invalid configuration type '{wanted}'. Available types are: {', '.join(files)}")
    return [files[wanted]]


def _resolve(key: str, candidates: list[ConfigFile]) -> ConfigFile:
    holders = [f for f in candidates if key in f.keys()]
    if len(holders) == 1:
        return holders[0]
    if holders:
        raise Refused(f"Duplicate key {key}, please specify the key type. "
                      f"Available types are: {[f.type for f in holders]}")
    lines = [f"Invalid configuration key {key}.", "Available keys are:"]
    lines += [f"{f.type} : {sorted(f.keys())}" for f in candidates]
    raise Refused("\n".join(lines))


def _shared_config(command: str, args: Sequence[str], env: CliEnvironment, *, setting: bool) -> int:
    options, values = parse_options(command, args, valued=("--type",), positional=2 if setting else 1)
    if not values:
        print(f"You must specify a key to {'set' if setting else 'get'}")
        return EXIT_FAILED
    if setting and len(values) < 2:
        print("You must specify a new value to set")
        return EXIT_FAILED
    if require_deployed(env) is None:
        return EXIT_FAILED
    key = values[0]
    try:
        found = _resolve(key, _selected(env, str(options.get("--type", ""))))
        if setting:
            found.set(key, values[1])
        else:
            print(f"\n{key} : {found.get(key)}, type : {found.type}\n")
    except (Refused, ConfigError, ConfigValueRejected, ConfigWriteError) as exc:
        error(str(exc))
        return EXIT_FAILED
    return EXIT_OK


def _get(args: Sequence[str], env: CliEnvironment) -> int:
    return _shared_config("--get-shared-config", args, env, setting=False)


def _set(args: Sequence[str], env: CliEnvironment) -> int:
    return _shared_config("--set-shared-config", args, env, setting=True)


_TYPES_HELP = (
    f"    Valid types are: {', '.join(ALL_TYPES)}.\n"
    "        he_local:  this host's hosted-engine.conf\n"
    "        ha:        this host's ha.conf (local maintenance flags)\n"
    "        broker:    this host's broker.conf (notifications), keys as section.option,\n"
    "                   e.g. email.smtp-server, notify.state_transition\n"
    "        he_shared: not available: he-ha keeps no shared configuration volume\n"
    "    Without --type, the key is looked up in every type; a key found in several must\n"
    "    be given with its type."
)

COMMANDS = (
    Command(
        "--set-shared-config",
        "--set-shared-config <key> <value> [--type=<type>]",
        "set specified key to the specified value",
        "--set-shared-config <key> <value> [--type=<type>]",
        "    Set the specified key to the specified value in the configuration file of the\n"
        "    given type. The value is checked first: a value he-ha would refuse is refused\n"
        "    and the file is left unchanged.\n"
        f"{_TYPES_HELP}\n"
        "    he_local and broker values take effect when the he-ha service restarts; ha values\n"
        "    at its next cycle.",
        _set,
    ),
    Command(
        "--get-shared-config",
        "--get-shared-config <key> [--type=<type>]",
        "get the value of the specified key",
        "--get-shared-config <key> [--type=<type>]",
        "    Get the value of the specified key from the configuration file of the given type\n"
        "    (a key absent from the file shows the value he-ha uses for it).\n"
        f"{_TYPES_HELP}",
        _get,
    ),
)
