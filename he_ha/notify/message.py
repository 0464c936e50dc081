"""Turn a rendered template into the mail to send (pure).

The rendered text is parsed as an RFC 5322 message (headers, blank line, body), as the
original did. We add what the original lacked or got wrong: a ``Date`` header with the local
time zone (rhbz#1229774), a ``Message-ID``, and ``From``/``To`` from broker.conf when a
custom template leaves them out. Header values are re-emitted by the ``email`` package, which
folds and encodes them properly (rhbz#1292060: corrupted headers).
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
from email.message import EmailMessage

from he_ha.config import EmailConfig


class MessageError(ValueError):
    """The rendered template is not a usable mail (e.g. a header line that cannot be parsed)."""


def build_message(rendered: str, email_config: EmailConfig, hostname: str, now: float | None = None) -> EmailMessage:
    parser = email.parser.Parser(_class=EmailMessage, policy=email.policy.default)
    message = parser.parsestr(rendered)
    if message.defects:
        raise MessageError(
            f"not a valid mail ({message.defects[0].__class__.__name__}); "
            "it must start with header lines (From:, To:, Subject:), then a blank line, then the body"
        )
    if message["From"] is None:
        message["From"] = email_config.source_email
    if message["To"] is None:
        message["To"] = ", ".join(email_config.destinations)
    if message["Date"] is None:
        message["Date"] = email.utils.formatdate(now, localtime=True)
    if message["Message-ID"] is None:
        # An explicit domain: without one, make_msgid does a (blocking) DNS lookup.
        message["Message-ID"] = email.utils.make_msgid("he-ha", domain=hostname or "localhost")
    return message
