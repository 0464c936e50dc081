"""One end-to-end test's world: a cluster of real hosts, the engine's health page, the safety watch.

``build_world(count)`` starts ``count`` hosts (he_ha.devcluster.cluster: each its own
sanlock daemon and private libvirtd, so a VM outlives its supervisor), the health page every
supervisor's ``--health-url`` points at (following the VM, with an engine that can hang:
engine_gate.py), and the safety watch (safety.py), which runs from before the first
supervisor starts until the test calls ``finish()``. With ``stall_first`` the first host
reaches the metadata volume through a FUSE view whose I/O can be made to hang
(tests/support/stallfs.py); the other hosts use the file itself.

Everything is stopped in reverse order, also on failure: watch, supervisors (after the stall
is lifted, so none stays blocked in the file system), the FUSE mount, the hosts (and any
process left behind by them, reported), the page.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from he_ha.devcluster.cluster import IO_TIMEOUT, WAIT, Cluster, HealthPage, Host, rule_of, state_of
from he_ha.devcluster.vm_watch import Run
from he_ha.whiteboard import SLOT_BYTES, HostSlot, decode_host_slot
from tests.e2e.engine_gate import EngineGate
from tests.e2e.safety import SafetyWatch
from tests.support.stallfs import StallFS

REQUIRED = ("libvirtd", "sanlock", "fusermount")


@dataclass
class World:
    cluster: Cluster
    gate: EngineGate
    watch: SafetyWatch
    stall: StallFS | None

    @property
    def hosts(self) -> list[Host]:
        return self.cluster.hosts

    def host(self, run: Run) -> Host:
        (host,) = [h for h in self.hosts if h.name == run.host]
        return host

    def engine_on_first(self, *extra: str, wait: float = WAIT) -> Run:
        """Start the first host alone until its engine is up, then the others until each one
        has seen it running there. Returns the VM's run. ``extra``: supervisor options;
        ``wait``: the bound of each of those waits."""
        first, *others = self.hosts
        started = time.monotonic()
        first.start_supervisor(*extra)
        run = self.watch.vms.wait_for_start(started, wait)
        assert run is not None, f"{first.name} did not start the VM within {wait} s"
        assert run.host == first.name, f"the VM started on {run.host}, not on {first.name}"
        first.wait_for_decision(lambda e: state_of(e) == "EngineUp", timeout=wait)
        for host in others:
            host.start_supervisor(*extra)
        for host in others:
            host.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere", timeout=wait)
        return run

    def wait_for_new_run(self, after: float, timeout: float = WAIT) -> Run:
        """The first run of the VM starting after monotonic time ``after``, on any host."""
        run = self.watch.vms.wait_for_start(after, timeout)
        assert run is not None, f"the VM did not start again within {timeout} s; running: {self.watch.vms.running_on()}"
        return run

    def runs_since(self, start: float) -> list[Run]:
        """The VM's runs going on at monotonic time ``start`` or begun later."""
        return [run for run in self.watch.vms.runs() if run.open or run.last >= start]

    def slot(self, host: Host) -> HostSlot | None:
        """``host``'s slot as on the shared volume (never through a stallable view)."""
        with open(self.cluster.metadata_file, "rb") as volume:
            volume.seek(host.host_id * SLOT_BYTES)
            return decode_host_slot(host.host_id, volume.read(SLOT_BYTES))

    def assert_supervisors_alive(self, hosts: Sequence[Host]) -> None:
        for host in hosts:
            for supervisor in host.supervisors[-1:]:
                code = supervisor.process.poll()
                assert code is None, f"{host.name}: supervisor exited with {code}\n{supervisor.log_tail()}"

    def finish(self) -> None:
        """Stop watching and fail on anything unsafe seen during the whole test."""
        self.watch.assert_clean()


def _stop_supervisors(hosts: Sequence[Host], stall: StallFS | None) -> None:
    if stall is not None:
        stall.resume()
    for host in hosts:
        for supervisor in host.supervisors:
            supervisor.kill()


def _check_leftovers(cluster: Cluster) -> None:
    assert not cluster.leftovers, f"processes left behind by the cluster (killed): {cluster.leftovers}"


@contextlib.contextmanager
def build_world(count: int = 3, *, stall_first: bool = False, io_timeout: int = IO_TIMEOUT) -> Iterator[World]:
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None]
    if missing:
        raise AssertionError(f"end-to-end tests need {', '.join(missing)} (Debian: sanlock, libvirt-daemon, fuse3)")
    with contextlib.ExitStack() as stack:
        page = stack.enter_context(HealthPage())
        cluster = Cluster(count, libvirtd=True, health_url=page.url, io_timeout=io_timeout)
        mount = cluster.base / "h1-fuse"
        if stall_first:
            cluster.hosts[0].metadata = mount / "metadata"  # written into its config on entry
        stack.callback(_check_leftovers, cluster)
        stack.enter_context(cluster)
        stall = stack.enter_context(StallFS(mount, cluster.metadata_file)) if stall_first else None
        stack.callback(_stop_supervisors, cluster.hosts, stall)
        assert cluster.layout is not None
        watch = stack.enter_context(SafetyWatch(cluster.hosts, cluster.layout.vm_lease, cluster.base / "observer"))
        gate = EngineGate(watch.vms)
        page.gate = gate
        stack.callback(gate.close)
        yield World(cluster, gate, watch, stall)
