"""A supervisor's life: start and run the VM (mailing the transitions to a real SMTP
server), tell systemd READY/STATUS/WATCHDOG/STOPPING, react to a VM event at once, stop on
SIGTERM without touching the VM, adopt the running VM after a restart, refuse a bad config."""

from __future__ import annotations

import email
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from aiosmtpd.controller import Controller as SmtpController
from aiosmtpd.smtp import Envelope

from he_ha.devcluster.cluster import Cluster, Host, SupervisorProcess, actions_of, causes_of, rule_of, state_of
from tests.integration.supervisor.leases import owners, try_acquire, wait_until_acquirable

pytestmark = pytest.mark.root


class Mailbox:
    """A real SMTP server (aiosmtpd, in its own thread) collecting the subjects it receives."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content or b"")
        self.subjects.append(str(message["Subject"]))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_alone_it_joins_publishes_and_starts_the_vm_and_the_worker_lease_dies_with_it(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, libvirtd=False)  # in-process test driver: the worker holds the lease
    host = cluster.hosts[0]
    mailbox, port = Mailbox(), free_port()
    smtp = SmtpController(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    (host.root / "broker.conf").write_text(f"[email]\nsmtp-server = 127.0.0.1\nsmtp-port = {port}\n")
    try:
        supervisor = host.start_supervisor()
        _check_start_and_worker_lease(cluster, host, supervisor, mailbox)
    finally:
        smtp.stop()


def _check_start_and_worker_lease(
    cluster: Cluster, host: Host, supervisor: SupervisorProcess, mailbox: Mailbox
) -> None:

    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    decisions = host.decisions()
    rules = [rule_of(e) for e in decisions]
    assert rules.index("down.start") < rules.index("start.ok") < rules.index("starting.up")
    start = next(e for e in decisions if rule_of(e) == "down.start")
    assert "AcquireLeaseAndStartVm" in actions_of(start)

    slot = host.slot()
    assert slot is not None and slot.hostname == "host1" and slot.score == 3400 and not slot.stopped
    assert "state=EngineUp" in slot.extra and "score_breakdown=" in slot.extra
    assert [o.host_id for o in owners(cluster, host)] == [1]  # joined, and holding the VM lease

    # The transitions were mailed (broker.conf's default [notify] rule), off the tick path.
    deadline = time.monotonic() + 30
    while not any("EngineDown-EngineStart" in subject for subject in mailbox.subjects):
        assert time.monotonic() < deadline, mailbox.subjects
        time.sleep(0.1)

    # kill -9: the VM of an in-process hypervisor dies with the supervisor, and so must the
    # lease: the lease worker exits when its stdin closes, and sanlock releases it.
    supervisor.kill()
    wait_until_acquirable(cluster, host, timeout=30)


def test_systemd_hears_ready_after_the_first_publish_then_status_watchdog_and_stopping(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, libvirtd=False)
    host = cluster.hosts[0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(host.root / "notify.sock"))
        systemd.settimeout(30)
        supervisor = host.start_supervisor(
            env={"NOTIFY_SOCKET": str(host.root / "notify.sock"), "WATCHDOG_USEC": "2000000"}
        )  # ping every 1 s
        messages: list[str] = []
        while not any("READY=1" in m for m in messages):
            messages.append(systemd.recv(4096).decode())
        assert host.slot() is not None  # READY only once the lockspace is joined and our slot is out
        ready = len(messages)
        while not any(m == "WATCHDOG=1" for m in messages) or not any(", score " in m for m in messages[ready:]):
            messages.append(systemd.recv(4096).decode())  # a tick's status: "<state>, score <n>, vm <vm>"
        assert supervisor.terminate() == 0
        while not any(m.startswith("STOPPING=1") for m in messages):
            messages.append(systemd.recv(4096).decode())


def test_a_vm_event_triggers_a_tick_at_once(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1)
    host = cluster.hosts[0]
    # A 5 s period: a tick within it that reacts to the destroy cannot be a periodic one.
    host.start_supervisor("--tick-period", "5", "--peer-poll", "0", "--timing", "history=60")
    index, _ = host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    host.wait_for_vm(True)

    vm = host.vm()
    assert vm is not None
    vm.destroy()

    after, reacting = host.wait_for_decision(lambda e: rule_of(e) != "up.ok", after=index + 1)
    # The only host: no peer can take the VM, so it is restarted here at once (issue 14).
    assert rule_of(reacting) == "vm-crashed.restart-here", reacting["record"]["note"]
    assert causes_of(reacting) == ["vm-event"]
    assert reacting["meta"]["causes"][0]["detail"] == "destroyed"
    health = reacting["observation"]["local"]["engine_health"]
    assert health["vm"] == "down_unexpected"  # the tick saw the VM as it is after the event
    # Every tick between EngineUp and the reaction was a periodic one, and none saw the VM down.
    between = host.decisions()[index + 1 : after]
    assert all(causes_of(e) == ["periodic"] and rule_of(e) == "up.ok" for e in between)
    host.wait_for_vm(True)  # the restart took the lease and launched the VM again


def test_sigterm_leaves_the_vm_running_and_a_restart_adopts_it(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(2)
    host, other = cluster.hosts
    first = host.start_supervisor()
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    vm = host.vm()
    assert vm is not None
    domain_id, keeper = vm.ID(), host.keeper_pid()
    assert keeper is not None

    assert first.terminate() == 0
    slot = host.slot()
    assert slot is not None and slot.stopped and slot.score == 0 and "state=AgentStopped" in slot.extra
    last = host.decisions()[-1]
    assert rule_of(last) == "agent.stopped" and causes_of(last) == ["stop"]
    vm = host.vm()
    assert vm is not None and vm.ID() == domain_id  # never touched
    assert host.keeper_pid() == keeper
    assert not try_acquire(cluster, other)  # the lease stays held while the VM runs

    seen = len(host.decisions())
    host.start_supervisor()
    _, adopted = host.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=seen)
    new = host.decisions()[seen:]
    decided = [rule_of(e) for e in new if rule_of(e) != "reinit.await-health"]  # B14: waits for a reading
    assert decided[0] == "reinit.vm-up"
    assert not any("AcquireLeaseAndStartVm" in actions_of(e) for e in new)
    vm = host.vm()
    assert vm is not None and vm.ID() == domain_id  # the same domain: adopted, not restarted
    assert host.keeper_pid() == keeper
    assert adopted["observation"]["lease"] == {"type": "LeaseStatus", "owner": 1, "held_here": True}


def test_a_bad_configuration_exits_with_the_error_naming_the_file() -> None:
    missing = "/nonexistent/hosted-engine.conf"
    result = subprocess.run(
        [sys.executable, "-m", "he_ha.main", "run", "--hosted-engine-conf", missing, "--run-dir", "/tmp/unused"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{missing}: file not found" in result.stderr
