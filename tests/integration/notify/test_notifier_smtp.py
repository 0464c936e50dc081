"""The notifier against real SMTP servers on loopback TCP (aiosmtpd) and misbehaving sockets."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from structlog.testing import capture_logs

from he_ha.notify import Notifier, NotifyConfigError, NotifySettings, TemplateError, TlsOptions
from tests.integration.notify.conftest import (
    PASSWORD,
    USER,
    Certificate,
    HangsOnQuit,
    MailServer,
    StartServer,
    authenticator,
    broker,
)

# the fixture's handler, on a port of our choosing
from tests.integration.notify.conftest import _Handler as MailHandler

pytestmark = pytest.mark.timeout(60)


def settings(**overrides: object) -> NotifySettings:
    values: dict[str, object] = {"template_path": None, "hostname": "host1.example.org"}
    values.update(overrides)
    return NotifySettings(**values)  # type: ignore[arg-type]


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def send_one(notifier: Notifier, until: Callable[[], bool]) -> None:
    """Run the notifier for one EngineDown-EngineStart transition, until ``until`` holds."""
    await notifier.start()
    try:
        assert notifier.state_transition("EngineDown", "EngineStart") is True
        await eventually(until)
    finally:
        await notifier.stop()


def timed_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def test_mail_arrives_with_headers_and_fields(smtp_server: StartServer) -> None:
    server = await smtp_server()
    notifier = Notifier(broker(server.port), settings())
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    (mail,) = server.mails
    assert mail.mail_from == "ha@example.org"
    assert mail.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    message = mail.message
    assert message["From"] == "ha@example.org"
    assert message["To"] == "ops@example.org, oncall@example.org"
    assert message["Subject"] == "ovirt-hosted-engine state transition EngineDown-EngineStart"
    sent_at = email.utils.parsedate_to_datetime(message["Date"])
    assert sent_at.tzinfo is not None and abs(sent_at.timestamp() - time.time()) < 3600
    assert message["Message-ID"].endswith("@host1.example.org>")
    body = message.get_content()
    assert "host1.example.org" in body and "EngineDown-EngineStart" in body
    stats = notifier.stats
    assert (stats.matched, stats.sent, stats.failed, stats.dropped, stats.pending) == (1, 1, 0, 0, 0)
    assert stats.last_error is None


async def test_template_file_fields_reach_the_mail(smtp_server: StartServer, tmp_path: Path) -> None:
    server = await smtp_server()
    template = tmp_path / "state_transition.txt"
    template.write_text(
        "From: {source-email}\nTo: {destination-emails}\nSubject: [{hostname}] {detail}\n\n"
        "server={smtp-server} port={smtp-port} timeout={smtp-timeout}\n"
    )
    notifier = Notifier(broker(server.port), settings(template_path=template))
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    (mail,) = server.mails
    assert mail.message["Subject"] == "[host1.example.org] EngineDown-EngineStart"
    assert mail.message.get_content().rstrip("\r\n") == f"server=127.0.0.1 port={server.port} timeout=5"


async def test_time_and_type_fields_reach_a_coalesced_mail(smtp_server: StartServer, tmp_path: Path) -> None:
    # {time} is the first transition's time, even when the mail goes out later, coalesced.
    server = await smtp_server()
    template = tmp_path / "state_transition.txt"
    template.write_text("Subject: {type} {detail}\n\nsince {time}\n")
    notifier = Notifier(broker(server.port), settings(template_path=template, burst=1, refill_seconds=3.0))
    await notifier.start()
    try:
        notifier.state_transition("ReinitializeFSM", "EngineDown")
        await server.wait_for_mails(1)
        before = time.time()
        notifier.state_transition("EngineDown", "EngineStart")
        after = time.time()
        await asyncio.sleep(1.1)  # the next transitions come a second later, while the bucket is empty
        notifier.state_transition("EngineStart", "EngineStarting")
        await server.wait_for_mails(2)
    finally:
        await notifier.stop()
    mail = server.mails[1].message
    assert mail["Subject"] == "state_transition EngineDown-EngineStart-EngineStarting"
    stamp = datetime.fromisoformat(mail.get_content().strip().removeprefix("since "))
    assert stamp.utcoffset() is not None
    assert int(before) <= stamp.timestamp() <= after


async def test_regex_selects_transitions_case_insensitively(smtp_server: StartServer) -> None:
    server = await smtp_server()
    notifier = Notifier(broker(server.port, rule="MAINTENANCE|engineup$"), settings())
    await notifier.start()
    try:
        assert notifier.state_transition("EngineDown", "EngineStart") is False
        assert notifier.state_transition("EngineStarting", "EngineUp") is True
        assert notifier.state_transition("EngineUp", "EngineStop") is False
        await eventually(lambda: notifier.stats.sent == 1)
        assert notifier.state_transition("EngineUp", "LocalMaintenance") is True
        await eventually(lambda: notifier.stats.sent == 2)
        assert await notifier.drain(5)
    finally:
        await notifier.stop()
    subjects = [m.message["Subject"] for m in server.mails]
    assert subjects == [
        "ovirt-hosted-engine state transition EngineStarting-EngineUp",
        "ovirt-hosted-engine state transition EngineUp-LocalMaintenance",
    ]
    assert (notifier.stats.matched, notifier.stats.filtered) == (2, 2)


async def test_starttls_and_auth_with_a_self_signed_certificate(
    smtp_server: StartServer, certificate: Certificate
) -> None:
    logins: list[str] = []
    server = await smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticator(logins),
        auth_required=True,
        auth_require_tls=True,
    )
    config = broker(server.port, **{"smtp-starttls": "yes", "smtp-user": USER, "smtp-password": PASSWORD})
    notifier = Notifier(config, settings(tls=TlsOptions(ca_file=certificate.cert)))
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    (mail,) = server.mails
    assert logins == [USER]
    assert mail.message["Subject"].endswith("EngineDown-EngineStart")
    assert notifier.stats.sent == 1


async def test_starttls_refuses_an_unknown_certificate(smtp_server: StartServer, certificate: Certificate) -> None:
    server = await smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    notifier = Notifier(broker(server.port, **{"smtp-starttls": "yes"}), settings())  # system CAs only
    await send_one(notifier, lambda: notifier.stats.failed == 1)
    assert "CERTIFICATE_VERIFY_FAILED" in (notifier.stats.last_error or "")
    assert server.mails == []


async def test_starttls_insecure_flag_accepts_it(smtp_server: StartServer, certificate: Certificate) -> None:
    server = await smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    notifier = Notifier(broker(server.port, **{"smtp-starttls": "yes"}), settings(tls=TlsOptions(insecure=True)))
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    assert notifier.stats.sent == 1


async def test_wrong_password_is_recorded(smtp_server: StartServer, certificate: Certificate) -> None:
    logins: list[str] = []
    server = await smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticator(logins),
        auth_required=True,
        auth_require_tls=True,
    )
    config = broker(server.port, **{"smtp-starttls": "1", "smtp-user": USER, "smtp-password": "wrong"})
    notifier = Notifier(config, settings(tls=TlsOptions(ca_file=certificate.cert)))
    await send_one(notifier, lambda: notifier.stats.failed == 1)
    assert "535" in (notifier.stats.last_error or "")
    assert logins == [] and server.mails == []


async def _loop_lag_while(condition: Callable[[], bool]) -> float:
    """The worst delay of a 10 ms sleeper until ``condition`` holds: proves the loop ran freely."""
    worst = 0.0
    async with asyncio.timeout(20):
        while not condition():
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - start - 0.01)
    return worst


@pytest.mark.parametrize("misbehaving", ["silent_server", "unanswering_address"])
async def test_blackholed_server_delays_nothing(misbehaving: str, request: pytest.FixtureRequest) -> None:
    port: int = request.getfixturevalue(misbehaving)
    notifier = Notifier(broker(port, **{"smtp-timeout": "0.5"}), settings())
    await notifier.start()
    try:
        started = time.monotonic()
        assert timed_call(lambda: notifier.state_transition("EngineDown", "EngineStart")) < 0.05
        await asyncio.sleep(0.05)  # the send is now under way, stuck on the server
        assert timed_call(lambda: notifier.state_transition("EngineStart", "EngineStarting")) < 0.05
        lag = await _loop_lag_while(lambda: notifier.stats.failed >= 1)
        failed_after = time.monotonic() - started
    finally:
        await notifier.stop()
    assert lag < 0.25  # far below the 0.5 s deadline: the loop never waited for SMTP
    assert failed_after >= 0.5  # the deadline, not an early give-up
    assert "within smtp-timeout=0.5s" in (notifier.stats.last_error or "")


async def test_stop_abandons_a_stuck_send_at_once(silent_server: int) -> None:
    notifier = Notifier(broker(silent_server, **{"smtp-timeout": "30"}), settings())
    await notifier.start()
    notifier.state_transition("EngineDown", "EngineStart")
    await asyncio.sleep(0.05)
    async with asyncio.timeout(2):  # far below the 30 s smtp-timeout
        await notifier.stop()


async def test_server_down_records_the_reason(closed_port: int) -> None:
    notifier = Notifier(broker(closed_port), settings())
    with capture_logs() as logs:
        await send_one(notifier, lambda: notifier.stats.failed == 1)
    error = notifier.stats.last_error or ""
    assert f"127.0.0.1:{closed_port}" in error and "Connect call failed" in error
    assert notifier.stats.last_error_time is not None
    failures = [e for e in logs if e["event"] == "notification not sent"]
    assert failures and failures[0]["log_level"] == "error" and failures[0]["reason"] == error


async def test_a_refused_recipient_is_a_failure_and_the_next_mail_still_goes(smtp_server: StartServer) -> None:
    server = await smtp_server()
    server.refuse_rcpt.add("oncall@example.org")
    notifier = Notifier(broker(server.port), settings())
    await notifier.start()
    try:
        notifier.state_transition("EngineDown", "EngineStart")
        await eventually(lambda: notifier.stats.failed == 1)
        assert "oncall@example.org (550" in (notifier.stats.last_error or "")
        server.refuse_rcpt.clear()
        notifier.state_transition("EngineStart", "EngineStarting")
        await eventually(lambda: notifier.stats.sent == 1)
    finally:
        await notifier.stop()
    assert [m.rcpt_tos for m in server.mails] == [["ops@example.org"], ["ops@example.org", "oncall@example.org"]]


async def test_rate_limit_coalesces_a_storm_into_one_mail(smtp_server: StartServer) -> None:
    server = await smtp_server()
    notifier = Notifier(broker(server.port), settings(burst=1, refill_seconds=0.5))
    await notifier.start()
    try:
        notifier.state_transition("ReinitializeFSM", "EngineDown")
        await server.wait_for_mails(1)
        for old, new in [
            ("EngineDown", "EngineStart"),
            ("EngineStart", "EngineStarting"),
            ("EngineStarting", "EngineUp"),
        ]:
            notifier.state_transition(old, new)
        await server.wait_for_mails(2)
        assert await notifier.drain(5)
    finally:
        await notifier.stop()
    assert [m.message["Subject"] for m in server.mails] == [
        "ovirt-hosted-engine state transition ReinitializeFSM-EngineDown",
        "ovirt-hosted-engine state transition EngineDown-EngineStart-EngineStarting-EngineUp",
    ]
    assert (notifier.stats.sent, notifier.stats.coalesced) == (2, 3)


async def test_rate_limit_survives_a_restart(smtp_server: StartServer, tmp_path: Path) -> None:
    server = await smtp_server()
    state = tmp_path / "notify-ratelimit.json"
    first = Notifier(broker(server.port), settings(burst=1, refill_seconds=3600, state_file=state))
    await first.start()
    first.state_transition("StartState", "ReinitializeFSM")
    await server.wait_for_mails(1)
    await eventually(state.exists)
    await first.stop()

    restarted = Notifier(broker(server.port), settings(burst=1, refill_seconds=3600, state_file=state))
    await restarted.start()
    with capture_logs() as logs:
        restarted.state_transition("StartState", "ReinitializeFSM")
        await eventually(
            lambda: any(e["event"] == "notification rate limit reached: holding transitions" for e in logs)
        )
        await restarted.stop()
    assert len(server.mails) == 1
    assert restarted.stats.pending == 1
    assert any(e["event"] == "notifier stopped with transitions not mailed" for e in logs)


async def test_full_queue_drops_the_oldest(closed_port: int) -> None:
    notifier = Notifier(broker(closed_port), settings(burst=1, refill_seconds=3600, max_pending=2))
    await notifier.start()
    try:
        notifier.state_transition("A", "Start")  # fails (port closed): back in the queue for a retry
        await eventually(lambda: notifier.stats.failed == 1)
        with capture_logs() as logs:
            for old, new in [("Start", "Up1"), ("Up1", "Up2"), ("Up2", "Up3")]:
                notifier.state_transition(old, new)
    finally:
        await notifier.stop()
    assert (notifier.stats.dropped, notifier.stats.pending, notifier.stats.matched) == (2, 2, 4)
    warnings = [e for e in logs if e["event"] == "notification queue full: dropped the oldest transition"]
    assert [(w["dropped"], w["dropped_total"]) for w in warnings] == [("A-Start", 1), ("Start-Up1", 2)]


async def test_a_mail_that_failed_while_the_server_was_down_goes_when_it_is_back(closed_port: int) -> None:
    notifier = Notifier(broker(closed_port), settings(burst=1, refill_seconds=3600, retry_seconds=0.2))
    server = MailServer(port=closed_port)
    await notifier.start()
    try:
        notifier.state_transition("EngineUp", "EngineUnexpectedlyDown")
        await eventually(lambda: notifier.stats.failed >= 1)
        notifier.state_transition("EngineUnexpectedlyDown", "EngineDown")
        await eventually(lambda: notifier.stats.failed >= 3)  # tried again (token given back), still down
        assert (notifier.stats.sent, notifier.stats.pending) == (0, 2)
        assert "Connect call failed" in (notifier.stats.last_error or "")
        listener = await asyncio.get_running_loop().create_server(
            lambda: SMTP(MailHandler(server), hostname="mail.test"), "127.0.0.1", closed_port
        )
        try:
            await server.wait_for_mails(1)
            assert await notifier.drain(5)
        finally:
            listener.close()
            await listener.wait_closed()
    finally:
        await notifier.stop()
    (mail,) = server.mails  # one mail, both transitions: nothing lost, the bucket's only token used once
    assert mail.message["Subject"] == "ovirt-hosted-engine state transition EngineUp-EngineUnexpectedlyDown-EngineDown"
    assert (notifier.stats.sent, notifier.stats.pending) == (1, 0)


async def test_a_permanent_failure_is_not_retried(smtp_server: StartServer) -> None:
    server = await smtp_server()
    server.refuse_rcpt.update({"ops@example.org", "oncall@example.org"})
    notifier = Notifier(broker(server.port), settings(retry_seconds=0.05))
    await notifier.start()
    try:
        notifier.state_transition("EngineDown", "EngineStart")
        await eventually(lambda: notifier.stats.failed == 1)
        await asyncio.sleep(0.3)
    finally:
        await notifier.stop()
    assert (notifier.stats.failed, notifier.stats.pending) == (1, 0)


async def test_template_with_an_unknown_field_mails_it_as_written(smtp_server: StartServer, tmp_path: Path) -> None:
    server = await smtp_server()
    path = tmp_path / "state_transition.txt"
    path.write_text("Subject: {detail} on {host}\n\n{host} is {hostname}\n")
    with capture_logs() as logs:
        notifier = Notifier(broker(server.port), settings(template_path=path))
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert (warning["template"], warning["fields"]) == (str(path), ["{host}"])
    await send_one(notifier, lambda: notifier.stats.sent == 1)
    (mail,) = server.mails
    assert mail.message["Subject"] == "EngineDown-EngineStart on {host}"
    assert mail.message.get_content().rstrip("\r\n") == "{host} is host1.example.org"


def test_template_that_is_not_format_syntax_fails_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "state_transition.txt"
    path.write_text("Subject: {detail on {hostname}\n\nbody\n")
    with pytest.raises(TemplateError, match="is not a valid format string") as caught:
        Notifier(broker(25), settings(template_path=path))
    assert caught.value.source == str(path) and str(path) in str(caught.value)


def test_template_without_headers_fails_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "state_transition.txt"
    path.write_text("Transition {detail} on {hostname}\n")
    with pytest.raises(TemplateError, match="does not make a mail"):
        Notifier(broker(25), settings(template_path=path))


def test_user_without_password_is_refused() -> None:
    with pytest.raises(NotifyConfigError, match="smtp-password"):
        Notifier(broker(25, **{"smtp-user": "ha"}), settings())


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"burst": 0}, "burst"),
        ({"refill_seconds": 0}, "refill"),
        ({"max_pending": 0}, "max_pending"),
    ],
)
def test_impossible_settings_are_refused(overrides: dict[str, object], says: str) -> None:
    with pytest.raises(NotifyConfigError, match=says):
        Notifier(broker(25), settings(**overrides))


def test_unreadable_ca_file_is_refused(tmp_path: Path) -> None:
    config = broker(25, **{"smtp-starttls": "yes"})
    with pytest.raises(NotifyConfigError, match="CA file"):
        Notifier(config, settings(tls=TlsOptions(ca_file=tmp_path / "absent.pem")))


async def test_starttls_is_required_when_configured(smtp_server: StartServer) -> None:
    server = await smtp_server()  # offers no STARTTLS
    notifier = Notifier(broker(server.port, **{"smtp-starttls": "yes"}), settings())
    await send_one(notifier, lambda: notifier.stats.failed == 1)
    assert "STARTTLS" in (notifier.stats.last_error or "")
    assert server.mails == []


async def test_a_mail_accepted_before_a_hung_quit_counts_as_sent(smtp_server: StartServer) -> None:
    server = await smtp_server(protocol=HangsOnQuit)
    notifier = Notifier(broker(server.port, **{"smtp-timeout": "0.5"}), settings())
    await send_one(notifier, lambda: notifier.stats.sent + notifier.stats.failed == 1)
    assert (notifier.stats.sent, notifier.stats.failed) == (1, 0)
    assert len(server.mails) == 1


# --- alerts (issue 14): mailed by default, whatever the state_transition rule says ---------


async def test_an_alert_is_mailed_even_with_transitions_switched_off(smtp_server: StartServer) -> None:
    server = await smtp_server()
    notifier = Notifier(broker(server.port, rule=""), settings())  # state transition mails off
    await notifier.start()
    try:
        assert notifier.state_transition("EngineDown", "EngineStart") is False
        assert notifier.alert("gave-up.retry-limit", "the engine VM runs nowhere: retry limit reached here") is True
        await eventually(lambda: notifier.stats.sent == 1)
    finally:
        await notifier.stop()
    (mail,) = server.mails
    subject = mail.message["Subject"]
    assert subject.startswith("ovirt-hosted-engine ALERT on host1.example.org: gave-up.retry-limit: the engine VM")
    assert "retry limit reached here" in mail.message.get_content()
    stats = notifier.stats
    assert (stats.alerts, stats.alerts_filtered, stats.filtered, stats.sent) == (1, 0, 1, 1)


async def test_alerts_go_before_waiting_transitions_and_the_ha_alert_rule_filters(
    smtp_server: StartServer, tmp_path: Path
) -> None:
    server = await smtp_server()
    template = tmp_path / "ha_alert.txt"
    template.write_text("Subject: {type} {detail}\n\nat {time}\n")
    config = broker(server.port)
    config = config.model_copy(update={"notify": config.notify.model_copy(update={"ha_alert": "^gave-up"})})
    notifier = Notifier(config, settings(alert_template_path=template, burst=1, refill_seconds=1.0))
    await notifier.start()
    try:
        notifier.state_transition("EngineDown", "EngineStart")  # takes the only token
        await server.wait_for_mails(1)
        notifier.state_transition("EngineStart", "EngineStarting")  # waits for a token...
        assert notifier.alert("vm-without-lease", "filtered out by the rule") is False
        assert notifier.alert("gave-up.no-eligible-host", "no host can start it") is True  # ...goes first
        await server.wait_for_mails(3)
    finally:
        await notifier.stop()
    subjects = [m.message["Subject"] for m in server.mails]
    assert subjects[1] == "ha_alert gave-up.no-eligible-host: no host can start it"
    assert subjects[2] == "ovirt-hosted-engine state transition EngineStart-EngineStarting"
    assert notifier.stats.alerts_filtered == 1
