"""The state_transition mail template (spec §8): Python ``str.format`` fields, as the original.

Fields:
- ``{time}``: when the transition happened, local time with the UTC offset (ISO 8601);
- ``{type}``: the event type, ``state_transition`` (the template's file name);
- ``{hostname}``, ``{detail}``, as the original;
- every broker.conf ``[email]`` key by its hyphenated name (``{source-email}``,
  ``{destination-emails}``, ``{smtp-server}``, ``{smtp-port}``, ``{smtp-timeout}``), and our
  additions ``{smtp-starttls}``, ``{smtps}``, ``{smtp-ca-file}``, ``{smtp-user}``.
``smtp-password`` is deliberately NOT a field: a template must not be able to mail it.

The template is checked once, when it is loaded (at start-up). A text that is not valid
``str.format`` syntax, or a known field with a format spec its value cannot take, is a
``TemplateError`` naming the file. A field he-ha does not know (``{foo}``, ``{0}``,
``{hostname.upper}``, ``{smtp-password}``) is not fatal: it is named in one warning and
mailed as written, so a template kept from the original never stops the HA service.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog

from he_ha.config import EmailConfig

log = structlog.get_logger(__name__)

DEFAULT_TEMPLATE_PATH = Path("/etc/ovirt-hosted-engine-ha/notifications/state_transition.txt")
BUILTIN_SOURCE = "<built-in template>"
EVENT_TYPE = "state_transition"  # the only event type the original had
# he-ha's alerts (issue 14: HA gave up, a VM without its lease in global maintenance, ...):
# their own template, {detail} = "<kind>: <reason>", {type} = ha_alert.
ALERT_EVENT_TYPE = "ha_alert"
DEFAULT_ALERT_TEMPLATE_PATH = Path("/etc/ovirt-hosted-engine-ha/notifications/ha_alert.txt")
BUILTIN_ALERT_SOURCE = "<built-in alert template>"

# Headers, a blank line, then the body: the text is parsed as an RFC 5322 message.
BUILTIN_TEMPLATE = """\
From: {source-email}
To: {destination-emails}
Subject: ovirt-hosted-engine state transition {detail}

The hosted-engine high-availability service on {hostname} moved from one state to
another: {detail}

You get this mail because the transition matches the [notify] state_transition rule of
broker.conf. Edit that rule to choose which transitions are mailed.
"""

BUILTIN_ALERT_TEMPLATE = """\
From: {source-email}
To: {destination-emails}
Subject: ovirt-hosted-engine ALERT on {hostname}: {detail}

The hosted-engine high-availability service on {hostname} raised an alert at {time}:

{detail}

This needs an administrator: see docs/notifications.md for what each alert means. Alerts
are mailed whatever the [notify] state_transition rule selects; the [notify] ha_alert rule
of broker.conf (a regular expression over the alert kind) chooses which, empty for none.
"""

_HIDDEN_KEYS = frozenset({"smtp-password"})
_SAMPLE_TIME = 0.0  # the trial render's event time


class TemplateError(ValueError):
    """A template cannot be read, is not ``str.format`` syntax, or cannot be formatted."""

    def __init__(self, source: str, message: str, field: str | None = None) -> None:
        self.source = source
        self.field = field
        super().__init__(f"notification template {source}: {message}")


def field_names() -> list[str]:
    """Every field a template may use."""
    email_keys = (f.alias or name for name, f in EmailConfig.model_fields.items())
    return ["time", "type", "hostname", "detail", *(k for k in email_keys if k not in _HIDDEN_KEYS)]


@dataclass(frozen=True)
class Template:
    text: str  # as written
    source: str  # the file it came from, or BUILTIN_SOURCE
    unknown_fields: tuple[str, ...] = field(init=False)  # mailed as written, e.g. "foo" for {foo}
    _fillable: str = field(init=False, repr=False, compare=False)  # text with the unknown fields escaped

    def __post_init__(self) -> None:
        fillable, unknown = _escape_unknown_fields(self.text, self.source)
        object.__setattr__(self, "_fillable", fillable)
        object.__setattr__(self, "unknown_fields", unknown)

    def render(self, fields: dict[str, str]) -> str:
        try:
            return self._fillable.format(**fields)
        except KeyError as exc:  # a caller that passed fewer fields than field_names()
            name = str(exc.args[0])
            raise TemplateError(self.source, f"no value for field {{{name}}}", field=name) from None
        except ValueError as exc:
            raise TemplateError(self.source, f"cannot be formatted: {exc}") from None


def _escape_unknown_fields(text: str, source: str) -> tuple[str, tuple[str, ...]]:
    """``text`` with every field he-ha cannot fill turned into literal text, and those fields.

    A known field whose format spec nests an unknown one (``{detail:{width}}``) is kept as
    written too.
    """
    known = set(field_names())
    parts: list[str] = []
    unknown: list[str] = []
    try:
        for literal, name, spec, conversion in string.Formatter().parse(text):
            parts.append(_literal(literal))
            if name is None:
                continue
            nested = [n for _, n, _, _ in string.Formatter().parse(spec or "") if n is not None]
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            missing = [n for n in (name, *nested) if n not in known]
            if missing:
                unknown.extend(n for n in missing if n not in unknown)
                parts.append(_literal(written))
            else:
                parts.append(written)
    except ValueError as exc:
        raise TemplateError(source, f"is not a valid format string: {exc}") from None
    return "".join(parts), tuple(unknown)


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def template_fields(
    email: EmailConfig, hostname: str, detail: str, *, when: float, event_type: str = EVENT_TYPE
) -> dict[str, str]:
    """The values of every field; ``when`` is the event's wall-clock time (``time.time()``)."""
    values: dict[str, str] = {"time": event_time(when), "type": event_type, "hostname": hostname, "detail": detail}
    for name, info in EmailConfig.model_fields.items():
        key = info.alias or name
        if key in _HIDDEN_KEYS:
            continue
        values[key] = _as_text(getattr(email, name))
    values["smtps"] = _as_text(email.implicit_tls)  # unset means "on for port 465": the value in effect
    return values


def event_time(when: float) -> str:
    """``{time}``: local time with the UTC offset, to the second, e.g. 2024-05-02T14:03:07+02:00."""
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"  # smtp-timeout=10 renders as "10", as written in broker.conf
    return str(value)


def parse_template(text: str, source: str) -> Template:
    """Check the syntax now, and name the fields he-ha will mail as written in one warning."""
    template = Template(text=text, source=source)
    # Format specs and conversions of the known fields are checked by a trial render.
    template.render(template_fields(EmailConfig(), hostname="host", detail="Old-New", when=_SAMPLE_TIME))
    if template.unknown_fields:
        log.warning(
            "notification template uses fields he-ha does not know; they are mailed as written",
            template=source,
            fields=sorted(f"{{{name}}}" for name in template.unknown_fields),
            known=sorted(field_names()),
        )
    return template


def load_template(path: Path | None = DEFAULT_TEMPLATE_PATH, *, alert: bool = False) -> Template:
    """The template file, or the built-in template when ``path`` is None or does not exist
    (``alert``: the built-in alert template).

    Called once at start-up (a small local file; not on the event loop's hot path).
    """
    if path is None or not path.exists():
        if alert:
            return parse_template(BUILTIN_ALERT_TEMPLATE, BUILTIN_ALERT_SOURCE)
        return parse_template(BUILTIN_TEMPLATE, BUILTIN_SOURCE)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(str(path), f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise TemplateError(str(path), f"cannot be read: {exc.strerror}") from None
    return parse_template(text, str(path))
