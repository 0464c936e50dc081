from __future__ import annotations

from pathlib import Path

import pytest

from he_ha.config import EmailConfig
from he_ha.notify.template import (
    BUILTIN_SOURCE,
    BUILTIN_TEMPLATE,
    field_names,
    load_template,
    parse_template,
    template_fields,
    TemplateError,
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


def test_fields_are_hostname_detail_and_every_email_key_but_the_password() -> None:
    fields = template_fields(EMAIL, "host1", "EngineDown-EngineStart")
    assert fields == {
        "hostname": "host1",
        "detail": "EngineDown-EngineStart",
        "smtp-server": "mail.example.org",
        "smtp-port": "2525",
        "smtp-timeout": "10",
        "destination-emails": "a@example.org, b@example.org",
        "source-email": "ha@example.org",
        "smtp-starttls": "False",
        "smtp-user": "ha",
    }
    assert sorted(field_names(EMAIL)) == sorted(fields)


def test_builtin_template_has_the_original_headers() -> None:
    text = load_template(None).render(template_fields(EMAIL, "host1", "EngineUp-EngineStop"))
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


def test_file_template_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "state_transition.txt"
    path.write_text(
        "From: {source-email}\nTo: {destination-emails}\nSubject: {hostname} {detail}\n\n"
        "{smtp-server}:{smtp-port} t={smtp-timeout} tls={smtp-starttls} user={smtp-user}\n"
    )
    template = load_template(path)
    assert template.source == str(path)
    body = template.render(template_fields(EMAIL, "h", "A-B")).partition("\n\n")[2]
    assert body == "mail.example.org:2525 t=10 tls=False user=ha\n"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Subject: {detail} {uptime}\n\nx", "uptime"),
        ("Subject: {smtp-password}\n\nx", "smtp-password"),  # the password is never a field
        ("Subject: {hostname.upper}\n\nx", "hostname.upper"),
    ],
)
def test_unknown_field_names_the_field_and_the_file(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(text)
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert caught.value.field == named
    assert caught.value.source == str(path)
    assert f"{{{named}}}" in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Subject: {detail\n\nx", "not a valid format string"),
        ("Subject: {}\n\nx", "positional"),
        ("Subject: {0}\n\nx", "positional"),
        ("Subject: {detail:d}\n\nx", "cannot be formatted"),
    ],
)
def test_bad_syntax_is_a_typed_error(text: str, says: str) -> None:
    with pytest.raises(TemplateError, match=says):
        parse_template(text, "/etc/x.txt")


def test_unreadable_template_is_a_typed_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Subject: état\n\n{detail}".encode("latin-1"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_template(latin)
    with pytest.raises(TemplateError, match="cannot be read"):
        load_template(tmp_path)  # a directory
