"""Parsing /proc/meminfo and ``ip -j`` output, network hysteresis, constructor checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from he_ha.config import HostedEngineConf
from he_ha.monitors.bridge import BridgeStatus, bridge_status
from he_ha.monitors.framework import MonitorError
from he_ha.monitors.memory import MemoryMonitor, parse_mem_available_mib
from he_ha.monitors.network import FaultHold, NetworkMonitor
from he_ha.monitors.standard import standard_monitors
from he_ha.monitors.storage import direct_read_probe


def test_mem_available() -> None:
    text = "MemTotal:       16000000 kB\nMemFree:   100 kB\nMemAvailable:    2097152 kB\n"
    assert parse_mem_available_mib(text) == 2048
    with pytest.raises(MonitorError, match="no MemAvailable line"):
        parse_mem_available_mib("MemTotal: 1 kB\n")
    with pytest.raises(MonitorError, match="unexpected MemAvailable line"):
        parse_mem_available_mib("MemAvailable: lots\n")


def test_bridge_flags() -> None:
    link = {
        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        "operstate": "UNKNOWN",
        "linkinfo": {"info_kind": "bridge"},
    }
    assert bridge_status("br0", link) == BridgeStatus("br0", True, True, True, True, "UNKNOWN", "bridge")
    no_carrier = {"flags": ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"], "operstate": "DOWN"}
    assert not bridge_status("br0", no_carrier).up


def test_fault_hold() -> None:
    hold = FaultHold(30.0)
    assert hold.apply(0.4, 0.0) == 1.0 and hold.since == 0.0
    assert hold.apply(0.0, 29.0) == 1.0
    assert hold.apply(0.6, 30.0) == 0.6
    assert hold.apply(1.0, 31.0) == 1.0 and hold.since is None
    assert FaultHold(0.0).apply(0.2, 5.0) == 0.2
    with pytest.raises(ValueError, match="fault_hold must be >= 0"):
        FaultHold(-1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"test": "icmp"}, "must be one of ping, dns, tcp, none"),
        ({"test": "ping"}, "'ping' needs a gateway"),
        ({"test": "tcp", "tcp_address": "h"}, "needs tcp_address and tcp_port"),
        ({"test": "tcp", "tcp_address": "h", "tcp_port": 0}, "tcp_port must be 1..65535"),
        ({"test": "dns", "dns_port": 70000}, "dns_port must be 1..65535"),
        ({"test": "none", "probes": 0}, "probes must be > 0"),
        ({"test": "none", "probe_delay": -1}, "probe_delay must be >= 0"),
    ],
)
def test_network_settings_are_checked(args: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkMonitor(**args)  # type: ignore[arg-type]


def test_other_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="engine_mem_mib must be > 0"):
        MemoryMonitor(0)
    with pytest.raises(ValueError, match="whole 512-byte sectors"):
        direct_read_probe(Path("/x"), size=100)


def test_standard_set_needs_vmid_and_bridge() -> None:
    async def probe() -> None:
        return None

    conf = HostedEngineConf(host_id=1, network_test="none", fqdn="engine.example.org")
    with pytest.raises(ValueError, match="'vmid' is required"):
        standard_monitors(conf, engine_mem_mib=1024, storage_probe=probe)
    conf = conf.model_copy(update={"vmid": "6a3c9a1e-0b7e-4d3f-9a51-2f0c3d4e5f60"})
    with pytest.raises(ValueError, match="'bridge' is required"):
        standard_monitors(conf, engine_mem_mib=1024, storage_probe=probe)
    conf = conf.model_copy(update={"bridge": "ovirtmgmt"})
    monitors = standard_monitors(conf, engine_mem_mib=1024, storage_probe=probe, libvirt_uri="test:///default")
    assert [m.name for m in monitors] == ["network", "cpu", "memory", "bridge", "engine-health", "storage"]
    assert all(m.interval == 10.0 for m in monitors)
