"""Failures of a real engine VM: QEMU killed, and the whole engine host killed.

Each host runs a real ``he-ha run --lease-holder qemu`` against its own libvirtd, which
starts QEMU with the VM lease in its domain XML; libvirt's sanlock plugin acquires the
lease for the QEMU process. A watcher thread checks all along that no two hosts ever run
the engine VM at once. The measured times are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from he_ha.devcluster.cluster import ENGINE_UUID, actions_of, rule_of, state_of
from he_ha.devcluster.realvm import LeaseHolding, RealVmCluster, lease_holdings
from he_ha.lease import host_dead_seconds
from tests.integration.cli_status.test_cli_status import status_json
from tests.integration.supervisor.leases import try_acquire

pytestmark = [pytest.mark.slow, pytest.mark.root]


def _held_by(cluster: RealVmCluster, pid: int) -> LeaseHolding:
    assert cluster.cluster.layout is not None
    return LeaseHolding(cluster.cluster.layout.lockspace.name, ENGINE_UUID, pid)


def test_the_lease_is_qemus_and_a_killed_vm_is_restarted(make_realvm: Callable[[int], RealVmCluster]) -> None:
    cluster = make_realvm(2)
    host, other = cluster.hosts  # only `host` runs a supervisor; `other` only asks for the lease
    watcher = cluster.watch_split_brain()
    cluster.start_supervisor(host)
    cluster.wait_healthy(host)
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")

    pid = cluster.qemu_pid(host)
    assert pid is not None
    assert lease_holdings(host) == [_held_by(cluster, pid)]  # the QEMU process owns it, nobody else
    assert not try_acquire(cluster.cluster, other)  # refused while that QEMU runs (-243)

    seen = len(host.decisions())
    killed = cluster.kill_vm(host)
    down_at = time.monotonic()
    launched_at = cluster.wait_running(host, not_pid=killed)
    up_at = cluster.wait_healthy(host, not_pid=killed)
    print(
        f"\nreal VM: kill -9 of QEMU -> new QEMU running {launched_at - down_at:.1f} s, "
        f"health page up again {up_at - down_at:.1f} s"
    )

    found, _ = host.wait_for_decision(lambda e: "AcquireLeaseAndStartVm" in actions_of(e), after=seen)
    print("decisions from the kill to the restart:", " ".join(rule_of(e) for e in host.decisions()[seen : found + 1]))
    restarted = cluster.qemu_pid(host)
    assert restarted is not None and restarted != killed
    assert lease_holdings(host) == [_held_by(cluster, restarted)]
    assert not try_acquire(cluster.cluster, other)
    watcher.check()


def test_a_killed_engine_host_gets_the_vm_started_on_the_other(make_realvm: Callable[[int], RealVmCluster]) -> None:
    cluster = make_realvm(2)
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
    # The lease frees only after sanlock's host-dead time (about 68 s at io_timeout 1).
    launched_at = cluster.wait_running(survivor, timeout=host_dead_seconds(1) + 180)
    up_at = cluster.wait_healthy(survivor)
    print(
        f"\nreal VM: engine host killed -> QEMU running on {survivor.name} {launched_at - crashed_at:.1f} s, "
        f"health page up {up_at - crashed_at:.1f} s (sanlock host-dead time {host_dead_seconds(1)} s)"
    )

    survivor.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    pid = cluster.qemu_pid(survivor)
    assert pid is not None
    assert lease_holdings(survivor) == [_held_by(cluster, pid)]
    assert cluster.running() == [survivor]
    key = str(survivor.host_id)  # and the shim reports it as the engine host
    status = status_json(survivor, lambda d: d.get(key, {}).get("engine-status", {}).get("health") == "good")
    assert status[key]["engine-status"]["vm"] == "up", status
    watcher.check()
    print(f"watcher: {watcher.samples} samples, {watcher.paused_copies} with a second, paused QEMU")
