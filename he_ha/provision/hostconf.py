"""hosted-engine.conf for one host, as storage initialisation writes it (pure: text in, text out).

The file is the original's flat ``key=value`` format. We own only the keys we set; an
existing file keeps its other lines (comments, the original deploy's keys) in place, so a
re-run with the same values changes nothing, and a re-run with different values is reported
key by key (the caller refuses it unless forced). The result is checked with the same model
the daemon loads (he_ha.config.HostedEngineConf) before anything is written.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from he_ha.config import ConfigError, HostedEngineConf

NETWORK_TESTS = ("ping", "dns", "tcp", "none")


@dataclass(frozen=True)
class HostConfValues:
    """What initialisation knows about a host. None values are not written."""

    host_id: int
    vmid: str
    metadata_path: Path
    lockspace_path: Path
    fqdn: str | None = None
    vm_conf: Path | None = None  # written as ``conf``
    gateway: str | None = None
    network_test: str | None = None
    bridge: str | None = None
    tcp_address: str | None = None
    tcp_port: int | None = None

    def items(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, object]] = [
            ("host_id", self.host_id),
            ("vmid", self.vmid),
            ("fqdn", self.fqdn),
            ("metadata_path", self.metadata_path),
            ("lockspace_path", self.lockspace_path),
            ("conf", self.vm_conf),
            ("gateway", self.gateway),
            ("network_test", self.network_test),
            ("bridge", self.bridge),
            ("tcp_t_address", self.tcp_address),
            ("tcp_t_port", self.tcp_port),
        ]
        return [(key, str(value)) for key, value in pairs if value is not None]


class ConfChange(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ConfPlan:
    path: Path
    change: ConfChange
    text: str  # the content to write
    conflicts: tuple[str, ...]  # "host_id=2 (would become 3)": existing values we would replace
    added: tuple[str, ...]  # keys the file lacks

    def describe(self) -> str:
        if self.change is ConfChange.CREATE:
            return f"write {self.path}"
        if self.change is ConfChange.UNCHANGED:
            return f"{self.path} is up to date"
        parts = [f"replace {', '.join(self.conflicts)}"] if self.conflicts else []
        parts += [f"add {', '.join(self.added)}"] if self.added else []
        return f"update {self.path}: {'; '.join(parts)}"


def plan_host_conf(path: Path, values: HostConfValues, existing: str | None) -> ConfPlan:
    """The new content of ``path`` given its current text (None: no file). Raises ConfigError
    when the result would not load (e.g. network_test=ping without a gateway)."""
    wanted = dict(values.items())
    lines = [] if existing is None else existing.splitlines()
    found: dict[str, str] = {}  # every key=value line, ours or not: the whole file is validated
    conflicts = []
    for number, raw in enumerate(lines):
        key, sep, value = raw.strip().partition("=")
        key, value = key.strip(), value.strip().strip('"')
        if not sep or raw.lstrip().startswith("#"):
            continue
        found[key] = value
        if key in wanted and value != wanted[key]:
            conflicts.append(f"{key}={value} (would become {wanted[key]})")
            lines[number] = f"{key}={wanted[key]}"
    added = [key for key in wanted if key not in found]
    lines += [f"{key}={wanted[key]}" for key in added]
    _check_loads(path, {key: value for key, value in (found | wanted).items() if value != ""})
    if existing is None:
        change = ConfChange.CREATE
    else:
        change = ConfChange.UNCHANGED if not conflicts and not added else ConfChange.UPDATE
    return ConfPlan(path, change, "\n".join(lines) + "\n", tuple(conflicts), tuple(added))


def _check_loads(path: Path, values: dict[str, str]) -> None:
    try:
        HostedEngineConf.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else None
        raise ConfigError(
            path, f"the written file would not load: {first['msg']}", key=key, value=values.get(key) if key else None
        ) from None
