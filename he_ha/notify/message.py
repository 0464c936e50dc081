"""Turn a rendered template into the mail to send (pure).

The rendered text is parsed as an RFC 5322 message (headers, blank line, body), as the
original did. We add what the original lacked or got wrong: a ``Date`` header with the local
time zone (rhbz#1229774), a ``Message-ID``, and ``From``/``To`` from broker.conf when a
custom template leaves them out. Header values are re-emitted by the ``email`` package, which
folds and encodes them properly (rhbz#1292060: corrupted headers); the body gets a UTF-8
charset, so a template or host name in any language can be sent (issue 18).
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
from email.message import EmailMessage

from he_ha.config import EmailConfig
from he_ha.notify.mailer import ascii_hostname


class MessageError(ValueError):
    """The rendered template is not a usable mail (e.g. a header line that cannot be parsed)."""


def build_message(rendered: str, email_config: EmailConfig, hostname: str, now: float | None = None) -> EmailMessage:
    parser = email.parser.Parser(_class=EmailMessage, policy=email.policy.default)
    parsed = parser.parsestr(rendered)
    if parsed.defects:
        raise MessageError(
            f"not a valid mail ({parsed.defects[0].__class__.__name__}); "
            "it must start with header lines (From:, To:, Subject:), then a blank line, then the body"
        )
    message = _reencoded(parsed)
    if message["From"] is None:
        message["From"] = email_config.source_email
    if message["To"] is None:
        message["To"] = ", ".join(email_config.destinations)
    if message["Date"] is None:
        message["Date"] = email.utils.formatdate(now, localtime=True)
    if message["Message-ID"] is None:
        # An explicit domain: without one, make_msgid does a (blocking) DNS lookup.
        message["Message-ID"] = email.utils.make_msgid("he-ha", domain=ascii_hostname(hostname or "localhost"))
    return message


def _reencoded(parsed: EmailMessage) -> EmailMessage:
    """The parsed mail made sendable in any language. Parsed headers are kept as their source
    text and would go out as raw non-ASCII bytes (UnicodeEncodeError at the send): set again,
    they are RFC 2047-encoded when needed. The body gets a UTF-8 charset, quoted-printable
    when not ASCII, so that any relay (7-bit or not) carries it. The template's own MIME
    headers are replaced: the text is Unicode, whatever charset it named."""
    message = EmailMessage(policy=email.policy.default)
    for name, value in parsed.items():
        if not name.lower().startswith("content-") and name.lower() != "mime-version":
            message[name] = str(value)
    body = parsed.get_payload()
    text = body if isinstance(body, str) else ""
    message.set_content(text, charset="utf-8", cte="7bit" if text.isascii() else "quoted-printable")
    return message
