"""The configuration files ``--get/--set-shared-config`` reach, one ``ConfigFile`` per type.

| type | file | keys |
|---|---|---|
| he_local | hosted-engine.conf (flat key=value) | he-ha's keys (HostedEngineConf) and any key in the file |
| he_shared | member hosted-engine.conf of the configuration volume (cached locally) | the keys in it, and the four optional keys |
| ha | ha.conf (flat key=value) | local_maintenance, local_maintenance_manual and any key in the file |
| broker | broker.conf (INI) | ``section.option``: he-ha's [email] and [notify] options and any in the file |

he_shared exists only when hosted-engine.conf names a configuration volume; then broker.conf
too is the volume's member, and the local broker.conf is its cache (spec
ovirt-host-integration.md §2.3): both are refreshed from the volume when read, and a set
rewrites the member on the volume (under the cross-host lock, he_ha/ovirt/conf_volume.py)
and then the cache. he_shared keeps the original's edit rule (lines and comments kept, a new
key appended without a newline).

A bare broker option means section ``default``, as in the original; he-ha reads no such
section, so such keys exist only if the file has them.

A new value is checked BEFORE anything is written: the whole new text is loaded with the
loader the daemon uses (he_ha.config), so a value the daemon would refuse at start-up is
refused here, naming the key and the value, and the file stays as it was. hosted-engine.conf
and broker.conf are replaced atomically (a scratch file renamed over them, owner and mode
kept); ha.conf is rewritten in place under the lock every ha.conf writer honours
(he_ha/maintenance.py explains why it must not be renamed).
"""

from __future__ import annotations

import asyncio
import configparser
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cli.ini_text import edit_ini_text, ini_values
from he_ha.atomicfile import write_atomically
from he_ha.config import (
    ConfigError,
    ConfigPaths,
    EmailConfig,
    HostedEngineConf,
    LocalMaintenance,
    NotifyConfig,
    load_broker_config,
    load_ha_conf,
    load_hosted_engine_conf,
    parse_flat_file,
)

# The in-place, flock-ed ha.conf rewrite is the maintenance module's; it has no public
# name for updating arbitrary keys yet, so its two building blocks are used directly.
from he_ha.maintenance import MaintenanceFileError, edit_flat_text, update_flat_file
from he_ha.ovirt.conf_archive import edit_shared_hosted_engine_conf

HA_CONF_TIMEOUT = 5.0  # waiting for the ha.conf lock
BARE_SECTION = "default"  # broker.conf: the section of a key without "section."
# hosted-engine.conf keys that may be set although the file lacks them (the original's ENGINE_OPTIONAL_KEYS)
OPTIONAL_KEYS = ("iscsi_paths_blacklist", "network_test", "tcp_t_address", "tcp_t_port")


class ConfigValueRejected(Exception):
    """The new value would make the file invalid for he-ha; nothing was written."""


class ConfigWriteError(Exception):
    """The file could not be read or written."""


class SharedVolume(Protocol):
    """The configuration volume holding the master copy of the shared types."""

    def describe(self) -> str:
        """E.g. "the configuration volume /rhev/.../<VOL>", for messages."""

    def members(self) -> dict[str, str]:
        """The archive's members (read once per command); ConfigError/ConfigWriteError."""

    def update(self, member: str, edit: Callable[[str], str]) -> dict[str, str]:
        """Replace ``member`` by ``edit(its current text)`` on the volume; the new members."""


def _aliases(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Key as written in the file -> he-ha's default for it, as text ("None" if none)."""
    result = {}
    for name, field in model.model_fields.items():
        default = field.default
        result[prefix + (field.alias or name)] = "None" if default in (PydanticUndefined, None) else str(default)
    return result


@dataclass(frozen=True)
class ConfigFile:
    type: str
    path: Path
    defaults: dict[str, str]  # he-ha's keys and what it uses when a key is absent
    _read: Callable[[Path], dict[str, str]]
    _edit: Callable[[str, str, str], str]  # (text, key, value) -> new text
    _load: Callable[[Path], object]  # the daemon's loader: raises ConfigError
    _in_place_locked: bool = False  # ha.conf: rewritten in place under flock, never renamed
    volume: SharedVolume | None = None  # shared types: the master copy is there, ``path`` is its cache
    member: str = ""  # the volume's archive member

    def values(self) -> dict[str, str]:
        """The keys the file holds, with their values; a missing file holds none. A shared
        type's cache is refreshed from the volume first."""
        if self.volume is not None:
            self._cache(self.volume.members()[self.member])
        if not self.path.exists():
            return {}
        return self._read(self.path)

    def keys(self) -> set[str]:
        return set(self.defaults) | set(self.values())

    def get(self, key: str) -> str:
        return self.values().get(key, self.defaults.get(key, "None"))

    def set(self, key: str, value: str) -> None:
        """Validate the new text with the daemon's loader, then write it."""
        if any(char in value for char in "\n\r\0"):
            raise ConfigValueRejected(
                f"Refusing to set {key} to {value!r} in {self.path}: "
                "the value must be one line of text; the file is unchanged"
            )
        if self.volume is not None:
            self._set_shared(self.volume, key, value)
            return
        old = self._text()
        new = self._edit(old, key, value)
        self._validate(key, value, new)
        if self._in_place_locked:
            self._write_locked(key, value)
        else:
            self._replace(new)

    def _set_shared(self, volume: SharedVolume, key: str, value: str) -> None:
        where = volume.describe()

        def edit(text: str) -> str:  # runs on the volume, under its lock, on the text read there
            new = self._edit(text, key, value)
            self._validate(key, value, new, shown=f"{self.member} on {where}", unchanged=where)
            return new

        edit(volume.members()[self.member])  # refuse a bad value before taking the lock (joining takes seconds)
        members = volume.update(self.member, edit)
        try:
            self._cache(members[self.member])
        except ConfigWriteError as exc:
            raise ConfigWriteError(f"{exc} (the value is set on {where}; only the local copy is stale)") from None

    def _cache(self, text: str) -> None:
        """Make the local copy hold ``text`` (written only when it differs)."""
        if self._text() != text:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigWriteError(f"{self.path}: cannot write: {exc}") from None
            self._replace(text)  # several commands may refresh a cache at once: each has its own scratch file

    def _text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigWriteError(f"{self.path}: cannot read: {exc}") from None

    def _validate(
        self, key: str, value: str, text: str, *, shown: str | None = None, unchanged: str | None = None
    ) -> None:
        """Load ``text`` with the daemon's loader; errors name ``shown`` (default: the file)."""
        with tempfile.TemporaryDirectory(prefix="he-ha-config-") as scratch:
            candidate = Path(scratch) / self.path.name
            candidate.write_text(text, encoding="utf-8")
            try:
                self._load(candidate)
            except ConfigError as exc:
                why = str(exc).replace(str(candidate), shown or str(self.path))
                raise ConfigValueRejected(
                    f"Refusing to set {key} to {value!r}: the file would be invalid: {why}; "
                    f"{unchanged or self.path} is unchanged"
                ) from None

    def _replace(self, text: str) -> None:
        target = self.path.resolve()  # through a symlink: replace the file, keep the link
        try:
            # An existing file keeps its mode and owner, set before the rename (he_ha/atomicfile.py).
            write_atomically(target, text, mode=None if target.exists() else 0o644)
        except OSError as exc:
            raise ConfigWriteError(f"{target}: cannot write: {exc}") from None

    def _write_locked(self, key: str, value: str) -> None:
        try:
            asyncio.run(update_flat_file(self.path, {key: value}, timeout=HA_CONF_TIMEOUT))
        except (MaintenanceFileError, ConfigError) as exc:
            raise ConfigWriteError(str(exc)) from None


def _flat_edit(text: str, key: str, value: str) -> str:
    return edit_flat_text(text, {key: value})


def _read_broker(path: Path) -> dict[str, str]:
    """``section.option`` keys; section ``default``'s options as bare keys."""
    try:
        values = ini_values(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read: {exc}") from None
    except configparser.Error as exc:
        raise ConfigError(path, f"not a valid INI file: {exc}") from None
    return {key.removeprefix(f"{BARE_SECTION}."): value for key, value in values.items()}


def _broker_edit(text: str, key: str, value: str) -> str:
    section, dot, option = key.partition(".")
    if not dot:
        section, option = BARE_SECTION, key
    return edit_ini_text(text, section, option, value)


def config_files(
    paths: ConfigPaths, *, volume: SharedVolume | None = None, he_shared_cache: Path | None = None
) -> dict[str, ConfigFile]:
    """The writable types, in the order the original listed them. With ``volume`` (this
    host's hosted-engine.conf names a configuration volume): he_shared too, cached at
    ``he_shared_cache``, and broker backed by the volume's broker.conf."""
    files = {
        "he_local": ConfigFile(
            "he_local",
            paths.hosted_engine_conf,
            _aliases(HostedEngineConf),
            parse_flat_file,
            _flat_edit,
            load_hosted_engine_conf,
        ),
    }
    if volume is not None:
        if he_shared_cache is None:
            raise ValueError("a configuration volume needs the path of the he_shared cache")
        files["he_shared"] = ConfigFile(
            "he_shared",
            he_shared_cache,
            dict.fromkeys(OPTIONAL_KEYS, "None"),
            parse_flat_file,
            edit_shared_hosted_engine_conf,
            load_hosted_engine_conf,
            volume=volume,
            member="hosted-engine.conf",
        )
    files["ha"] = ConfigFile(
        "ha",
        paths.ha_conf,
        _aliases(LocalMaintenance),
        parse_flat_file,
        _flat_edit,
        load_ha_conf,
        _in_place_locked=True,
    )
    files["broker"] = ConfigFile(
        "broker",
        paths.broker_conf,
        _aliases(EmailConfig, "email.") | _aliases(NotifyConfig, "notify."),
        _read_broker,
        _broker_edit,
        load_broker_config,
        volume=volume,
        member="broker.conf",
    )
    return files
