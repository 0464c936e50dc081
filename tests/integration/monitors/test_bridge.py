"""Bridge monitor against a real Linux bridge inside a network namespace (root)."""

from __future__ import annotations

import asyncio

import pytest

from he_ha.monitors.bridge import BridgeMonitor, BridgeStatus
from he_ha.monitors.framework import MonitorError
from tests.integration.monitors.netns import ip

pytestmark = pytest.mark.root


def make_bridge_with_port(ns: str) -> None:
    """br0 with one veth port (v0, peer v1): carrier follows the port's link."""
    ip("-n", ns, "link", "add", "br0", "type", "bridge")
    ip("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    ip("-n", ns, "link", "set", "v0", "master", "br0")


async def probe_until_up(monitor: BridgeMonitor) -> BridgeStatus:
    """Carrier reaches the bridge asynchronously after its port comes up: allow 5 s."""
    for _ in range(50):
        status = await monitor.probe()
        if status.up:
            break
        await asyncio.sleep(0.1)
    return status


async def test_bridge_up_and_down(netns: str) -> None:
    make_bridge_with_port(netns)
    monitor = BridgeMonitor("br0", netns=netns)

    created = await monitor.probe()
    assert created.exists and created.kind == "bridge"
    assert not created.up and not created.admin_up

    for dev in ("br0", "v0", "v1"):
        ip("-n", netns, "link", "set", dev, "up")
    up = await probe_until_up(monitor)
    assert up.up and up.admin_up and up.carrier and up.operstate == "UP"

    ip("-n", netns, "link", "set", "br0", "down")
    down = await monitor.probe()
    assert down.exists and not down.up and not down.admin_up


async def test_admin_up_without_carrier_is_down(netns: str) -> None:
    """Its only port has no link (the veth peer is down): NO-CARRIER, not usable."""
    make_bridge_with_port(netns)
    ip("-n", netns, "link", "set", "br0", "up")
    ip("-n", netns, "link", "set", "v0", "up")
    status = await BridgeMonitor("br0", netns=netns).probe()
    assert status.admin_up and not status.carrier and not status.up


async def test_missing_bridge(netns: str) -> None:
    status = await BridgeMonitor("ovirtmgmt", netns=netns).probe()
    assert (status.exists, status.up) == (False, False)


async def test_missing_namespace_is_an_error_not_a_down_bridge() -> None:
    with pytest.raises(MonitorError, match="ip link show br0 exited"):
        await BridgeMonitor("br0", netns="hh-mon-no-such-namespace").probe()


def test_bad_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="not a valid interface name"):
        BridgeMonitor("a/b")
    with pytest.raises(ValueError, match="not a valid interface name"):
        BridgeMonitor("x" * 16)
