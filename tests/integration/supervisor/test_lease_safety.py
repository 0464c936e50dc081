"""The VM lease across failures: a supervisor killed with -9, a lease keeper killed, two
hosts racing, and storage lost under a running VM (sanlock's killpath)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from he_ha.devcluster.cluster import Cluster, Host, rule_of, state_of
from tests.integration.supervisor.leases import try_acquire, wait_until_acquirable

pytestmark = pytest.mark.root


def test_kill_9_of_the_supervisor_keeps_the_lease_until_the_vm_is_gone(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(2)
    host, other = cluster.hosts
    supervisor = host.start_supervisor()
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")

    supervisor.kill()
    for _ in range(3):  # the keeper holds it: no other host gets it while the VM may run
        assert not try_acquire(cluster, other)
        time.sleep(0.5)
    assert host.vm() is not None

    # The VM ends while no supervisor runs; the lease is still held (nobody knows yet) ...
    host.set_local_maintenance(True)  # so the next supervisor does not start it again
    vm = host.vm()
    assert vm is not None
    vm.destroy()
    assert not try_acquire(cluster, other)
    # ... until a supervisor sees the VM gone and releases it.
    seen = len(host.decisions())
    host.start_supervisor()
    host.wait_for_decision(lambda e: "ReleaseLease" in str(e["record"]["actions"]), after=seen)
    wait_until_acquirable(cluster, other, timeout=30)
    assert host.vm() is None


def test_a_killed_lease_keeper_gets_the_vm_destroyed_at_once(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1)
    host = cluster.hosts[0]
    host.start_supervisor()
    index, _ = host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    keeper = host.keeper_pid()
    assert keeper is not None

    os.kill(keeper, signal.SIGKILL)
    found, lost = host.wait_for_decision(lambda e: rule_of(e) != "up.ok", after=index + 1)
    assert rule_of(lost) == "safety.lease-lost", lost["record"]["note"]
    assert lost["meta"]["causes"][0]["cause"] == "lease-lost"
    assert "DestroyVm" in str(lost["record"]["actions"])
    _, done = host.wait_for_decision(lambda e: rule_of(e) == "force-stop.done", after=found)
    assert done["observation"]["result"]["outcome"] == "ok"


def _running_count(hosts: list[Host]) -> int:
    return sum(host.vm() is not None for host in hosts)


def test_two_hosts_start_together_and_exactly_one_runs_the_vm(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(2)
    for host in cluster.hosts:
        host.start_supervisor()
    deadline = time.monotonic() + 60
    while _running_count(cluster.hosts) == 0:
        assert time.monotonic() < deadline, "nobody started the VM"
        time.sleep(0.05)
    runner = next(h for h in cluster.hosts if h.vm() is not None)
    idle = next(h for h in cluster.hosts if h is not runner)
    runner.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    idle.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere")
    for _ in range(40):  # and it stays that way
        assert _running_count(cluster.hosts) == 1
        time.sleep(0.1)
    assert idle.vm() is None


@pytest.mark.slow
def test_losing_the_lockspace_fences_the_vm_through_sanlocks_killpath(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(1)
    host = cluster.hosts[0]
    host.start_supervisor()
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    keeper = host.keeper_pid()
    assert keeper is not None

    # Storage under the lockspace goes away: renewals fail, and after 8 io timeouts sanlock
    # must end the lease holders. Its killpath (he-ha fence) destroys the VM, then the keeper.
    os.truncate(cluster.shared / "hosted-engine.lockspace", 0)
    host.wait_for_vm(False, timeout=40)
    fence_log = host.run_dir / "fence.log"
    deadline = time.monotonic() + 20
    while not fence_log.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = fence_log.read_text()
    assert f"lease keeper {keeper} ended" in text, text  # the VM: destroyed by whichever saw it first
