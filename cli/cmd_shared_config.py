"""``--get-shared-config <key> [--type=<t>]`` and ``--set-shared-config <key> <value> [--type=<t>]``
(spec/hosted-engine-cli.md §12).

Types: he_local (hosted-engine.conf), he_shared (the configuration volume's copy of
hosted-engine.conf), ha (ha.conf), broker (broker.conf, keys ``section.option``); see
cli/config_files.py. he_shared, and the volume-backed broker.conf, exist when this host's
hosted-engine.conf names a configuration volume (``conf_image_UUID``/``conf_volume_UUID``,
as deploy writes it); otherwise he_shared is refused naming the missing keys and broker.conf
is this host's file. The volume is read afresh by every command and written under the
cross-host lock, joining the sanlock lockspace for the update when the he-ha daemon does not
hold it (he_ha/ovirt/conf_volume.py).

Texts and exit codes are the original's. Beyond it: an unknown ``--type`` is a message, not
a traceback; a new value is checked with the daemon's own loader before anything is
written (the message names the key and the value; the file is left untouched); writes are
atomic (ha.conf: in place under its lock). he-ha reads hosted-engine.conf and broker.conf at
start-up, so a change there takes effect when the he-ha service restarts; ha.conf is read
on every cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cli.arguments import Rules, Syntax
from cli.command import EXIT_FAILED, EXIT_OK, Command, error, require_deployed
from cli.config_files import ConfigFile, ConfigValueRejected, ConfigWriteError, config_files
from cli.environment import CliEnvironment
from he_ha.config import ConfigError, parse_flat_file
from he_ha.lease import LeaseError
from he_ha.ovirt.conf_volume import ConfVolumeError, fetch_conf_volume, update_conf_volume_locked

T = TypeVar("T")

ALL_TYPES = ("he_local", "he_shared", "ha", "broker")
CONF_VOLUME_KEYS = ("conf_image_UUID", "conf_volume_UUID")


def _no_shared(conf: Path, missing: list[str]) -> str:
    return (
        f"There is no he_shared configuration: {conf} names no configuration volume "
        f"({' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing). he_shared is the copy of "
        "hosted-engine.conf on the configuration volume that 'hosted-engine --deploy' creates; "
        "for this host's hosted-engine.conf use --type=he_local"
    )


def _missing_conf_volume_keys(env: CliEnvironment) -> list[str]:
    values = parse_flat_file(env.paths.hosted_engine_conf)
    return [key for key in CONF_VOLUME_KEYS if values.get(key, "") in ("", "None")]


class ConfVolumeAccess:
    """The configuration volume named by this host's hosted-engine.conf, for one command:
    found on first use, read once, updated under the cross-host lock."""

    def __init__(self, env: CliEnvironment) -> None:
        self.env = env
        self._found: tuple[Path, Path, int] | None = None  # volume, lockspace volume, host id
        self._members: dict[str, str] | None = None

    def _locate(self) -> tuple[Path, Path, int]:
        if self._found is None:
            conf = self.env.engine_conf()
            volumes = self.env.volumes()
            assert volumes.conf is not None, "asked for only when hosted-engine.conf names the volume"
            self._found = (volumes.conf.path, volumes.lockspace.path, conf.host_id)
        return self._found

    def describe(self) -> str:
        return f"the configuration volume {self._locate()[0]}"

    def members(self) -> dict[str, str]:
        if self._members is None:
            self._members = _storage(fetch_conf_volume(self._locate()[0]))
        return self._members

    def update(self, member: str, edit: Callable[[str], str]) -> dict[str, str]:
        path, lockspace, host_id = self._locate()
        self._members = _storage(
            update_conf_volume_locked(
                path,
                member,
                edit,
                lockspace_path=lockspace,
                host_id=host_id,
                run_dir=self.env.sanlock_run_dir,
                say=error,
            )
        )
        return self._members


def _storage(work: Coroutine[Any, Any, T]) -> T:
    """Run the volume work; its failures become ConfigWriteError (printed, exit 1)."""
    try:
        return asyncio.run(work)
    except (ConfVolumeError, LeaseError) as exc:
        raise ConfigWriteError(str(exc)) from None


class SharedConfigRefused(Exception):
    """Printed on stderr line by line; exit 1."""


def _selected(env: CliEnvironment, wanted: str) -> list[ConfigFile]:
    missing = _missing_conf_volume_keys(env)
    volume = None if len(missing) == len(CONF_VOLUME_KEYS) else ConfVolumeAccess(env)
    files = config_files(env.paths, volume=volume, he_shared_cache=env.shared_he_conf)
    if not wanted:
        return list(files.values())
    if wanted == "he_shared" and volume is None:
        raise SharedConfigRefused(_no_shared(env.paths.hosted_engine_conf, missing))
    if wanted not in files:
        raise SharedConfigRefused(f"Invalid configuration type '{wanted}'. Available types are: {', '.join(files)}")
    return [files[wanted]]


def _resolve(key: str, candidates: list[ConfigFile]) -> ConfigFile:
    holders = [f for f in candidates if key in f.keys()]  # noqa: SIM118 - a ConfigFile is no mapping: keys() is all it has
    if len(holders) == 1:
        return holders[0]
    if holders:
        raise SharedConfigRefused(
            f"Duplicate key {key}, please specify the key type. Available types are: {[f.type for f in holders]}"
        )
    lines = [f"Invalid configuration key {key}.", "Available keys are:"]
    lines += [f"{f.type} : {sorted(f.keys())}" for f in candidates]
    raise SharedConfigRefused("\n".join(lines))


def _shared_config(command: str, args: Sequence[str], env: CliEnvironment, *, setting: bool) -> int:
    parsed = Syntax(valued=("--type",), positional=2 if setting else 1, rules=Rules.FIXED).parse(command, args)
    options, values = parsed.options, parsed.values
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
    except (SharedConfigRefused, ConfigError, ConfigValueRejected, ConfigWriteError) as exc:
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
    "        he_shared: the hosted-engine.conf kept on the configuration volume (when\n"
    "                   hosted-engine.conf names one: conf_image_UUID, conf_volume_UUID);\n"
    "                   read by no HA daemon, kept for the deployment tools\n"
    "        ha:        this host's ha.conf (local maintenance flags)\n"
    "        broker:    broker.conf (notifications), keys as section.option,\n"
    "                   e.g. email.smtp-server, notify.state_transition; the configuration\n"
    "                   volume's copy (for every host) when there is one, else this host's\n"
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
        "    and the file is left unchanged. he_shared and a volume-backed broker are\n"
        "    rewritten on the configuration volume under a lock that every host running\n"
        "    he-ha honours; an update that another writer overtook is refused, never lost.\n"
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
