"""The state_transition mail template (spec §8): Python ``str.format`` fields, as the original.

Fields: ``hostname``, ``detail`` and every broker.conf ``[email]`` key by its hyphenated name
(``{source-email}``, ``{destination-emails}``, ``{smtp-server}``, ``{smtp-port}``,
``{smtp-timeout}``, and our additions ``{smtp-starttls}``, ``{smtp-user}``).
``smtp-password`` is deliberately NOT a field: a template must not be able to mail it.

The template is checked when it is loaded, so an unknown field is reported once at start-up
(naming the field and the file) instead of failing every mail later.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from he_ha.config import EmailConfig

DEFAULT_TEMPLATE_PATH = Path("/etc/ovirt-hosted-engine-ha/notifications/state_transition.txt")
BUILTIN_SOURCE = "<built-in template>"

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

_HIDDEN_KEYS = frozenset({"smtp-password"})


class TemplateError(ValueError):
    """A template cannot be read or uses a field or syntax str.format cannot fill."""

    def __init__(self, source: str, message: str, field: str | None = None) -> None:
        self.source = source
        self.field = field
        super().__init__(f"notification template {source}: {message}")


@dataclass(frozen=True)
class Template:
    text: str
    source: str  # the file it came from, or BUILTIN_SOURCE

    def render(self, fields: dict[str, str]) -> str:
        try:
            return self.text.format(**fields)
        except KeyError as exc:
            name = str(exc.args[0])
            raise TemplateError(
                self.source, f"unknown field {{{name}}}; known fields: {', '.join(sorted(fields))}", field=name
            ) from None
        except (ValueError, IndexError, AttributeError) as exc:
            raise TemplateError(self.source, f"cannot be formatted: {exc}") from None


def field_names(email: EmailConfig) -> list[str]:
    """Every field a template may use."""
    keys = [f.alias or name for name, f in EmailConfig.model_fields.items()]
    return ["hostname", "detail", *(k for k in keys if k not in _HIDDEN_KEYS)]


def template_fields(email: EmailConfig, hostname: str, detail: str) -> dict[str, str]:
    values: dict[str, str] = {"hostname": hostname, "detail": detail}
    for name, field in EmailConfig.model_fields.items():
        key = field.alias or name
        if key in _HIDDEN_KEYS:
            continue
        values[key] = _as_text(getattr(email, name))
    return values


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"  # smtp-timeout=10 renders as "10", as written in broker.conf
    return str(value)


def parse_template(text: str, source: str) -> Template:
    """Check the syntax and the field names now; every later render can then only succeed."""
    template = Template(text=text, source=source)
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(source, f"is not a valid format string: {exc}") from None
    known = set(field_names(EmailConfig()))
    for _literal, name, _spec, _conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise TemplateError(source, "positional fields like {} or {0} are not allowed; use a named field")
        if name not in known:
            raise TemplateError(
                source, f"unknown field {{{name}}}; known fields: {', '.join(sorted(known))}", field=name
            )
    # Format specs and conversions are checked by a trial render with sample values.
    template.render(template_fields(EmailConfig(), hostname="host", detail="Old-New"))
    return template


def load_template(path: Path | None = DEFAULT_TEMPLATE_PATH) -> Template:
    """The template file, or the built-in template when ``path`` is None or does not exist.

    Called once at start-up (a small local file; not on the event loop's hot path).
    """
    if path is None or not path.exists():
        return parse_template(BUILTIN_TEMPLATE, BUILTIN_SOURCE)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(str(path), f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise TemplateError(str(path), f"cannot be read: {exc.strerror}") from None
    return parse_template(text, str(path))
