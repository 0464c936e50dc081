"""Send one mail over SMTP with a hard deadline (aiosmtplib).

aiosmtplib's own ``timeout`` applies to each SMTP command; we add one deadline for the whole
exchange (connect, EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA, QUIT) and close the transport
ourselves when it expires, so a server that trickles answers cannot stretch it. The
per-command timeout (same value) stays as a backstop: Python 3.11's ``asyncio.wait_for``,
used inside aiosmtplib, can swallow a cancellation that races with a reply.
Plain SMTP is used unless ``smtp-starttls`` or ``smtps`` (implicit TLS, the
default on port 465) is set: opportunistic STARTTLS with certificate checks could break relays
that worked with the original.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import aiosmtplib.email
import structlog

from he_ha.config import EmailConfig

log = structlog.get_logger(__name__)


class MailError(Exception):
    """A mail was not sent; ``reason`` says why in words fit for a log line or a metric label.

    ``transient``: the server could not be reached or asked to try later (connection refused
    or reset, unreachable, no name, the deadline, an SMTP 4xx reply): the same mail may go
    through later. Anything else (a 5xx reply, refused recipients, a TLS or AUTH failure) is
    not worth retrying."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


@dataclass(frozen=True)
class TlsOptions:
    """How SMTPS and STARTTLS verify the server.

    ``ca_file``: trust this PEM bundle instead of the system's CAs (an internal relay);
    broker.conf ``smtp-ca-file`` gives it when this is None.
    ``insecure``: accept any certificate and host name: for tests only, it defeats TLS.
    """

    ca_file: Path | None = None
    insecure: bool = False


def make_tls_context(options: TlsOptions) -> ssl.SSLContext:
    """Build once at start-up: loading CA files is blocking file I/O."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=options.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise MailError(f"cannot load the SMTP CA file {options.ca_file}: {exc}") from None
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def send_mail(
    message: EmailMessage, config: EmailConfig, tls_context: ssl.SSLContext | None, local_hostname: str
) -> None:
    """Send or raise MailError; returns or raises within ``config.smtp_timeout`` seconds.

    ``tls_context`` (from make_tls_context) is used for SMTPS and STARTTLS.
    """
    client = aiosmtplib.SMTP(
        hostname=config.smtp_server,
        port=config.smtp_port,
        timeout=config.smtp_timeout,
        use_tls=config.implicit_tls,
        start_tls=config.smtp_starttls,
        tls_context=tls_context if config.uses_tls else None,
        username=config.smtp_user,
        password=config.smtp_password if config.smtp_user else None,
        # Given explicitly: the default would resolve our FQDN through DNS. ASCII: EHLO takes
        # no other (a non-ASCII host name goes as its IDNA form).
        local_hostname=ascii_hostname(local_hostname),
    )
    where = f"{config.smtp_server}:{config.smtp_port}"
    refused: dict[str, aiosmtplib.SMTPResponse] | None = None
    try:
        async with asyncio.timeout(config.smtp_timeout):
            await client.connect()
            refused, _reply = await client.send_message(
                message, sender=config.source_email, recipients=config.destinations
            )
            await client.quit()
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        if refused is None:
            raise MailError(_failure(where, config, exc), transient=is_transient(exc)) from None
        # The server accepted the mail (DATA answered 250): a failed QUIT loses nothing.
        log.debug("SMTP QUIT failed after the mail was accepted", server=where, error=_failure(where, config, exc))
    finally:
        client.close()
    if refused:
        rejected = ", ".join(f"{rcpt} ({resp.code} {resp.message})" for rcpt, resp in refused.items())
        raise MailError(f"SMTP {where} refused recipients: {rejected} (the others got the mail)")


_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def is_transient(exc: BaseException) -> bool:
    """Might the same exchange succeed later? (See MailError.transient.)"""
    chain = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return False  # a certificate or TLS set-up problem stays until someone fixes it
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    if isinstance(exc, (TimeoutError, ConnectionError, socket.gaierror, aiosmtplib.SMTPServerDisconnected)):
        return True
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE


def ascii_hostname(name: str) -> str:
    """``name`` as it may appear in EHLO and a Message-ID: IDNA (``xn--``) for non-ASCII labels."""
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:  # not a valid IDNA name (an empty or over-long label)
        return "localhost"


def flatten_as_sent(message: EmailMessage, config: EmailConfig) -> bytes:
    """The bytes ``send_mail`` would hand to DATA, for the strictest server (no 8BITMIME):
    aiosmtplib's own flattening, SMTPUTF8 only when an address needs it, as it decides.
    Raises what the send would (UnicodeEncodeError for text that cannot be encoded)."""
    addresses = config.source_email + "".join(config.destinations)
    return aiosmtplib.email.flatten_message(message, utf8=not addresses.isascii(), cte_type="7bit")


def _failure(where: str, config: EmailConfig, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):  # our deadline, or aiosmtplib's per-command backstop
        return f"no complete SMTP exchange with {where} within smtp-timeout={config.smtp_timeout:g}s"
    if isinstance(exc, aiosmtplib.SMTPException):
        return f"SMTP {where}: {_describe(exc)}"
    return f"SMTP {where}: {exc}"  # refused, unreachable, reset, TLS failures outside aiosmtplib


def _describe(exc: aiosmtplib.SMTPException) -> str:
    text = str(exc) or exc.__class__.__name__
    cause = exc.__cause__ or exc.__context__
    # aiosmtplib wraps the TLS error of a failed handshake; its text is the useful part.
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({cause})"
    return f"{exc.__class__.__name__}: {text}"
