"""Real SMTP servers for the notifier tests: aiosmtpd on loopback TCP, plus servers that
misbehave at the socket level (accept-and-never-answer, drop-every-SYN, nobody listening)."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from he_ha.config import BrokerConfig, EmailConfig, NotifyConfig

USER, PASSWORD = "ha-notifier", "correct horse"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class MailServer:
    port: int
    mails: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse_rcpt: set[str] = field(default_factory=set)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for_mails(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.mails) >= count)
        return self.mails


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.server.refuse_rcpt:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.parser.BytesParser(_class=EmailMessage, policy=email.policy.default).parsebytes(raw)
        async with self.server.arrived:
            self.server.mails.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
            self.server.arrived.notify_all()
        return "250 OK"


class HangsOnQuit(SMTP):
    """Accepts the mail, then never answers QUIT."""

    async def smtp_QUIT(self, arg: str) -> None:
        await asyncio.Event().wait()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed (Debian package 'openssl')"
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=he-ha test SMTP",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Certificate(cert, key)


@dataclass(frozen=True)
class PrivateCa:
    ca_cert: Path  # what broker.conf's smtp-ca-file names
    server: Certificate  # signed by the CA, for 127.0.0.1


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCa:
    """A private CA and a server certificate it signed for 127.0.0.1 (openssl command): what a
    site with its own PKI gives its mail relay. The server certificate alone is not trusted."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed (Debian package 'openssl')"
    d = tmp_path_factory.mktemp("ca")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30, cwd=d)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=he-ha test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=he-ha test SMTPS")
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    )
    return PrivateCa(d / "ca.pem", Certificate(d / "server.pem", d / "server.key"))


StartServer = Callable[..., Awaitable[MailServer]]


@pytest.fixture
async def smtp_server() -> AsyncIterator[StartServer]:
    """Start a real aiosmtpd server on 127.0.0.1 (any free port); keyword args go to aiosmtpd.SMTP.

    ``protocol`` may be an aiosmtpd.SMTP subclass that misbehaves on purpose; ``implicit_tls``:
    TLS from the first byte (SMTPS) with this context.
    """
    servers: list[asyncio.Server] = []

    async def start(
        protocol: type[SMTP] = SMTP, implicit_tls: ssl.SSLContext | None = None, **smtp_kwargs: Any
    ) -> MailServer:
        state = MailServer(port=0)
        handler = _Handler(state)
        server = await asyncio.get_running_loop().create_server(
            lambda: protocol(handler, hostname="mail.test", **smtp_kwargs), "127.0.0.1", 0, ssl=implicit_tls
        )
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def authenticator(logins: list[str]) -> Callable[..., AuthResult]:
    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == USER
            and auth_data.password.decode() == PASSWORD
        )
        if ok:
            logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    return check


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (the kernel completes the handshake) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def unanswering_address() -> Iterator[int]:
    """A port whose SYNs are never answered: a listener with a full accept queue.

    Linux drops an incoming SYN while the listen queue is full, so connect() hangs exactly
    as it does towards a host that is down or behind a DROP firewall rule.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)  # fills the queue
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        with pytest.raises(TimeoutError):  # proves the next connect really hangs
            probe.connect(("127.0.0.1", port))
    finally:
        probe.close()
    yield port
    filler.close()
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: connection refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def broker(port: int, rule: str = "maintenance|start|stop|migrate|up|down", **email: Any) -> BrokerConfig:
    values = {
        "smtp-server": "127.0.0.1",
        "smtp-port": port,
        "smtp-timeout": 5,
        "source-email": "ha@example.org",
        "destination-emails": "ops@example.org, oncall@example.org",
        **email,
    }
    return BrokerConfig(email=EmailConfig.model_validate(values), notify=NotifyConfig(state_transition=rule))
