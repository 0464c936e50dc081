"""Simulation scenarios: hosts, simulator parameters, timing overrides and scripted events,
loaded from YAML (see docs/fsm.md "Scenario format"). Bad input raises ``ScenarioError``
naming the offending key or event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from he_ha.config import ScoreConfig
from he_ha.fsm.timing import TimingConfig, TimingError


class ScenarioError(ValueError):
    """A scenario file or mapping is invalid; the message names where."""


@dataclass(frozen=True, slots=True)
class SimParams:
    """How the simulated world behaves (not the FSM: that is TimingConfig)."""

    io_timeout: float = 10.0  # sanlock io_timeout: renewal every 2x, recovery at 8x
    watchdog_fire_timeout: float = 60.0  # host_dead = 8 * io_timeout + this (140 s by default)
    lockspace_join_time: float = 20.0  # add_lockspace duration
    host_boot_time: float = 60.0  # power-on to supervisor start
    supervisor_restart_time: float = 10.0  # systemd RestartSec
    monitor_warmup: float = 5.0  # engine-health has no value this long after the supervisor starts
    vm_start_time: float = 2.0  # lease acquire + launch
    vm_boot_time: float = 60.0  # launch to a healthy engine
    vm_shutdown_time: float = 30.0  # graceful shutdown of a responsive guest
    vm_destroy_time: float = 1.0
    vm_migrate_time: float = 15.0
    sanlock_status: bool = True  # hand sanlock's host status and the lease owner to the FSM

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "sanlock_status" and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise ScenarioError(f"sim.{f.name} must be a number >= 0, got {value!r}")

    @property
    def renewal_interval(self) -> float:
        return 2 * self.io_timeout

    @property
    def recovery_time(self) -> float:
        """After this long without a renewal sanlock kills the lease holders (its recovery)."""
        return 8 * self.io_timeout

    @property
    def host_dead_time(self) -> float:
        return 8 * self.io_timeout + self.watchdog_fire_timeout


@dataclass(frozen=True, slots=True)
class HostSpec:
    id: int
    hostname: str
    read_period: float = 10.0  # whiteboard read period
    tick_phase: float = 0.0  # first tick offset after joining
    clock_offset: float = 0.0  # this host's monotonic clock at t=0 (hosts never agree)
    free_memory_mib: float = 16384.0
    vm_memory_mib: int = 4096
    cpu_load: float = 0.0
    powered: bool = True
    priority: int = 0  # host priority (issue 14): higher is preferred (hosted-engine.conf he_ha_priority)
    # This host's libvirt refuses incoming live migrations, as a real host does without the
    # QEMU lease holder and libvirt's sanlock lock manager (docs/supervisor.md, "Live migration").
    refuses_migration: bool = False


# command -> (needs a host, takes a value)
COMMANDS: dict[str, tuple[bool, bool]] = {
    "power-off": (True, False),
    "power-on": (True, False),
    "vm-crash": (False, False),  # the VM, wherever it runs (or on `host` if given)
    "engine-hang": (False, False),
    "engine-recover": (False, False),
    # The engine (this VM and any later one) answers its health page but is not ready: a long
    # start or a database upgrade; engine-ready ends it. Slow is not dead (issue 14).
    "engine-slow": (False, False),
    "engine-ready": (False, False),
    "engine-migrate": (True, False),  # the engine live-migrates its own VM to `host`
    "hypervisor-hang": (True, False),  # libvirt stops answering: VM state unknown, VM actions fail
    "hypervisor-recover": (True, False),
    "gateway-loss": (True, False),
    "gateway-restore": (True, False),
    "network": (True, True),  # value: fraction of successful probes
    "storage-stall": (True, False),
    "storage-resume": (True, False),
    "global-maintenance": (False, True),  # value: true / false
    "local-maintenance": (True, True),
    "supervisor-restart": (True, False),
    # The administrator, by hand (issue 14, hands-off global maintenance): start the VM on
    # `host` through he-ha's admin API (hosted-engine --vm-start: the lease first, refused if
    # another host holds it), start it outside he-ha without the lease (virsh, VDSM), or shut
    # the VM down (wherever it runs, or on `host`).
    "admin-vm-start": (True, False),
    "admin-vm-start-unleased": (True, False),
    "admin-vm-stop": (False, False),
}


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    do: str
    host: int | None = None
    value: Any = None

    def describe(self) -> str:
        parts = [self.do]
        if self.host is not None:
            parts.append(f"host{self.host}")
        if self.value is not None:
            parts.append(str(self.value).lower())
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    hosts: tuple[HostSpec, ...]
    events: tuple[Event, ...]
    until: float
    description: str = ""
    sim: SimParams = field(default_factory=SimParams)
    timing: TimingConfig = field(default_factory=TimingConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def to_mapping(self) -> dict[str, Any]:
        """The YAML form (used to print the schedule of a failing random run)."""
        defaults = HostSpec(0, "")
        return {
            "name": self.name,
            "description": self.description,
            "until": self.until,
            "hosts": [
                {
                    f.name: getattr(h, f.name)
                    for f in fields(h)
                    if f.name in ("id", "hostname") or getattr(h, f.name) != getattr(defaults, f.name)
                }
                for h in self.hosts
            ],
            "sim": _changed(self.sim, SimParams()),
            "timing": _changed(self.timing, TimingConfig()),
            "score": self.score.model_dump(by_alias=True, exclude_defaults=True),
            "events": [
                {k: v for k, v in (("at", e.at), ("do", e.do), ("host", e.host), ("value", e.value)) if v is not None}
                for e in self.events
            ],
        }


def _changed(obj: Any, default: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if getattr(obj, f.name) != getattr(default, f.name)}


def load_scenario(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    name = path.parent.name if path.name == "events.yaml" else path.stem
    try:
        return parse_scenario(data, default_name=name)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


_TOP_KEYS = {"name", "description", "hosts", "events", "until", "sim", "timing", "score"}


def parse_scenario(data: object, default_name: str = "scenario") -> Scenario:
    if not isinstance(data, Mapping):
        raise ScenarioError("a scenario is a mapping with keys: " + ", ".join(sorted(_TOP_KEYS)))
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ScenarioError(f"unknown key(s) {sorted(unknown)}; known keys: {', '.join(sorted(_TOP_KEYS))}")
    hosts = _hosts(data.get("hosts", 2))
    until = _number(data.get("until", 900), "until")
    sim = _build(SimParams, data.get("sim") or {}, "sim")
    try:
        timing = TimingConfig.from_mapping(_mapping(data.get("timing") or {}, "timing"))
    except (TimingError, TypeError) as exc:
        raise ScenarioError(f"timing: {exc}") from None
    try:
        score = ScoreConfig.model_validate(_mapping(data.get("score") or {}, "score"))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ScenarioError(f"score: {first['loc'][0] if first['loc'] else ''}: {first['msg']}") from None
    ids = {h.id for h in hosts}
    events = tuple(
        sorted((_event(e, i, ids) for i, e in enumerate(_list(data.get("events") or [], "events"))), key=lambda e: e.at)
    )
    return Scenario(
        name=str(data.get("name", default_name)),
        hosts=hosts,
        events=events,
        until=until,
        description=str(data.get("description", "")).strip(),
        sim=sim,
        timing=timing,
        score=score,
    )


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where} must be a mapping, got {value!r}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where} must be a list, got {value!r}")
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ScenarioError(f"{where} must be a number >= 0, got {value!r}")
    return float(value)


def _build(cls: type, values: object, where: str) -> Any:
    mapping = _mapping(values, where)
    known = {f.name for f in fields(cls)}
    for key in mapping:
        if key not in known:
            raise ScenarioError(f"unknown key {where}.{key}; known keys: {', '.join(sorted(known))}")
    try:
        return cls(**mapping)
    except TypeError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _hosts(value: object) -> tuple[HostSpec, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 50:
            raise ScenarioError(f"hosts must be 1..50, got {value}")
        # Distinct clocks and tick phases, as on real hosts.
        return tuple(
            HostSpec(i, f"host{i}", tick_phase=1.5 * (i - 1), clock_offset=1000.0 * i + 37.0 * i * i)
            for i in range(1, value + 1)
        )
    specs = []
    for i, item in enumerate(_list(value, "hosts")):
        spec = _build(HostSpec, {"hostname": f"host{_mapping(item, f'hosts[{i}]').get('id')}", **item}, f"hosts[{i}]")
        if isinstance(spec.id, bool) or not isinstance(spec.id, int) or spec.id < 1:
            raise ScenarioError(f"hosts[{i}].id must be a positive integer, got {spec.id!r}")
        if isinstance(spec.priority, bool) or not isinstance(spec.priority, int):
            raise ScenarioError(f"hosts[{i}].priority must be an integer, got {spec.priority!r}")
        if not isinstance(spec.refuses_migration, bool):
            raise ScenarioError(f"hosts[{i}].refuses_migration must be true or false, got {spec.refuses_migration!r}")
        specs.append(spec)
    if len({s.id for s in specs}) != len(specs) or not specs:
        raise ScenarioError("hosts need distinct ids (and at least one host)")
    return tuple(sorted(specs, key=lambda s: s.id))


def _event(item: object, index: int, ids: set[int]) -> Event:
    where = f"events[{index}]"
    mapping = _mapping(item, where)
    unknown = set(mapping) - {"at", "do", "host", "value"}
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}; an event has at, do, host, value")
    command = mapping.get("do")
    if command not in COMMANDS:
        raise ScenarioError(f"{where}: unknown command {command!r}; known: {', '.join(sorted(COMMANDS))}")
    needs_host, needs_value = COMMANDS[command]
    host = mapping.get("host")
    if host is not None and host not in ids:
        raise ScenarioError(f"{where}: {command} names host {host!r}, which is not in hosts {sorted(ids)}")
    if needs_host and host is None:
        raise ScenarioError(f"{where}: {command} needs 'host'")
    value = mapping.get("value")
    if needs_value and value is None:
        raise ScenarioError(f"{where}: {command} needs 'value'")
    if command == "network" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
        raise ScenarioError(f"{where}: network value must be a fraction 0..1, got {value!r}")
    if command.endswith("maintenance") and not isinstance(value, bool):
        raise ScenarioError(f"{where}: {command} value must be true or false, got {value!r}")
    return Event(_number(mapping.get("at"), f"{where}.at"), command, host, value)
