"""The safety watch of an end-to-end test: never two copies of the engine VM, never a copy
without its lease — checked all test long, not just at the end.

``SafetyWatch`` runs, from before the first supervisor starts until the test ends:

- ``he_ha.devcluster.vm_watch.VmWatcher``: every host's hypervisor sampled 10 times a second;
  the runs of samples in which a host ran the VM; ``violations`` when two hosts' runs
  overlap in time (two copies at once);
- ``LeaseOwnerCheck``: about 4 times a second, the VM lease's owners as sanlock records them
  on disk, read through a sanlock daemon of its own (an observer that joins no lockspace, so
  it outlives the hosts' crashes). A VM run that began before a read started and lasted until
  after it ended ran throughout the read, so the lease must have been its host's all along
  (invariants 1 and 2: launched only with the lease, never released while the VM runs). The
  reads are judged against the final runs when the watch stops.

``assert_clean()`` fails on any violation, any such lease mismatch, or a watch that did not
work (no samples, no lease reads, a failed reader).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import structlog

from he_ha.devcluster.cluster import Host
from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.devcluster.vm_watch import Run, VmWatcher
from he_ha.lease import LeaseClient, VmLease

log = structlog.get_logger(__name__)

READ_PERIOD = 0.25
READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class OwnerRead:
    """The VM lease's owners (host ids) read between ``start`` and ``end`` (monotonic)."""

    start: float
    end: float
    owners: tuple[int, ...]


def lease_mismatches(reads: Sequence[OwnerRead], runs: Sequence[Run], host_ids: dict[str, int]) -> list[str]:
    """Every read during which a host ran the VM all along while the lease was not its alone."""
    found = []
    for read in reads:
        for run in runs:
            if run.first <= read.start and read.end <= run.last and read.owners != (host_ids[run.host],):
                found.append(
                    f"{run.host} ran the VM from t={run.first:.2f} to t={run.last:.2f}, but at "
                    f"t={read.start:.2f} sanlock recorded the VM lease's owners as {list(read.owners)}"
                )
    return found


class LeaseOwnerCheck:
    """A thread reading the VM lease's owners through its own sanlock daemon."""

    def __init__(self, vm_lease: VmLease, run_dir: Path) -> None:
        self._vm_lease = vm_lease
        # Started from the caller's (long-lived) thread: the daemon's PDEATHSIG follows it.
        self._daemon = SanlockDaemon(run_dir, "observer")
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="lease-owner-check", daemon=True)
        self.reads: list[OwnerRead] = []
        self.error: BaseException | None = None

    def start(self) -> None:
        self._daemon.start()
        self._thread.start()
        if not self._ready.wait(30) or self.error is not None:
            self.stop()
            raise AssertionError(f"the lease owner check made no read within 30 s: {self.error!r}")

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)
        self._daemon.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._read_loop())
        except BaseException as error:  # kept for assert_clean: a dead checker must fail the test
            self.error = error
            log.exception("lease owner check failed")
            self._ready.set()

    async def _read_loop(self) -> None:
        client = await LeaseClient.start(run_dir=self._daemon.run_dir, stderr=self._daemon.run_dir / "client.log")
        try:
            while not self._stopping.is_set():
                start = time.monotonic()
                owners = await client.owners(self._vm_lease, timeout=READ_TIMEOUT)
                self.reads.append(OwnerRead(start, time.monotonic(), tuple(sorted(o.host_id for o in owners))))
                self._ready.set()
                await asyncio.sleep(READ_PERIOD)
        finally:
            await client.close()


class SafetyWatch:
    """Use as a context manager; ``vms`` is the VmWatcher (runs, waits, violations)."""

    def __init__(self, hosts: Sequence[Host], vm_lease: VmLease, observer_dir: Path) -> None:
        self.vms = VmWatcher(hosts)
        self.leases = LeaseOwnerCheck(vm_lease, observer_dir)
        self._host_ids = {host.name: host.host_id for host in hosts}
        self._running = False

    def __enter__(self) -> Self:
        self.leases.start()
        try:
            self.vms.__enter__()
        except BaseException:
            self.leases.stop()
            raise
        self._running = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._running:
            self._running = False
            self.vms.__exit__(None, None, None)
            self.leases.stop()

    def problems(self) -> list[str]:
        found = [violation.describe() for violation in self.vms.violations]
        found += lease_mismatches(self.leases.reads, self.vms.runs(), self._host_ids)
        if self.leases.error is not None:
            found.append(f"the lease owner check failed: {self.leases.error!r}")
        if self.vms.samples == 0 or not self.leases.reads:
            found.append(f"the watch did not look: {self.vms.samples} VM samples, {len(self.leases.reads)} lease reads")
        return found

    def assert_clean(self) -> None:
        """Stop watching, then fail on anything unsafe seen at any time."""
        self.stop()
        problems = self.problems()
        assert not problems, "\n".join(problems)
