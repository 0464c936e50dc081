"""Network monitor against real targets: ping and tcp to 127.0.0.1, dig to a local DNS
responder, and unreachable targets (TEST-NET-1, a closed port, a dead DNS port)."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import TypedDict

import pytest

from he_ha.config import HostedEngineConf
from he_ha.monitors.framework import MonitorError
from he_ha.monitors.network import NetworkMonitor
from tests.integration.monitors.dns_responder import DnsResponder
from tests.integration.monitors.netns import ip
from tests.unit.monitors import ping_outputs


class _Fast(TypedDict):
    probes: int
    probe_delay: float
    fault_hold: float


FAST: _Fast = {"probes": 3, "probe_delay": 0.05, "fault_hold": 0.0}


def closed_port() -> int:
    """A port on 127.0.0.1 with no listener (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_ping_localhost_is_up() -> None:
    status = await NetworkMonitor("ping", gateway="127.0.0.1", **FAST).probe()
    assert (status.raw, status.effective, status.successes, status.probes) == (1.0, 1.0, 3, 3)
    assert status.last_failure is None


@pytest.mark.root
async def test_ping_in_isolated_namespace_is_down_until_its_loopback_is_up(netns: str) -> None:
    """A fresh network namespace has only a loopback device, and it is down."""
    monitor = NetworkMonitor("ping", gateway="127.0.0.1", netns=netns, probe_timeout=1.0, **FAST)
    down = await monitor.probe()
    assert down.raw == 0.0 and down.effective == 0.0
    assert down.last_failure is not None and down.last_failure.startswith("ping exited")
    ip("-n", netns, "link", "set", "lo", "up")
    up = await monitor.probe()
    assert up.raw == 1.0, up.last_failure


def put_first_on_path(monkeypatch: pytest.MonkeyPatch, directory: Path, name: str, script: str) -> None:
    """An executable ``name`` in ``directory``, found before the system's on PATH."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}:{os.environ['PATH']}")


async def test_one_ping_process_per_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapper records each start of ping, then execs the real one."""
    real = shutil.which("ping")
    log = tmp_path / "starts"
    put_first_on_path(monkeypatch, tmp_path, "ping", f'echo "$*" >> {log}\nexec {real} "$@"\n')
    monitor = NetworkMonitor("ping", gateway="127.0.0.1", probes=4, probe_delay=0.2, probe_timeout=2.0, fault_hold=0.0)
    first, second = await monitor.probe(), await monitor.probe()
    assert (first.successes, second.successes) == (4, 4)
    assert log.read_text().splitlines() == ["-n -c 4 -i 0.2 -W 2 127.0.0.1"] * 2


@pytest.mark.root
async def test_ping_with_every_probe_lost(netns: str) -> None:
    """A veth whose peer has no address: ARP goes unanswered, ping prints 0 received."""
    ip("-n", netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip("-n", netns, "addr", "add", "10.8.0.1/24", "dev", "v0")
    ip("-n", netns, "link", "set", "v0", "up")
    ip("-n", netns, "link", "set", "v1", "up")
    monitor = NetworkMonitor("ping", gateway="10.8.0.2", netns=netns, probe_timeout=0.5, **FAST)
    status = await monitor.probe()
    assert (status.raw, status.effective, status.successes) == (0.0, 0.0, 0)
    assert status.last_failure is not None
    assert status.last_failure.startswith("3 of 3 pings to 10.8.0.2 unanswered: 3 packets transmitted, 0 received")


# Stand-ins for ping below (named as such): partial loss and a truncated output cannot be
# produced on demand here (no netem or nftables), so a script replays captured iputils output.


async def test_partial_loss_gives_a_fraction_through_the_hysteresis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out").write_text(ping_outputs.PARTIAL_LOSS)
    put_first_on_path(monkeypatch, tmp_path, "ping", f"cat {tmp_path / 'out'}\nexit 0\n")
    now = [0.0]
    monitor = NetworkMonitor("ping", gateway="127.0.0.1", probes=4, fault_hold=30.0, clock=lambda: now[0])
    held = await monitor.probe()
    assert (held.raw, held.effective, held.successes, held.probes) == (0.5, 1.0, 2, 4)
    now[0] = 30.0
    counted = await monitor.probe()
    assert (counted.raw, counted.effective) == (0.5, 0.5)
    assert counted.last_failure == (
        "2 of 4 pings to 127.0.0.1 unanswered: 4 packets transmitted, 2 received, 50% packet loss, time 1556ms"
    )


async def test_ping_without_statistics_is_an_error_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 1 with no statistics line is not a measurement: never read it as 0.0 or 1.0."""
    header = ping_outputs.CANNOT_FLOOD_STDOUT.strip()
    put_first_on_path(monkeypatch, tmp_path, "ping", f"echo '{header}'\nexit 1\n")
    monitor = NetworkMonitor("ping", gateway="127.0.0.1", **FAST)
    with pytest.raises(MonitorError, match=r"ping exited 1: PING 127.0.0.1 .* \(no statistics line\)"):
        await monitor.probe()


async def test_ping_round_has_a_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ping that hangs past (probes-1)*delay + timeout + 2 s is killed: an error reading."""
    put_first_on_path(monkeypatch, tmp_path, "ping", "exec sleep 60\n")
    monitor = NetworkMonitor("ping", gateway="127.0.0.1", probes=1, probe_timeout=0.1, fault_hold=0.0)
    with pytest.raises(MonitorError, match=re.escape("ping did not finish within 2.1 s")):
        await monitor.probe()


async def test_tcp_to_listener_is_up() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        monitor = NetworkMonitor("tcp", tcp_address="127.0.0.1", tcp_port=server.getsockname()[1], **FAST)
        status = await monitor.probe()
    finally:
        server.close()
    assert status.raw == 1.0 and status.successes == 3


async def test_tcp_to_closed_port_is_down() -> None:
    monitor = NetworkMonitor("tcp", tcp_address="127.0.0.1", tcp_port=closed_port(), **FAST)
    status = await monitor.probe()
    assert status.raw == 0.0
    assert status.last_failure is not None and "failed" in status.last_failure


async def test_tcp_to_unanswering_listener_times_out() -> None:
    """A listener whose accept queue is full drops further SYNs: the connect hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname(), timeout=2)
    try:
        monitor = NetworkMonitor(
            "tcp", tcp_address="127.0.0.1", tcp_port=server.getsockname()[1], probe_timeout=0.3, **FAST
        )
        status = await monitor.probe()
    finally:
        filler.close()
        server.close()
    assert status.raw == 0.0
    assert status.last_failure is not None and "timed out after 0.3 s" in status.last_failure


async def test_dns_against_local_resolver_is_up(dns_server: tuple[DnsResponder, int]) -> None:
    responder, port = dns_server
    monitor = NetworkMonitor("dns", dns_server="127.0.0.1", dns_port=port, **FAST)
    status = await monitor.probe()
    assert status.raw == 1.0, status.last_failure
    assert responder.queries == 3  # dig really asked our server each time


@pytest.mark.root
async def test_dns_from_isolated_namespace_is_down(dns_server: tuple[DnsResponder, int], netns: str) -> None:
    responder, port = dns_server
    ip("-n", netns, "link", "set", "lo", "up")  # its own 127.0.0.1, where no resolver listens
    monitor = NetworkMonitor("dns", dns_server="127.0.0.1", dns_port=port, netns=netns, probe_timeout=1.0, **FAST)
    status = await monitor.probe()
    assert status.raw == 0.0 and responder.queries == 0


async def test_dns_against_dead_resolver_is_down() -> None:
    monitor = NetworkMonitor("dns", dns_server="127.0.0.1", dns_port=closed_port(), probe_timeout=1.0, **FAST)
    status = await monitor.probe()
    assert status.raw == 0.0
    assert status.last_failure is not None and status.last_failure.startswith("dig exited")


async def test_none_is_always_up() -> None:
    status = await NetworkMonitor("none", **FAST).probe()
    assert status.raw == 1.0 and status.test == "none"


async def test_partial_failure_gives_a_fraction() -> None:
    """A listener that accepts once then closes: later probes are refused → 1/3."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    calls = 0
    monitor = NetworkMonitor("tcp", tcp_address="127.0.0.1", tcp_port=port, **FAST)
    original = monitor._single_probe

    async def first_then_close() -> str | None:
        nonlocal calls
        calls += 1
        result = await original()
        if calls == 1:
            server.close()
        return result

    monitor._single_probe = first_then_close  # type: ignore[method-assign]
    status = await monitor.probe()
    assert status.successes == 1 and status.raw == 1 / 3


async def test_hysteresis_holds_a_fault_until_it_persists() -> None:
    """Real refused connections; a controlled clock stands in for the passing minutes."""
    now = [1000.0]
    port = closed_port()
    monitor = NetworkMonitor(
        "tcp", tcp_address="127.0.0.1", tcp_port=port, probes=2, probe_delay=0.0, fault_hold=60.0, clock=lambda: now[0]
    )
    first = await monitor.probe()
    assert (first.raw, first.effective, first.fault_since) == (0.0, 1.0, 1000.0)
    now[0] = 1059.0
    assert (await monitor.probe()).effective == 1.0  # 59 s: not yet
    now[0] = 1060.0
    confirmed = await monitor.probe()
    assert confirmed.effective == 0.0 and confirmed.fault_since == 1000.0

    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(8)
    try:
        now[0] = 1070.0
        recovered = await monitor.probe()
    finally:
        server.close()
    assert (recovered.raw, recovered.effective, recovered.fault_since) == (1.0, 1.0, None)


def test_tcp_in_a_namespace_is_refused() -> None:
    with pytest.raises(ValueError, match="only ping and dns"):
        NetworkMonitor("tcp", tcp_address="127.0.0.1", tcp_port=80, netns="x")


def test_from_conf_takes_targets_from_hosted_engine_conf() -> None:
    conf = HostedEngineConf(host_id=1, network_test="tcp", tcp_t_address="10.0.0.1", tcp_t_port=443)
    monitor = NetworkMonitor.from_conf(conf, probes=2)
    assert (monitor.test, monitor.tcp_address, monitor.tcp_port, monitor.probes) == ("tcp", "10.0.0.1", 443, 2)
