"""Issue 18, mail: SMTPS (implicit TLS) and STARTTLS trusting a private CA named in broker.conf,
and templates and host names in any language, end to end through a real aiosmtpd server."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from he_ha.config import ConfigError, EmailConfig, load_broker_config
from he_ha.notify import Notifier, NotifySettings
from he_ha.notify import notifier as notifier_module
from tests.integration.notify.conftest import PASSWORD, USER, PrivateCa, StartServer, authenticator, broker
from tests.integration.notify.test_notifier_smtp import send_one

pytestmark = pytest.mark.timeout(60)


def broker_conf(tmp_path: Path, port: int, *email_lines: str) -> Path:
    path = tmp_path / "broker.conf"
    path.write_text(
        "[email]\nsmtp-server = 127.0.0.1\n"
        f"smtp-port = {port}\nsmtp-timeout = 5\n"
        "source-email = ha@example.org\ndestination-emails = ops@example.org\n"
        + "".join(f"{line}\n" for line in email_lines)
        + "[notify]\nstate_transition = .\n",
        encoding="utf-8",
    )
    return path


# aiosmtpd cannot see the TLS under it (implicit TLS is the listener's), hence AUTH "without TLS".
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtps_with_the_private_ca_from_broker_conf(
    smtp_server: StartServer, private_ca: PrivateCa, tmp_path: Path
) -> None:
    logins: list[str] = []
    server = await smtp_server(
        implicit_tls=private_ca.server.server_context(),
        authenticator=authenticator(logins),
        auth_required=True,
        auth_require_tls=False,
    )
    path = broker_conf(
        tmp_path,
        server.port,
        "smtps = yes",
        f"smtp-ca-file = {private_ca.ca_cert}",
        f"smtp-user = {USER}",
        f"smtp-password = {PASSWORD}",
    )
    notifier = Notifier(load_broker_config(path), NotifySettings(template_path=None, hostname="host1"))
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    assert logins == [USER] and len(server.mails) == 1


async def test_smtps_refuses_the_server_without_the_ca(
    smtp_server: StartServer, private_ca: PrivateCa, tmp_path: Path
) -> None:
    server = await smtp_server(implicit_tls=private_ca.server.server_context())
    path = broker_conf(tmp_path, server.port, "smtps = yes")  # the system's CAs only
    notifier = Notifier(load_broker_config(path), NotifySettings(template_path=None, hostname="host1"))
    await send_one(notifier, lambda: notifier.stats.failed == 1)
    assert "CERTIFICATE_VERIFY_FAILED" in (notifier.stats.last_error or "") and server.mails == []


async def test_starttls_trusts_the_ca_file_of_broker_conf(
    smtp_server: StartServer, private_ca: PrivateCa, tmp_path: Path
) -> None:
    server = await smtp_server(tls_context=private_ca.server.server_context(), require_starttls=True)
    path = broker_conf(tmp_path, server.port, "smtp-starttls = yes", f"smtp-ca-file = {private_ca.ca_cert}")
    notifier = Notifier(load_broker_config(path), NotifySettings(template_path=None, hostname="host1"))
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    assert len(server.mails) == 1


def test_port_465_means_smtps_unless_said_otherwise(tmp_path: Path) -> None:
    assert load_broker_config(broker_conf(tmp_path, 465)).email.implicit_tls is True
    assert load_broker_config(broker_conf(tmp_path, 465, "smtps = no")).email.implicit_tls is False
    assert load_broker_config(broker_conf(tmp_path, 25)).email.implicit_tls is False
    with pytest.raises(ConfigError, match="exclude each other"):
        load_broker_config(broker_conf(tmp_path, 465, "smtp-starttls = yes"))
    with pytest.raises(ConfigError, match=r"smtp-ca-file.*absolute"):
        load_broker_config(broker_conf(tmp_path, 25, "smtp-ca-file = ca.pem"))


async def test_non_ascii_template_and_hostname_arrive_intact(smtp_server: StartServer, tmp_path: Path) -> None:
    server = await smtp_server()
    template = tmp_path / "state_transition.txt"
    template.write_text(
        "From: {source-email}\nTo: {destination-emails}\n"
        "Subject: Zustandsänderung auf {hostname}: {detail}\n\n"
        "Der Hochverfügbarkeitsdienst auf {hostname} wechselte: {detail}\n"
        "状態遷移 — état changé\n",
        encoding="utf-8",
    )
    hostname = "hôte-1.exämple.org"
    notifier = Notifier(broker(server.port), NotifySettings(template_path=template, hostname=hostname))
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    assert notifier.stats.failed == 0, notifier.stats.last_error
    message = server.mails[0].message
    assert message["Subject"] == f"Zustandsänderung auf {hostname}: EngineDown-EngineStart"
    assert message.get_content().replace("\r\n", "\n") == (
        f"Der Hochverfügbarkeitsdienst auf {hostname} wechselte: EngineDown-EngineStart\n状態遷移 — état changé\n"
    )
    assert message.get_content_charset() == "utf-8"
    assert message["Message-ID"].endswith("@xn--hte-1-6ta.xn--exmple-cua.org>")


async def test_builtin_templates_with_a_non_ascii_hostname(smtp_server: StartServer) -> None:
    server = await smtp_server()
    notifier = Notifier(
        broker(server.port), NotifySettings(template_path=None, alert_template_path=None, hostname="ноутбук")
    )
    await notifier.start()
    try:
        notifier.alert("gave-up.retry-limit", "the engine VM failed 3 times")
        await server.wait_for_mails(1)
    finally:
        await notifier.stop()
    assert server.mails[0].message["Subject"] == (
        "ovirt-hosted-engine ALERT on ноутбук: gave-up.retry-limit: the engine VM failed 3 times"
    )


def test_start_up_check_flattens_both_templates_as_they_will_be_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    flattened: list[tuple[str, str]] = []
    real = notifier_module.flatten_as_sent

    def spy(message: EmailMessage, config: EmailConfig) -> bytes:
        flattened.append((str(message["Subject"]), config.smtp_server))
        return real(message, config)

    monkeypatch.setattr(notifier_module, "flatten_as_sent", spy)
    Notifier(broker(2525), NotifySettings(template_path=None, alert_template_path=None, hostname="hôte"))
    assert flattened == [
        ("ovirt-hosted-engine state transition EngineDown-EngineStart", "127.0.0.1"),
        ("ovirt-hosted-engine ALERT on hôte: kind: reason", "127.0.0.1"),
    ]
