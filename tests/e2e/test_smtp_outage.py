"""The SMTP server is down during a failover (issue 19): the failover does not wait for the
mail, and the mail goes out once the server is back.

A real SMTP server (aiosmtpd, in a thread of the test) serves every host's broker.conf; the
rule mails the transitions into and out of EngineUp. The server is stopped (its port then
refuses connections), the engine VM crashes, and the VM runs healthy again (EngineUp) while
every mail attempt fails; the notifier keeps the failed transitions and tries again with a
backoff (he_ha/notify/notifier.py), so when the server comes back on the same port the
failover's mails arrive. Times are printed, never asserted."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from he_ha.devcluster.cluster import WAIT, Host, rule_of, state_of
from tests.e2e.world import World

pytestmark = [pytest.mark.slow, pytest.mark.root]

SENT_AGAIN = 120.0  # the notifier's backoff (5 s doubling) after a ~20 s outage: well within this


@dataclass(frozen=True)
class Mail:
    at: float  # monotonic, when the server accepted it
    host: str  # the hostname in the body
    subject: str


class Mailbox:
    """aiosmtpd's handler: every mail accepted, with the host that sent it."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        found = re.search(r"service on (\S+) moved", str(text))
        with self._lock:
            self.mails.append(Mail(time.monotonic(), found.group(1) if found else "?", str(message["Subject"])))
        return "250 OK"

    def wait_for(self, wanted: Callable[[Mail], bool], timeout: float, after: float = 0.0) -> Mail:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for mail in self.mails:
                    if mail.at >= after and wanted(mail):
                        return mail
            time.sleep(0.1)
        raise AssertionError(f"no such mail within {timeout} s; received: {self.mails}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _broker_conf(port: int) -> str:
    return (
        "[email]\nsmtp-server = 127.0.0.1\n"
        f"smtp-port = {port}\nsmtp-timeout = 2\n"
        "source-email = ha@example.org\ndestination-emails = ops@example.org\n"
        "[notify]\nstate_transition = EngineUp\n"
    )


def _mails_failed(host: Host) -> int:
    text = host.admin.get("/metrics")
    found = re.search(r'^he_ha_notify_mails_total\{result="failed"\} (\S+)$', text, re.MULTILINE)
    assert found, text
    return int(float(found.group(1)))


def _wait_failed(host: Host, at_least: int) -> None:
    deadline = time.monotonic() + WAIT
    while _mails_failed(host) < at_least:
        assert time.monotonic() < deadline, f"{host.name}: no failed mail attempt recorded"
        time.sleep(0.2)


def test_a_failover_during_an_smtp_outage_is_mailed_when_the_server_is_back(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    port = _free_port()
    for host in world.hosts:
        (host.root / "broker.conf").write_text(_broker_conf(port))
    mailbox = Mailbox()
    server = Controller(mailbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        first = world.engine_on_first()
        victim = world.host(first)
        mailbox.wait_for(lambda m: m.host == victim.name and m.subject.endswith("-EngineUp"), WAIT)

        server.stop()  # the port now refuses connections
        down_at = time.monotonic()
        seen = {h.name: len(h.decisions()) for h in world.hosts}
        victim.crash_vm()
        victim.wait_for_decision(lambda e: rule_of(e) == "up.vm-crashed", after=seen[victim.name])
        again = world.wait_for_new_run(down_at)
        new_host = world.host(again)
        up, _ = new_host.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=seen[new_host.name])
        up_at = time.monotonic()
        # The failover completed while every mail failed: it never waited for SMTP; and the
        # hosts tick on (5 more decisions each) with the server still down.
        _wait_failed(victim, 1)
        _wait_failed(new_host, 1)
        marks = {h.name: len(h.decisions()) for h in world.hosts}
        new_host.wait_for_decision(lambda e: True, after=up + 5)
        for host in world.hosts:
            host.wait_for_decision(lambda e: True, after=marks[host.name] + 5)
        assert [m for m in mailbox.mails if m.at >= down_at] == []

        server = Controller(mailbox, hostname="127.0.0.1", port=port)
        server.start()
        back_at = time.monotonic()
        left = mailbox.wait_for(lambda m: m.host == victim.name and "EngineUp-" in m.subject, SENT_AGAIN, down_at)
        arrived = mailbox.wait_for(
            lambda m: m.host == new_host.name and m.subject.endswith("-EngineUp"), SENT_AGAIN, down_at
        )
    finally:
        server.stop()
    print(
        f"\nSMTP down during a VM-crash failover: VM running again on {again.host} "
        f"{again.first - down_at:.1f} s after the crash, EngineUp after {up_at - down_at:.1f} s, "
        f"with {_mails_failed(victim)} + {_mails_failed(new_host)} failed mail attempts; server back "
        f"{back_at - down_at:.1f} s after the crash; mails arrived {left.at - back_at:.1f} s "
        f"({left.subject!r} from {left.host}) and {arrived.at - back_at:.1f} s "
        f"({arrived.subject!r} from {arrived.host}) after it was back"
    )
    world.assert_supervisors_alive(world.hosts)
    world.finish()
