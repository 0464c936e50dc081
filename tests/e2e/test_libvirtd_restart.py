"""libvirtd killed and restarted under the running engine VM (issue 19): the VM is adopted,
not restarted.

This needs the real-VM tier (he_ha/devcluster/realvm, docs/realvm.md): the devcluster's
test-driver VMs live inside their libvirtd and die with it (he_ha/devcluster/vm_watch.py),
while a QEMU process outlives its libvirtd, as on a real host. Two hosts, each with its own
sanlock daemon, real libvirtd (QEMU driver and libvirt's sanlock plugin, in a mount
namespace of its own) and ``he-ha run --lease-holder qemu``; the engine VM runs on host 1 and
its QEMU process holds the VM lease. Host 1's libvirtd is killed (SIGKILL, libvirtd alone: its
QEMU lives on), left dead for 10+ of host 1's ticks, then started again over the same state
directories; libvirt reconnects to the QEMU it finds.

The watch here is pid-based, since libvirtd cannot be asked while it is dead: the realvm
``SplitBrainWatcher`` (at most one host runs guest code; a live QEMU counts as running while its
libvirtd is unreachable) and tests/e2e/safety.py's ``LeaseOwnerCheck`` (the VM lease's owners
read from disk 4 times a second through an observer sanlock daemon: host 1's alone at every
read from the first start on). Asserted: the same QEMU pid all along, no start action on
either host after the kill, host 1 back to EngineUp after libvirtd returns, its QEMU still
the lease's holder (``sanlock client status``), host 2 never started anything."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import libvirt
import pytest

from he_ha.devcluster.cluster import ENGINE_UUID, WAIT, actions_of, rule_of, state_of
from he_ha.devcluster.libvirtd import PrivateLibvirtd
from he_ha.devcluster.realvm import (
    LeaseHolding,
    QemuLibvirtd,
    RealVmCluster,
    engine_image,
    lease_holdings,
)
from tests.e2e.safety import LeaseOwnerCheck

pytestmark = [pytest.mark.slow, pytest.mark.root]

COMMANDS = {
    "libvirtd": "libvirt-daemon",
    "qemu-system-x86_64": "qemu-system-x86",
    "sanlock": "sanlock",
    "unshare": "util-linux",
    "setpriv": "util-linux",
}
DOWN_TICKS = 10  # host 1's decisions while its libvirtd is dead


@pytest.fixture
def realvm() -> Iterator[RealVmCluster]:
    missing = [
        f"{command} (Debian package {package})"
        for command, package in COMMANDS.items()
        if shutil.which(command) is None
    ]
    assert not missing, "this test needs " + ", ".join(missing)
    cluster = RealVmCluster(2, image=engine_image()).__enter__()
    try:
        yield cluster
    finally:
        owned = cluster.cluster.owned_paths()
        cluster.__exit__(None, None, None)
        assert cluster.cluster.leftovers == [], f"processes left behind (killed now): {cluster.cluster.leftovers}"
        assert [path for path in owned if path.exists()] == []


def _health(entry: dict[str, Any]) -> dict[str, Any]:
    return dict(entry["observation"]["local"].get("engine_health") or {})


class QemuPidWatch:
    """Samples host 1's engine QEMU pid 20 times a second: every pid seen, and any gap."""

    def __init__(self, cluster: RealVmCluster) -> None:
        self._cluster = cluster
        self._stop = threading.Event()
        self.pids: list[int | None] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.pids.append(self._cluster.qemu_pid(self._cluster.hosts[0]))

    def stop(self) -> list[int | None]:
        self._stop.set()
        self._thread.join(timeout=5)
        return list(dict.fromkeys(self.pids))


def test_a_restarted_libvirtd_gets_the_running_vm_adopted_not_restarted(realvm: RealVmCluster) -> None:
    cluster = realvm
    host, peer = cluster.hosts
    assert cluster.cluster.layout is not None
    leases = LeaseOwnerCheck(cluster.cluster.layout.vm_lease, cluster.cluster.base / "observer")
    leases.start()
    watcher = cluster.watch_split_brain()
    # The watcher's samples of the dead daemon fail (counted as "QEMU alive, libvirtd
    # unreachable"); libvirt's default handler would print each failure.
    libvirt.registerErrorHandler(lambda _ctx, _error: None, None)
    try:
        cluster.start_supervisor(host)
        cluster.wait_healthy(host)
        host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
        started_at = time.monotonic()  # the lease is QEMU's from here on
        cluster.start_supervisor(peer)
        peer.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere")
        pid = cluster.qemu_pid(host)
        assert pid is not None
        lease = LeaseHolding(cluster.cluster.layout.lockspace.name, ENGINE_UUID, pid)
        assert lease_holdings(host) == [lease]
        libvirtd = host.libvirtd
        assert isinstance(libvirtd, QemuLibvirtd) and libvirtd.process is not None
        old_libvirtd = libvirtd.process.pid
        marks = {h.name: len(h.decisions()) for h in cluster.hosts}
        pids = QemuPidWatch(cluster)

        killed_at = time.monotonic()
        PrivateLibvirtd.kill(libvirtd)  # libvirtd alone (QemuLibvirtd.kill would take QEMU with it)
        host.wait_for_decision(lambda e: True, after=marks[host.name] + DOWN_TICKS)
        down = host.decisions()[marks[host.name] :]
        assert cluster.qemu_pid(host) == pid, "QEMU died with its libvirtd"

        back_at = time.monotonic()
        libvirtd.start()
        assert libvirtd.process is not None and libvirtd.process.pid != old_libvirtd
        host._pin = libvirt.open(libvirtd.default_uri)  # the harness's connection died with the old daemon
        back = len(host.decisions())
        _, up = host.wait_for_decision(
            lambda e: state_of(e) == "EngineUp" and _health(e).get("vm") == "up", after=back, timeout=WAIT
        )
        adopted_at = time.monotonic()
        assert cluster.healthy(host)
        seen_pids = pids.stop()
        for h in cluster.hosts:
            starts = [rule_of(e) for e in h.decisions()[marks[h.name] :] if "AcquireLeaseAndStartVm" in actions_of(e)]
            assert starts == [], f"{h.name} started the VM again: {starts}"
        assert seen_pids == [pid], f"host 1's engine QEMU pids during the fault: {seen_pids}"
        assert lease_holdings(host) == [lease]
        assert lease_holdings(peer) == []
        print(
            f"\nlibvirtd killed under the running VM: {len(down)} decisions of host 1 while it was dead "
            f"({back_at - killed_at:.1f} s): {sorted({(rule_of(e), state_of(e)) for e in down})}, engine "
            f"health {sorted({(_health(e).get('vm'), _health(e).get('detail')) for e in down})}; "
            f"libvirtd back -> EngineUp with the VM seen again {adopted_at - back_at:.1f} s later "
            f"({rule_of(up)}); the same QEMU pid {pid} all along"
        )
        watcher.stop()
        watcher.check()
    finally:
        leases.stop()
        libvirt.registerErrorHandler(None, None)
    assert leases.error is None, leases.error
    during = [r for r in leases.reads if r.start >= started_at]
    assert during and all(r.owners == (host.host_id,) for r in during), [
        r for r in during if r.owners != (host.host_id,)
    ][:5]
    for h in cluster.hosts:
        code = h.supervisors[-1].process.poll()
        assert code is None, f"{h.name}: supervisor exited with {code}"
