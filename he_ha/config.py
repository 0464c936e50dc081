"""Loading the configuration files the oVirt HA daemons used, unchanged on disk.

Files (spec §10): hosted-engine.conf (flat key=value), agent.conf ``[score]``,
broker.conf ``[email]``/``[notify]``, ha.conf (local maintenance) and vm.conf.
Every loader takes an explicit path; ``ConfigPaths`` holds the production defaults.
A bad file raises ``ConfigError`` naming the file, the key and the offending value.
In agent.conf and broker.conf, keys he-ha does not use (leftovers of the original) are
ignored with one warning per file; only the values of keys he-ha uses are checked.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import difflib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_HOST_ID = 2000
# Host priority (issue 14): hosted-engine.conf he_ha_priority, published in the slot's extra text.
MIN_PRIORITY, MAX_PRIORITY, DEFAULT_PRIORITY = -1000, 1000, 0


class ConfigError(Exception):
    """A configuration file is missing, unreadable or holds an invalid value."""

    def __init__(self, path: Path | str, message: str, key: str | None = None, value: object = None):
        self.path = Path(path)
        self.key = key
        self.value = value
        where = f"{self.path}"
        if key is not None:
            where += f": key {key!r}"
            if value is not None:
                where += f" = {value!r}"
        super().__init__(f"{where}: {message}")


def to_bool(text: str) -> bool:
    """The original's rule: first character t/y/1 is true, f/n/0 is false, else invalid."""
    first = text.strip()[:1].lower()
    if first in ("t", "y", "1"):
        return True
    if first in ("f", "n", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


class ConfigPaths(BaseModel):
    """Where each file lives. Production defaults; tests and demos override every one."""

    model_config = ConfigDict(frozen=True)

    hosted_engine_conf: Path = Path("/etc/ovirt-hosted-engine/hosted-engine.conf")
    agent_conf: Path = Path("/etc/ovirt-hosted-engine-ha/agent.conf")
    broker_conf: Path = Path("/var/lib/ovirt-hosted-engine-ha/broker.conf")
    ha_conf: Path = Path("/var/lib/ovirt-hosted-engine-ha/ha.conf")


# --- flat key=value files -------------------------------------------------------------


def parse_flat_file(path: Path) -> dict[str, str]:
    """Parse ``key=value`` lines: ``#`` comments, blank lines, optional double quotes.

    Split on the first ``=`` with both sides stripped, as the original did. A line
    without ``=`` is an error (the original skipped it silently).
    """
    text = _read_text(path)
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(path, f"line {number} is not 'key=value': {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key] = value
    return values


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror}") from None


def _validate(model: type[BaseModel], path: Path, data: dict[str, Any]) -> Any:
    """Validate and turn pydantic's error into a ConfigError naming file, key and value.

    pydantic reports the location by alias, which is the key as written in the file.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else None
        value = data.get(key) if key is not None else None
        message = "required key is missing or empty" if first["type"] == "missing" else first["msg"]
        raise ConfigError(path, message, key=key, value=value) from None


# --- hosted-engine.conf -------------------------------------------------------------------


NetworkTest = Literal["ping", "dns", "tcp", "none"]


class HostedEngineConf(BaseModel):
    """The keys of /etc/ovirt-hosted-engine/hosted-engine.conf that he-ha reads (spec §10.1).

    The shared volumes are found from ``storage``, ``domainType``, ``sdUUID`` and the
    ``*_image_UUID``/``*_volume_UUID`` keys by VDSM's storage-domain layout
    (he_ha/ovirt/layout.py). he-ha additions (ignored by the oVirt daemons, which read
    missing keys as None): ``metadata_path``, ``lockspace_path`` and
    ``vm_lease_path``/``vm_lease_offset`` name volumes directly and override that lookup;
    ``he_ha_priority`` is this host's priority (issue 14: an integer from -1000 to 1000,
    higher is preferred, default 0; docs/fsm.md "Host priorities").
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    host_id: int = Field(ge=1, le=MAX_HOST_ID)
    configured: bool = True
    sd_uuid: str | None = Field(default=None, alias="sdUUID")
    sp_uuid: str = Field(default="00000000-0000-0000-0000-000000000000", alias="spUUID")
    domain_type: str | None = Field(default=None, alias="domainType")
    gateway: str | None = None
    network_test: NetworkTest = "ping"
    tcp_t_address: str | None = None
    tcp_t_port: int | None = Field(default=None, ge=1, le=65535)
    bridge: str | None = None
    vmid: str | None = None
    fqdn: str | None = None
    vm_conf: Path = Field(default=Path("/var/run/ovirt-hosted-engine-ha/vm.conf"), alias="conf")
    storage: str | None = None  # the storage connection, e.g. nfs.example.com:/exports/he
    metadata_image_uuid: str | None = Field(default=None, alias="metadata_image_UUID")
    metadata_volume_uuid: str | None = Field(default=None, alias="metadata_volume_UUID")
    lockspace_image_uuid: str | None = Field(default=None, alias="lockspace_image_UUID")
    lockspace_volume_uuid: str | None = Field(default=None, alias="lockspace_volume_UUID")
    conf_image_uuid: str | None = Field(default=None, alias="conf_image_UUID")
    conf_volume_uuid: str | None = Field(default=None, alias="conf_volume_UUID")
    metadata_path: Path | None = None
    lockspace_path: Path | None = None
    vm_lease_path: Path | None = None
    vm_lease_offset: int | None = Field(default=None, ge=0)
    he_ha_priority: int = DEFAULT_PRIORITY

    @field_validator("configured", mode="before")
    @classmethod
    def _configured_is_exactly_true(cls, value: object) -> bool:
        # The original: present and not exactly "True" means "not configured".
        return value is True or value == "True"

    @field_validator("he_ha_priority", mode="before")
    @classmethod
    def _priority_in_range(cls, value: object) -> int:
        text = str(value).strip()
        number = int(text) if re.fullmatch(r"[+-]?[0-9]{1,4}", text) and not isinstance(value, bool) else None
        if number is None or not MIN_PRIORITY <= number <= MAX_PRIORITY:
            raise ValueError(
                f"must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY} (higher is preferred, default "
                f"{DEFAULT_PRIORITY})"
            )
        return number

    @field_validator("network_test", mode="before")
    @classmethod
    def _empty_test_means_ping(cls, value: object) -> object:
        return "ping" if value in ("", None) else value

    @model_validator(mode="after")
    def _test_has_its_target(self) -> HostedEngineConf:
        if self.network_test == "ping" and not self.gateway:
            raise ValueError("network_test=ping needs 'gateway'")
        if self.network_test == "tcp" and (not self.tcp_t_address or self.tcp_t_port is None):
            raise ValueError("network_test=tcp needs 'tcp_t_address' and 'tcp_t_port'")
        return self

    @property
    def conf_is_up_to_date(self) -> bool:
        """A blank storage pool UUID means the post-3.6 layout (spec §6.7)."""
        return self.sp_uuid == "00000000-0000-0000-0000-000000000000"


def load_hosted_engine_conf(path: Path) -> HostedEngineConf:
    # Deploy writes optional keys with empty values (``tcp_t_port=``): empty means absent,
    # and so does the text "None" (the original's broker treats both alike, spec §10.1).
    values = {key: value for key, value in parse_flat_file(path).items() if value not in ("", "None")}
    return _validate(HostedEngineConf, path, values)


# --- agent.conf [score] ---------------------------------------------------------------------


class ScoreConfig(BaseModel):
    """agent.conf ``[score]`` (spec §4.1). All hosts of a cluster must use the same values."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    base_score: int = Field(3400, ge=0, alias="base-score")
    network_score_penalty: int = Field(1600, ge=0, alias="network-score-penalty")
    not_uptodate_config_penalty: int = Field(1000, ge=0, alias="not-uptodate-config-penalty")
    mgmt_bridge_score_penalty: int = Field(600, ge=0, alias="mgmt-bridge-score-penalty")
    free_memory_score_penalty: int = Field(400, ge=0, alias="free-memory-score-penalty")
    cpu_load_score_penalty: int = Field(1000, ge=0, alias="cpu-load-score-penalty")
    engine_retry_score_penalty: int = Field(50, ge=0, alias="engine-retry-score-penalty")
    cpu_load_penalty_min: float = Field(0.4, ge=0.0, le=1.0, alias="cpu-load-penalty-min")
    cpu_load_penalty_max: float = Field(0.9, ge=0.0, le=1.0, alias="cpu-load-penalty-max")

    @model_validator(mode="after")
    def _min_not_above_max(self) -> ScoreConfig:
        if self.cpu_load_penalty_min > self.cpu_load_penalty_max:
            raise ValueError("cpu-load-penalty-min is above cpu-load-penalty-max")
        return self


_DEFAULT_SECTION = "DEFAULT"
_NO_DEFAULT_SECTION = "\0"  # no header can name it: configparser then keeps [DEFAULT] as it is

# Keys the original's releases knew that he-ha does not use: named as such in the warning.
LEGACY_INI_KEYS: dict[tuple[str, str], str] = {
    ("score", "gateway-score-penalty"): "left from an older release (network-score-penalty replaced it); ignored",
}


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    """Every section with its own keys, ``[DEFAULT]`` included as a section of its own."""
    parser = configparser.ConfigParser(interpolation=None, default_section=_NO_DEFAULT_SECTION)
    try:
        parser.read_string(_read_text(path), source=str(path))
    except configparser.Error as exc:
        raise ConfigError(path, f"not a valid INI file: {exc.message}") from None
    return {name: dict(parser.items(name)) for name in parser.sections()}


def _ini_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _ini_sections(path: Path, sections: dict[str, type[BaseModel]]) -> dict[str, dict[str, str]]:
    """The keys he-ha uses, per section; every other key of the file is named in ONE warning.

    Files kept from the original carry keys he-ha does not use (older releases' keys, other
    sections): they are ignored, not fatal. Their values are never looked at. ``[DEFAULT]``
    keys apply to every section present, as configparser (and so the original) has it.
    """
    raw = _read_ini(path)
    defaults = raw.pop(_DEFAULT_SECTION, {})
    values: dict[str, dict[str, str]] = {}
    used_defaults: set[str] = set()
    ignored: dict[str, tuple[str, str]] = {}  # "[section] key" -> (section, key)
    for section, model in sections.items():
        known = set(_ini_keys(model))
        own = raw.pop(section, None)
        values[section] = {} if own is None else {k: v for k, v in {**defaults, **own}.items() if k in known}
        if own is not None:
            used_defaults |= known & defaults.keys()
            ignored.update({f"[{section}] {k}": (section, k) for k in own if k not in known})
    ignored.update({f"[{_DEFAULT_SECTION}] {k}": (_DEFAULT_SECTION, k) for k in defaults if k not in used_defaults})
    for section, own in raw.items():
        ignored.update({f"[{section}] {k}": (section, k) for k in own})
    if ignored:
        _warn_ignored(path, ignored, sections)
    return values


def _warn_ignored(path: Path, ignored: dict[str, tuple[str, str]], sections: dict[str, type[BaseModel]]) -> None:
    legacy = {name: LEGACY_INI_KEYS[where] for name, where in ignored.items() if where in LEGACY_INI_KEYS}
    typos: dict[str, str] = {}
    for name, (section, key) in ignored.items():
        model = sections.get(section)
        if model is not None and name not in legacy:
            known = _ini_keys(model)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
            if close:
                typos[name] = close[0]
    extra: dict[str, object] = {}
    if legacy:
        extra["legacy"] = legacy
    if typos:
        extra["did_you_mean"] = typos
    import structlog  # here: `hosted-engine --vm-status` loads this module and never logs (issue 16 item 2)

    log = structlog.get_logger(__name__)
    log.warning("ignoring configuration keys he-ha does not use", path=str(path), keys=sorted(ignored), **extra)


def load_score_config(path: Path) -> ScoreConfig:
    """agent.conf; a missing file means all defaults (the file is optional).

    Keys he-ha does not use (``gateway-score-penalty`` of older releases, other sections) are
    ignored with one warning; a bad value of a key it uses raises ``ConfigError``.
    """
    if not path.exists():
        return ScoreConfig()
    return _validate(ScoreConfig, path, _ini_sections(path, {"score": ScoreConfig})["score"])


# --- broker.conf [email] / [notify] ---------------------------------------------------------


SMTPS_PORT = 465  # SMTP over implicit TLS (RFC 8314): TLS from the first byte


class EmailConfig(BaseModel):
    """broker.conf ``[email]`` (spec §8), plus TLS and authentication (he-ha additions).

    ``smtps``: SMTP over implicit TLS; unset: on exactly when ``smtp-port`` is 465, where
    a plain SMTP greeting can never work. ``smtp-ca-file``: a PEM bundle trusted instead of
    the system's CAs (a relay with a certificate from a private CA), for SMTPS and STARTTLS.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    smtp_server: str = Field("localhost", alias="smtp-server")
    smtp_port: int = Field(25, ge=1, le=65535, alias="smtp-port")
    smtp_timeout: float = Field(10.0, gt=0, alias="smtp-timeout")
    destination_emails: str = Field("root@localhost", alias="destination-emails")
    source_email: str = Field("root@localhost", alias="source-email")
    smtp_starttls: bool = Field(False, alias="smtp-starttls")
    smtps: bool | None = Field(None, alias="smtps")
    smtp_ca_file: Path | None = Field(None, alias="smtp-ca-file")
    smtp_user: str | None = Field(None, alias="smtp-user")
    smtp_password: str | None = Field(None, alias="smtp-password")

    @field_validator("smtp_starttls", "smtps", mode="before")
    @classmethod
    def _bool_text(cls, value: object) -> object:
        return to_bool(value) if isinstance(value, str) else value

    @field_validator("smtp_ca_file", mode="before")
    @classmethod
    def _absolute_path(cls, value: object) -> object:
        if isinstance(value, str) and value and not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value or None

    @model_validator(mode="after")
    def _one_tls_mode(self) -> EmailConfig:
        if self.implicit_tls and self.smtp_starttls:
            raise ValueError("smtps (TLS from the start) and smtp-starttls (TLS after the greeting) exclude each other")
        return self

    @property
    def implicit_tls(self) -> bool:
        return self.smtp_port == SMTPS_PORT if self.smtps is None else self.smtps

    @property
    def uses_tls(self) -> bool:
        return self.implicit_tls or self.smtp_starttls

    @property
    def destinations(self) -> list[str]:
        return [a.strip() for a in self.destination_emails.split(",") if a.strip()]


class NotifyConfig(BaseModel):
    """broker.conf ``[notify]``: which state transitions are mailed (a regex over 'Old-New'),
    and (he-ha, issue 14) which alerts: ``ha_alert``, a regex over the alert kind
    (he_ha.fsm.alerts), every alert by default, none when empty. The original ignores it."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    state_transition: str = "maintenance|start|stop|migrate|up|down"
    ha_alert: str = "."

    @field_validator("state_transition", "ha_alert")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class BrokerConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    email: EmailConfig = EmailConfig()
    notify: NotifyConfig = NotifyConfig()


def load_broker_config(path: Path) -> BrokerConfig:
    """broker.conf; a missing file means the package defaults.

    Only ``[email]`` and ``[notify]`` keys he-ha knows are read; every other key or section is
    ignored with one warning. A bad value of a key he-ha uses raises ``ConfigError``.
    """
    if not path.exists():
        return BrokerConfig()
    values = _ini_sections(path, {"email": EmailConfig, "notify": NotifyConfig})
    email = _validate(EmailConfig, path, values["email"])
    notify = _validate(NotifyConfig, path, values["notify"])
    return BrokerConfig(email=email, notify=notify)


# --- ha.conf --------------------------------------------------------------------------------------


class LocalMaintenance(BaseModel):
    """ha.conf: effective local maintenance is ``local_maintenance OR local_maintenance_manual``."""

    model_config = ConfigDict(frozen=True)

    local_maintenance: bool = False
    local_maintenance_manual: bool = False

    @property
    def active(self) -> bool:
        return self.local_maintenance or self.local_maintenance_manual


def load_ha_conf(path: Path) -> LocalMaintenance:
    """ha.conf; a missing file means no local maintenance (the shipped file says False)."""
    if not path.exists():
        return LocalMaintenance()
    values = parse_flat_file(path)
    flags: dict[str, bool] = {}
    for key in ("local_maintenance", "local_maintenance_manual"):
        if key in values:
            try:
                flags[key] = to_bool(values[key])
            except ValueError:
                raise ConfigError(path, "expected True or False", key=key, value=values[key]) from None
    return LocalMaintenance(**flags)


# --- vm.conf ----------------------------------------------------------------------------------------


class VmConf(BaseModel):
    """vm.conf (spec §6.5): he-ha reads the VM id, its memory size and the libvirt XML."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    vm_id: str = Field(alias="vmId", min_length=1)
    mem_size_mib: int = Field(alias="memSize", gt=0)
    vm_name: str | None = Field(None, alias="vmName")
    xml_base64: str | None = Field(None, alias="xmlBase64")

    @field_validator("xml_base64")
    @classmethod
    def _decodes(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError(f"not base64-encoded UTF-8 XML: {exc}") from None
        return value

    @property
    def domain_xml(self) -> str | None:
        return None if self.xml_base64 is None else base64.b64decode(self.xml_base64).decode("utf-8")


def load_vm_conf(path: Path) -> VmConf:
    return _validate(VmConf, path, parse_flat_file(path))


# --- everything a host needs --------------------------------------------------------------------


class HostConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    paths: ConfigPaths
    engine: HostedEngineConf
    score: ScoreConfig
    broker: BrokerConfig


def load_host_config(paths: ConfigPaths) -> HostConfig:
    """Load the files read once at start-up. ha.conf and vm.conf are re-read while running."""
    return HostConfig(
        paths=paths,
        engine=load_hosted_engine_conf(paths.hosted_engine_conf),
        score=load_score_config(paths.agent_conf),
        broker=load_broker_config(paths.broker_conf),
    )
