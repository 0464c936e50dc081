"""A mixed cluster during an upgrade (issue 12 item 3 and 4; docs/supervisor.md, "The engine's
disk lease"): host A runs the engine VM the way the original agent + VDSM do, its QEMU holding
ONLY the engine's disk lease ``<SD>:<VOL>`` (lockspace ``<SD>``, ``dom_md/ids``), not he-ha's.

(a) he-ha on host B never starts a second copy: its start needs the engine lease too, which
    libvirt's sanlock plugin cannot acquire while A's QEMU holds it.
(b) when A switches to he-ha (the original daemons gone, the VM still running), he-ha adopts
    the VM: same QEMU pid, EngineUp, nothing destroyed.

io_timeout 1 everywhere, as in the whole tier (he_ha/devcluster/realvm/engine_lease.py): the
domain's lockspace and lease are written with it and the supervisors run with --io-timeout 1.
A lockspace keeps the io_timeout it was joined with and sanlock's host-dead time follows it
(8 × io_timeout + 60 s): VDSM's 10 s would make every wait on a lease here 140 s instead of 68 s,
and a lockspace joined by "VDSM" with another timeout than he-ha's would differ from the
deployed case only in that number.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import libvirt
import pytest

from he_ha.config import load_hosted_engine_conf, load_vm_conf
from he_ha.devcluster.cluster import Host, state_of
from he_ha.devcluster.realvm import LeaseHolding, RealVmCluster, lease_holdings
from he_ha.devcluster.realvm.engine_lease import engine_lease_areas
from he_ha.ovirt import VdsmRoots
from he_ha.ovirt.engine_xml import ResolveContext, resolve_engine_xml
from he_ha.supervisor.engine_launch import UNKNOWN_HOST, ensure_networks, volume_lookup
from he_ha.vm import leases_in, parse_domain_xml

pytestmark = [pytest.mark.slow, pytest.mark.root]

IO_TIMEOUT = 1  # see the module doc
WATCH = 15.0  # seconds B keeps running beside A's VDSM-started VM after its first refused start
REFUSAL_WAIT = 180.0  # B's supervisor starts, joins its lockspace, decides to start, is refused


def join_domain_lockspace(cluster: RealVmCluster, host: Host) -> None:
    """What VDSM's domain monitor does: ``host`` joins lockspace ``<SD>`` under its host id."""
    lockspace, _ = engine_lease_areas(host.view, IO_TIMEOUT)

    async def join() -> None:
        async with cluster.cluster.lease_client(host) as client:
            await client.join(lockspace, host.host_id)

    asyncio.run(join())


def start_as_vdsm(cluster: RealVmCluster, host: Host) -> None:
    """Create the engine VM through ``host``'s libvirtd as VDSM would: the engine's XML from
    vm.conf, resolved (disk paths, lease path and offset, hook), with the engine ``<lease>`` as
    its only lease; the host in ``<SD>`` first. No he-ha runs on ``host``."""
    conf = load_hosted_engine_conf(host.hosted_engine_conf)
    vm_conf = load_vm_conf(conf.vm_conf)
    assert vm_conf.xml_base64 is not None
    xml = base64.b64decode(vm_conf.xml_base64).decode()
    resolved = resolve_engine_xml(
        xml,
        ResolveContext(
            UNKNOWN_HOST, conf.sd_uuid or "", volume_lookup(conf, VdsmRoots.from_mount_root(host.mount_root))
        ),
    )
    d = host.deployment
    assert d is not None
    leases = [(lease.lockspace, lease.key) for lease in leases_in(parse_domain_xml(resolved.xml, "vdsm"))]
    assert leases == [(d.sd_uuid, d.disk("vm").volume)], leases
    join_domain_lockspace(cluster, host)
    conn = libvirt.open(host.libvirt_uri)
    try:
        if resolved.networks:
            ensure_networks(conn, resolved.networks, "vdsm")
        conn.createXML(resolved.xml, 0)
    finally:
        conn.close()


def refused_starts(host: Host) -> list[dict[str, Any]]:
    """Decisions of ``host`` that consumed a start refused because the lease is held elsewhere."""
    return [e for e in host.decisions() if (e["observation"].get("result") or {}).get("outcome") == "lease-busy"]


def no_destroy(host: Host, after: int = 0) -> bool:
    """No decision of ``host`` (from entry ``after`` on) fired a safety rule or destroyed the VM."""
    for entry in host.decisions()[after:]:
        record = entry["record"]
        if str(record["rule"]).startswith("safety.") or state_of(entry) == "EngineForceStop":
            return False
    return True


def test_a_vdsm_started_vm_is_never_joined_by_a_second_copy_and_is_adopted_when_its_host_switches(
    make_realvm: Callable[[int], RealVmCluster],
) -> None:
    cluster = make_realvm(2)
    cluster.use_engine_lease()
    a, b = cluster.hosts
    d = a.deployment
    assert d is not None and cluster.cluster.layout is not None
    sd, vol = d.sd_uuid, d.disk("vm").volume
    ours = cluster.cluster.layout.lockspace.name

    watcher = cluster.watch_split_brain()
    start_as_vdsm(cluster, a)
    cluster.wait_healthy(a)
    pid = cluster.qemu_pid(a)
    assert pid is not None
    assert lease_holdings(a) == [LeaseHolding(sd, vol, pid)]  # the engine lease alone, as on VDSM

    # (a) he-ha on B: never a second copy; its starts are refused (libvirt's lock failure)
    cluster.start_supervisor(b)
    deadline, watch_until = time.monotonic() + REFUSAL_WAIT, None
    while watch_until is None or time.monotonic() < watch_until:
        assert not cluster.guest_running(b)  # a paused QEMU that lost the lease race is no copy
        assert cluster.running() == [a]
        if watch_until is None and refused_starts(b):
            watch_until = time.monotonic() + WATCH
        assert watch_until is not None or time.monotonic() < deadline, "host B never tried to start the VM"
        time.sleep(0.2)
    assert cluster.running() == [a] and cluster.qemu_pid(a) == pid
    assert lease_holdings(b) == []

    # (b) A switches to he-ha, the VM running: adopted, not destroyed or restarted
    cluster.start_supervisor(a)
    a.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    time.sleep(5)  # a few ticks more: nothing destroys or restarts it
    assert cluster.qemu_pid(a) == pid and cluster.healthy(a)
    assert no_destroy(a)
    assert lease_holdings(a) == [LeaseHolding(sd, vol, pid)]
    assert ours not in {h.lockspace for h in lease_holdings(a)}
    assert cluster.running() == [a]
    watcher.check()
