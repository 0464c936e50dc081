from __future__ import annotations

import email.utils

import pytest

from he_ha.config import EmailConfig
from he_ha.notify.message import MessageError, build_message

EMAIL = EmailConfig.model_validate(
    {"destination-emails": "a@example.org,b@example.org", "source-email": "ha@example.org"}
)


def test_date_and_message_id_are_added() -> None:
    message = build_message("From: x@y\nTo: z@y\nSubject: s\n\nbody\n", EMAIL, "host1.example.org", now=1_700_000_000)
    assert email.utils.parsedate_to_datetime(message["Date"]).timestamp() == 1_700_000_000
    assert message["Message-ID"].endswith("@host1.example.org>")
    assert message["From"] == "x@y" and message["To"] == "z@y" and message["Subject"] == "s"
    assert message.get_content() == "body\n"


def test_from_and_to_default_to_the_config() -> None:
    message = build_message("Subject: s\n\nbody\n", EMAIL, "h")
    assert message["From"] == "ha@example.org"
    assert message["To"] == "a@example.org, b@example.org"


def test_header_values_are_not_corrupted_when_long() -> None:
    detail = ", ".join(f"EngineState{i}-EngineState{i + 1}" for i in range(30))
    message = build_message(f"Subject: ovirt-hosted-engine state transition {detail}\n\nb", EMAIL, "h")
    assert message["Subject"] == f"ovirt-hosted-engine state transition {detail}"
    wire = message.as_bytes().decode()
    assert all(len(line) <= 998 for line in wire.splitlines())


def test_text_without_headers_is_refused() -> None:
    with pytest.raises(MessageError, match="header lines"):
        build_message("just a body, no header block", EMAIL, "h")
