"""sd_notify client against REAL unix datagram sockets (a path in tmp_path and an abstract name)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from he_ha.sdnotify import SdNotifyError, SystemdNotifier, socket_address, watchdog_period
from tests.support.tools import require_tool


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def test_messages_arrive_on_a_path_socket(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("joined lockspace")
    assert sock.recv(4096) == b"READY=1\nSTATUS=joined lockspace"
    assert notifier.status("EngineUp, score 3400")
    assert sock.recv(4096) == b"STATUS=EngineUp, score 3400"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_abstract_socket() -> None:
    name = f"he-ha-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        notifier.close()
    finally:
        sock.close()


def test_newlines_in_status_cannot_forge_assignments(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.status("bad\nREADY=1")
    assert sock.recv(4096) == b"STATUS=bad READY=1"
    notifier.close()


def test_unset_socket_is_a_logged_no_op() -> None:
    with capture_logs() as logs:
        notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval is None
    assert any(e["log_level"] == "debug" and "NOTIFY_SOCKET" in e["event"] for e in logs)


def test_send_to_a_missing_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    with capture_logs() as logs:
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    levels = [e["log_level"] for e in logs if e["event"] == "sd_notify send failed"]
    assert levels == ["warning", "debug"]
    assert "No such file" in logs[0]["error"]
    notifier.close()


def test_a_full_receiver_queue_does_not_block(receiver: tuple[socket.socket, str]) -> None:
    # Nobody reads the receiver: a blocking sender would hang here once the queue is full
    # (pytest-timeout would fail the test); the non-blocking one reports False instead.
    sock, path = receiver
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    results = [notifier.status("x" * 1000) for _ in range(2000)]
    assert results[0] is True
    assert False in results
    sock.recv(4096)  # drain one: sending works again and says so
    with capture_logs() as logs:
        assert notifier.watchdog()
    assert any(e["event"] == "sd_notify send works again" for e in logs)
    notifier.close()


def test_watchdog_interval_is_half_the_period() -> None:
    notifier = SystemdNotifier({"WATCHDOG_USEC": "60000000"}, pid=1234)
    assert notifier.watchdog_period == 60.0
    assert notifier.watchdog_interval == 30.0


def test_watchdog_pid_selects_the_process() -> None:
    env = {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "77"}
    assert watchdog_period(env, 77) == 20.0
    assert watchdog_period(env, 78) is None
    assert watchdog_period({}, 77) is None
    assert SystemdNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_period == 1.0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WATCHDOG_USEC": "sixty"}, "WATCHDOG_USEC"),
        ({"WATCHDOG_USEC": "0"}, "WATCHDOG_USEC"),
        ({"WATCHDOG_USEC": "100", "WATCHDOG_PID": "x"}, "WATCHDOG_PID"),
    ],
)
def test_malformed_watchdog_environment_is_a_typed_error(env: dict[str, str], named: str) -> None:
    with pytest.raises(SdNotifyError, match=named):
        watchdog_period(env, 1)


def test_socket_address_forms() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc") == b"\0abc"


# --- the unit file that runs the notifying service ----------------------------------------------

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "he-ha.service"


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_file_keeps_the_safety_settings() -> None:
    unit = _unit_settings()
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    # default KillMode: the lease keeper lives in its own scope, outside this unit's kill path
    assert "KillMode" not in unit
    assert unit["OOMPolicy"] == ["continue"]
    assert "network-online.target" in " ".join(unit["Wants"]) and "network-online.target" in " ".join(unit["After"])
    assert unit["EnvironmentFile"] == ["-/etc/default/he-ha", "-/etc/sysconfig/he-ha"]
    assert "$HE_HA_OPTIONS" in unit["ExecStart"][0]
    assert "PYTHONFAULTHANDLER=1" in unit["Environment"]
    assert "DevicePolicy" not in unit and "PrivateDevices" not in unit  # block devices stay reachable
    assert unit["RuntimeDirectoryPreserve"] == ["yes"]  # vm.conf survives a stop
    assert "ovirt-ha-agent.service" in unit["Conflicts"][0] and "ovirt-ha-broker.service" in unit["Conflicts"][0]
    assert unit["Restart"] == ["always"]
    period = SystemdNotifier(
        {"WATCHDOG_USEC": str(int(unit["WatchdogSec"][0].removesuffix("s")) * 1_000_000)}
    ).watchdog_interval
    assert period == 30.0


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "systemd")
    # verify insists that ExecStart exists: point it at a real executable for the check.
    copy = tmp_path / "he-ha.service"
    copy.write_text(UNIT.read_text().replace("ExecStart=/usr/bin/he-ha", f"ExecStart={sys.executable} -m he_ha"))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "he-ha.service" not in result.stderr, result.stderr  # no warnings about our unit


def test_unit_file_security_exposure_is_at_most_6_5() -> None:
    analyze = require_tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    last = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert last, result.stdout + result.stderr
    score = float(last[0].split(":")[1].split()[0])
    assert score <= 6.5, last[0]
