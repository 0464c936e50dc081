"""The engine's own disk lease held by QEMU (docs/supervisor.md, "The engine's disk lease").

The deployed layout's storage domain gets its lockspace ``<SD>`` (``dom_md/ids``) and the HE
disk's volume lease (``<VOL>.lease``) written with sanlock (io_timeout 1, as every lease of this
tier: see he_ha/devcluster/realvm/engine_lease.py), and the tiny engine's vm.conf becomes an
engine XML with that disk and its ``<lease>`` (VDSM's placeholders). he-ha resolves it, joins
``<SD>`` under the host id and launches with both leases, its own and the engine's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from he_ha.devcluster.cluster import ENGINE_UUID, Host, rule_of, state_of
from he_ha.devcluster.realvm import LeaseHolding, RealVmCluster, lease_holdings
from he_ha.devcluster.realvm.engine_lease import engine_lease_areas
from he_ha.lease import LeaseHeldElsewhere, host_dead_seconds
from tests.integration.cli_commands.test_cli_against_daemons import hosted_engine

pytestmark = [pytest.mark.slow, pytest.mark.root]


def engine_lease_free_for(cluster: RealVmCluster, host: Host) -> bool:
    """Can ``host`` (already in lockspace ``<SD>``) take the engine's disk lease right now?"""
    lockspace, lease = engine_lease_areas(host.view)

    async def attempt() -> bool:
        async with cluster.cluster.lease_client(host) as client:
            await client.join(lockspace, host.host_id)  # idempotent
            try:
                await client.acquire(lease, timeout=20)
            except LeaseHeldElsewhere:
                return False
            await client.release(lease)
            return True

    return asyncio.run(attempt())


def assert_refused_for_the_lease(host: Host, attempts: int = 3) -> None:
    """``--vm-start`` on ``host`` while another host's QEMU holds the leases: every attempt is
    refused for the lease (libvirt's lock failure), and ``host`` never destroyed the QEMU it was
    starting (before observe.py's launch epoch, a tick during ``createXML`` could take the
    paused QEMU for a VM running without its lease: docs/realvm.md, Findings)."""
    for _ in range(attempts):
        done = hosted_engine(host, "--vm-start")
        assert done.returncode == 1, done
        assert "refused: another host holds the VM lease" in done.stderr, (
            done,
            [rule_of(e) for e in host.decisions()[-8:]],
        )
    rules = [rule_of(e) for e in host.decisions()]
    assert not [r for r in rules if r.startswith("safety.")], rules


def test_qemu_holds_the_engine_lease_a_second_host_is_refused_and_a_restart_adopts(
    make_realvm: Callable[[int], RealVmCluster],
) -> None:
    cluster = make_realvm(2)
    cluster.use_engine_lease()
    a, b = cluster.hosts
    assert a.deployment is not None
    sd, vol = a.deployment.sd_uuid, a.deployment.disk("vm").volume
    assert cluster.cluster.layout is not None
    ours = cluster.cluster.layout.lockspace.name

    watcher = cluster.watch_split_brain()
    cluster.start_supervisor(a)
    cluster.wait_healthy(a)
    a.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    pid = cluster.qemu_pid(a)
    assert pid is not None
    # QEMU holds both: he-ha's lease and the HE disk's volume lease in the domain's lockspace
    assert sorted(lease_holdings(a), key=lambda h: h.lockspace != ours) == [
        LeaseHolding(ours, ENGINE_UUID, pid),
        LeaseHolding(sd, vol, pid),
    ]

    # host B: its he-ha refuses to start a second copy (libvirt's lock failure) ...
    cluster.start_supervisor(b)
    b.wait_for_decision(lambda e: state_of(e) == "EngineDown")
    assert_refused_for_the_lease(b)
    assert cluster.qemu_pid(b) is None
    # ... it joined <SD> for that start, and the engine lease itself is A's QEMU's
    assert not engine_lease_free_for(cluster, b)

    # A's supervisor killed -9 and started again: it adopts the running VM
    seen = len(a.decisions())
    a.supervisors[-1].kill()
    time.sleep(2)
    assert cluster.qemu_pid(a) == pid and cluster.healthy(a)
    cluster.start_supervisor(a)
    a.wait_for_decision(lambda e: state_of(e) == "EngineUp", after=seen)
    time.sleep(5)  # a few ticks more: nothing destroys or restarts it
    assert cluster.qemu_pid(a) == pid and cluster.healthy(a)
    assert sorted(lease_holdings(a), key=lambda h: h.lockspace != ours) == [
        LeaseHolding(ours, ENGINE_UUID, pid),
        LeaseHolding(sd, vol, pid),
    ]
    assert cluster.running() == [a]
    watcher.check()


def test_a_killed_engine_host_gets_the_vm_started_on_the_other_under_the_engine_lease(
    make_realvm: Callable[[int], RealVmCluster],
) -> None:
    cluster = make_realvm(2)
    cluster.use_engine_lease()
    d = cluster.hosts[0].deployment
    assert d is not None and cluster.cluster.layout is not None
    sd, vol, ours = d.sd_uuid, d.disk("vm").volume, cluster.cluster.layout.lockspace.name
    watcher = cluster.watch_split_brain()
    for host in cluster.hosts:
        cluster.start_supervisor(host)
    deadline = time.monotonic() + 180
    while not cluster.running():
        assert time.monotonic() < deadline, "no host started the engine VM"
        time.sleep(0.2)
    engine_host = cluster.running()[0]
    survivor = next(h for h in cluster.hosts if h is not engine_host)
    cluster.wait_healthy(engine_host)
    engine_host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    survivor.wait_for_decision(lambda e: state_of(e) == "EngineDown")

    engine_host.crash()  # sanlock daemon, supervisor, libvirtd, then QEMU: kill -9
    crashed_at = time.monotonic()
    # Both leases free only after sanlock's host-dead time in their lockspaces.
    launched_at = cluster.wait_running(survivor, timeout=2 * host_dead_seconds(1) + 180)
    up_at = cluster.wait_healthy(survivor)
    print(
        f"\nreal VM, engine lease: engine host killed -> QEMU running on {survivor.name} "
        f"{launched_at - crashed_at:.1f} s, health page up {up_at - crashed_at:.1f} s "
        f"(sanlock host-dead time {host_dead_seconds(1)} s)"
    )
    survivor.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    pid = cluster.qemu_pid(survivor)
    assert pid is not None
    assert sorted(lease_holdings(survivor), key=lambda h: h.lockspace != ours) == [
        LeaseHolding(ours, ENGINE_UUID, pid),
        LeaseHolding(sd, vol, pid),
    ]
    assert cluster.running() == [survivor]
    watcher.check()
