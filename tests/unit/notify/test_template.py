from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from he_ha.config import EmailConfig
from he_ha.notify.message import build_message
from he_ha.notify.template import (
    BUILTIN_SOURCE,
    BUILTIN_TEMPLATE,
    TemplateError,
    event_time,
    field_names,
    load_template,
    parse_template,
    template_fields,
)

EMAIL = EmailConfig.model_validate(
    {
        "smtp-server": "mail.example.org",
        "smtp-port": 2525,
        "smtp-timeout": "10",
        "destination-emails": "a@example.org, b@example.org",
        "source-email": "ha@example.org",
        "smtp-user": "ha",
        "smtp-password": "s3cret",
    }
)
WHEN = 1_714_651_387.75  # 2024-05-02 12:03:07.75 UTC
UNKNOWN = "notification template uses fields he-ha does not know; they are mailed as written"


def fields(detail: str = "A-B", hostname: str = "h") -> dict[str, str]:
    return template_fields(EMAIL, hostname, detail, when=WHEN)


def test_fields_are_time_type_hostname_detail_and_every_email_key_but_the_password() -> None:
    assert fields("EngineDown-EngineStart", "host1") == {
        "time": datetime.fromtimestamp(WHEN).astimezone().isoformat(timespec="seconds"),
        "type": "state_transition",
        "hostname": "host1",
        "detail": "EngineDown-EngineStart",
        "smtp-server": "mail.example.org",
        "smtp-port": "2525",
        "smtp-timeout": "10",
        "destination-emails": "a@example.org, b@example.org",
        "source-email": "ha@example.org",
        "smtp-starttls": "False",
        "smtps": "False",
        "smtp-ca-file": "",
        "smtp-user": "ha",
    }
    assert sorted(field_names()) == sorted(fields())


def test_event_time_is_local_time_with_offset_to_the_second() -> None:
    text = event_time(WHEN)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None
    assert parsed.timestamp() == int(WHEN)
    assert len(text) == len("2024-05-02T12:03:07+00:00")


def test_builtin_template_has_the_original_headers() -> None:
    text = load_template(None).render(fields("EngineUp-EngineStop", "host1"))
    headers, _, body = text.partition("\n\n")
    assert headers.splitlines() == [
        "From: ha@example.org",
        "To: a@example.org, b@example.org",
        "Subject: ovirt-hosted-engine state transition EngineUp-EngineStop",
    ]
    assert "host1" in body and "EngineUp-EngineStop" in body


def test_missing_file_falls_back_to_the_builtin(tmp_path: Path) -> None:
    template = load_template(tmp_path / "absent.txt")
    assert template.source == BUILTIN_SOURCE
    assert template.text == BUILTIN_TEMPLATE
    assert template.unknown_fields == ()


def test_file_template_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "state_transition.txt"
    path.write_text(
        "From: {source-email}\nTo: {destination-emails}\nSubject: {hostname} {detail}\n\n"
        "{smtp-server}:{smtp-port} t={smtp-timeout} tls={smtp-starttls} user={smtp-user}\n"
    )
    template = load_template(path)
    assert template.source == str(path)
    body = template.render(fields()).partition("\n\n")[2]
    assert body == "mail.example.org:2525 t=10 tls=False user=ha\n"


def test_time_and_type_reach_the_mail(tmp_path: Path) -> None:
    # The fields the original's documentation named, in a template as an administrator kept it.
    path = tmp_path / "state_transition.txt"
    path.write_text(
        "From: {source-email}\nTo: {destination-emails}\nSubject: [{type}] {hostname}: {detail}\n\n"
        "At {time}, {hostname} went {detail} ({type}).\n"
    )
    with capture_logs() as logs:
        template = load_template(path)
    assert logs == []  # nothing unknown, nothing to warn about
    stamp = event_time(WHEN)
    message = build_message(template.render(fields("EngineDown-EngineStart", "host1")), EMAIL, "host1")
    assert message["Subject"] == "[state_transition] host1: EngineDown-EngineStart"
    assert message.get_content() == f"At {stamp}, host1 went EngineDown-EngineStart (state_transition).\n"


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("{uptime}", "uptime"),
        ("{smtp-password}", "smtp-password"),  # the password is never a field: it stays as written
        ("{hostname.upper}", "hostname.upper"),
        ("{hostname[0]}", "hostname[0]"),
        ("{}", ""),
        ("{0}", "0"),
        ("{uptime!r:>8}", "uptime"),
        ("{detail:{width}}", "width"),
    ],
)
def test_unknown_field_is_mailed_as_written_with_one_warning(tmp_path: Path, written: str, name: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(f"Subject: {{detail}} {written} {{{{braces}}}}\n\n{written} on {{hostname}}\n")
    with capture_logs() as logs:
        template = load_template(path)
    assert template.unknown_fields == (name,)
    (warning,) = [e for e in logs if e["event"] == UNKNOWN]
    assert warning["log_level"] == "warning"
    assert warning["template"] == str(path)
    assert warning["fields"] == [f"{{{name}}}"]
    assert "time" in warning["known"] and "type" in warning["known"]
    rendered = template.render(fields("EngineUp-EngineStop", "host1"))
    assert rendered == f"Subject: EngineUp-EngineStop {written} {{braces}}\n\n{written} on host1\n"
    assert "s3cret" not in rendered


def test_several_unknown_fields_are_named_in_one_warning() -> None:
    with capture_logs() as logs:
        template = parse_template("Subject: {foo} {bar} {foo} {detail}\n\nx", "/etc/x.txt")
    assert template.unknown_fields == ("foo", "bar")
    (warning,) = logs
    assert warning["fields"] == ["{bar}", "{foo}"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Subject: {detail\n\nx", "is not a valid format string: expected '}' before end of string"),
        ("Subject: }\n\nx", "is not a valid format string: Single '}'"),
        ("Subject: {detail!}\n\nx", "is not a valid format string"),
        ("Subject: {detail:d}\n\nx", "cannot be formatted: Unknown format code 'd'"),
        ("Subject: {detail!x}\n\nx", "cannot be formatted: Unknown conversion specifier x"),
    ],
)
def test_bad_syntax_is_a_typed_error_naming_the_file(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "state_transition.txt"
    path.write_text(text)
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"notification template {path}: ")
    assert says in str(caught.value)


def test_unreadable_template_is_a_typed_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Subject: état\n\n{detail}".encode("latin-1"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_template(latin)
    with pytest.raises(TemplateError, match="cannot be read"):
        load_template(tmp_path)  # a directory
