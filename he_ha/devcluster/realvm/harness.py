"""Simulated hosts whose hypervisor is a real libvirtd + QEMU running the tiny engine VM.

Built from he_ha.devcluster.cluster by composition: a ``Cluster`` with no hosts of its own
provides the shared storage (metadata volume, lockspace, VM lease), its initialisation and
its clean-up; each ``Host`` is the standard one (own sanlock daemon, configuration, run
dir, ``he-ha run`` processes) with a ``QemuLibvirtd`` as its hypervisor and the engine
image's domain XML in its vm.conf. Every host's VM forwards a port of its own, so each
supervisor's health URL reaches only its own host's VM: a VM on the wrong host cannot
answer for another one, and two copies would not collide on one port (which would hide a
split brain instead of showing it). Supervisors run with ``--lease-holder qemu``.

The domain XML is the same on every host (the port comes from a file in each libvirtd's
namespace, domain.py), and every supervisor gets ``--migrate-uri`` naming the target host's
libvirtd socket through a link ``<base>/libvirt/<hostname>.sock``: he-ha's live migration
between two hosts is a real peer-to-peer migration between their libvirtds.
``refuse_migrations_to(host)`` removes that link (the target's libvirtd unreachable for a
migration, while the host itself goes on as before).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import TracebackType

import libvirt

from he_ha.config import load_hosted_engine_conf
from he_ha.devcluster.cluster import ENGINE_NAME, ENGINE_UUID, Cluster, Host, SupervisorProcess
from he_ha.devcluster.deployed import HeDisk, add_ovf_stores, update_ovf_store
from he_ha.devcluster.realvm.engine_lease import engine_lease_xml, write_engine_lease
from he_ha.devcluster.realvm.engine_ovf import console_path, engine_ovf, engine_ovf_xml, write_host_files
from he_ha.devcluster.realvm.guest import (
    CHANNEL_DIR,
    MEMORY_MIB,
    engine_domain_xml,
    health_url,
    write_host_net,
    write_vm_conf,
)
from he_ha.devcluster.realvm.image import HEALTH_BODY, EngineImage, engine_image
from he_ha.devcluster.realvm.qemu_libvirtd import QemuLibvirtd

# A VM that died on its own is started again after 4 s (the original waits 560 s).
SUPERVISOR_ARGS = ("--lease-holder", "qemu", "--timing", "unexpectedly_down_timeout=4")
BOOT_WAIT = 180.0  # generous bound for a TCG boot on a loaded 2-core machine
HTTP_TIMEOUT = 2.0


@dataclass(frozen=True)
class LeaseHolding:
    """One resource line of ``sanlock client status``: who holds what."""

    lockspace: str
    resource: str
    pid: int


class RealVmCluster:
    """``count`` hosts with real QEMU; use as a context manager (everything is killed and
    removed on exit, also on failure)."""

    def __init__(self, count: int, *, image: EngineImage | None = None) -> None:
        self.image = image or engine_image()
        self.cluster = Cluster(0, libvirtd=False, health_url="")  # storage only; the hosts are ours
        self.ports: dict[int, int] = {}
        self._watcher: SplitBrainWatcher | None = None
        self._page_watchers: list[EnginePageWatcher] = []
        self.ovf_stores: tuple[HeDisk, ...] = ()  # use_engine_ovf: the domain's OVF_STORE volumes
        self._ovf_template: str | None = None
        self._host_root = False  # use_engine_ovf: supervisors read the host facts under host.root
        self.sockets = self.cluster.base / "libvirt"  # <hostname>.sock: a link to the host's libvirtd socket
        try:
            self.sockets.mkdir()
            for n in range(1, count + 1):
                port = free_port()
                host = Host(
                    n, self.cluster.base / f"h{n}", self.cluster.shared, health_url(port), self.cluster.metadata_file
                )
                self.cluster.hosts.append(host)
                host.libvirtd = QemuLibvirtd(self.cluster.base / f"h{n}-lv", host.daemon.run_dir)
                self.ports[n] = port
                self.accept_migrations_to(host)
        except BaseException:
            self.cluster.__exit__(None, None, None)  # removes what was created so far
            raise

    @property
    def hosts(self) -> list[Host]:
        return self.cluster.hosts

    def __enter__(self) -> RealVmCluster:
        self.cluster.__enter__()  # starts daemons and libvirtds, writes configs, initialises storage
        try:
            for host in self.hosts:
                write_host_net(_libvirtd(host).state / "lib", self.ports[host.host_id])
                self._write_vm_conf(host)
        except BaseException:
            self.cluster.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        for watcher in self._page_watchers:
            watcher.stop()
        self.cluster.__exit__(exc_type, exc, tb)

    def _write_vm_conf(self, host: Host, *, engine_lease: bool = False, readonly_disk: bool = False) -> None:
        vm_conf = load_hosted_engine_conf(Path(host.cli_env()["HE_HA_HOSTED_ENGINE_CONF"])).vm_conf
        xml = engine_domain_xml(ENGINE_NAME, ENGINE_UUID, self.image)  # the same on every host
        if engine_lease:
            assert host.deployment is not None
            xml = engine_lease_xml(xml, host.deployment, CHANNEL_DIR, readonly_disk=readonly_disk)
        write_vm_conf(vm_conf, ENGINE_NAME, ENGINE_UUID, xml)

    def use_engine_lease(self, *, migratable: bool = False) -> None:
        """Before any supervisor starts: the storage domain's lockspace ``<SD>`` and the HE
        disk's volume lease written (he_ha/devcluster/realvm/engine_lease.py), and every host's
        vm.conf an engine XML carrying that lease, so he-ha protects the VM with it too.
        ``migratable``: the HE disk read-only, which libvirt lets a live migration take from
        this machine's local file system (engine_lease_xml)."""
        first = self.hosts[0]
        write_engine_lease(first.view, first.daemon.run_dir)
        for host in self.hosts:
            self._write_vm_conf(host, engine_lease=True, readonly_disk=migratable)

    def use_engine_ovf(self, template: str, *, memory_mib: int = MEMORY_MIB) -> tuple[HeDisk, ...]:
        """Before any supervisor starts: the VM defined only by the engine's OVF in an OVF_STORE
        volume (he_ha/devcluster/realvm/engine_ovf.py). The engine's disk lease written as for
        ``use_engine_lease``; the domain's two OVF_STORE volumes added, the first updated with
        ``template`` made this VM's OVF (``EngineXml`` = the tiny engine in the engine's form,
        ``memory_mib``); every host's run-directory vm.conf removed (he-ha's last-good copy is
        not there yet), its per-host files written (NIC config, hook channel directory, host
        facts) and its supervisors given ``--host-root``. Returns the OVF_STORE volumes."""
        first = self.hosts[0]
        write_engine_lease(first.view, first.daemon.run_dir)
        self.ovf_stores = add_ovf_stores(first.view)
        self._ovf_template = template
        self._host_root = True
        for host in self.hosts:
            host.vm_conf.unlink(missing_ok=True)
            assert not (host.state_dir / "vm.conf").exists()
            write_host_files(host.root, host.host_id, _libvirtd(host), self.ports[host.host_id])
        self.update_engine_ovf(memory_mib=memory_mib, store=0, epoch=time.time() - 60)
        return self.ovf_stores

    def engine_ovf(self, *, memory_mib: int) -> bytes:
        """The engine's OVF of this cluster's VM with ``memory_mib`` (after ``use_engine_ovf``)."""
        assert self._ovf_template is not None, "use_engine_ovf first"
        d = self.hosts[0].deployment
        assert d is not None
        xml = engine_ovf_xml(ENGINE_NAME, ENGINE_UUID, self.image, d, memory_mib=memory_mib)
        return engine_ovf(self._ovf_template, d, xml, memory_mib=memory_mib)

    def update_engine_ovf(self, *, memory_mib: int, store: int, epoch: float | None = None) -> bytes:
        """An engine update of OVF_STORE ``store`` (Updated:false, the tar, Updated:true with
        ``Last Updated`` = ``epoch``, now by default) with the OVF for ``memory_mib``."""
        return update_ovf_store(
            self.hosts[0].view, self.ovf_stores[store], self.engine_ovf(memory_mib=memory_mib), epoch
        )

    def start_supervisor(self, host: Host, *extra: str) -> SupervisorProcess:
        host_root = ("--host-root", str(host.root)) if self._host_root else ()
        return host.start_supervisor(*SUPERVISOR_ARGS, "--migrate-uri", self.migrate_uri, *host_root, *extra)

    # --- live migration ---------------------------------------------------------------------

    @property
    def migrate_uri(self) -> str:
        """he-ha's ``--migrate-uri`` template: the target's libvirtd by its socket link."""
        return f"qemu+unix:///system?socket={self.sockets}/{{hostname}}.sock"

    def refuse_migrations_to(self, host: Host) -> None:
        """A migration to ``host`` fails: its libvirtd cannot be reached under the migration
        URI (the link is removed); ``host`` itself, its supervisor and its libvirtd go on."""
        (self.sockets / f"{host.name}.sock").unlink(missing_ok=True)

    def accept_migrations_to(self, host: Host) -> None:
        link = self.sockets / f"{host.name}.sock"
        link.unlink(missing_ok=True)
        link.symlink_to(_libvirtd(host).socket)

    def watch_engine_page(self, period: float = 0.05) -> EnginePageWatcher:
        """Start polling every host's health page every ``period`` s (see EnginePageWatcher)."""
        watcher = EnginePageWatcher(self, period)
        self._page_watchers.append(watcher)
        watcher.start()
        return watcher

    # --- what runs where --------------------------------------------------------------------

    def qemu_pid(self, host: Host) -> int | None:
        """The engine's QEMU pid on ``host`` (from the process table: works after a crash)."""
        return _libvirtd(host).qemu_pid(ENGINE_NAME)

    def running(self) -> list[Host]:
        """Hosts whose engine VM executes guest code (see ``engine_state``)."""
        return [host for host in self.hosts if self.guest_running(host)]

    def guest_running(self, host: Host) -> bool:
        return self.engine_state(host) is not None

    def engine_state(self, host: Host) -> str | None:
        """Why ``host`` counts as running the guest, or None. Its QEMU must live and its vCPUs
        run: libvirt's sanlock plugin only registers QEMU at exec and acquires the lease
        before it lets the vCPUs run, so a host that lost the race for the lease has a
        paused QEMU for a moment that never ran the guest, which does not count. When
        libvirtd cannot be asked (hung or killed), a live QEMU counts as running."""
        if self.qemu_pid(host) is None:
            return None
        try:
            domain = host.vm()
            if domain is None:
                return None
            return "running" if domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING else None
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None  # removed between the lookup and the state query: a failed start
            return f"QEMU alive, libvirtd unreachable: {exc.get_error_message()}"

    def healthy(self, host: Host) -> bool:
        """``host``'s VM answers its forwarded health page with "DB Up"."""
        return page_says_up(host.health_url)

    def wait_running(self, host: Host, timeout: float = BOOT_WAIT, *, not_pid: int | None = None) -> float:
        """Wait until ``host`` runs the guest in a QEMU other than ``not_pid``; returns the
        monotonic time it was first seen so."""
        return self._wait(host, timeout, not_pid, lambda: self.guest_running(host), "running engine VM")

    def wait_healthy(self, host: Host, timeout: float = BOOT_WAIT, *, not_pid: int | None = None) -> float:
        """Wait until ``host`` runs a QEMU (other than ``not_pid``) whose page says "DB Up";
        returns the monotonic time it was first seen so."""
        return self._wait(host, timeout, not_pid, lambda: self.healthy(host), "healthy engine VM")

    def _wait(self, host: Host, timeout: float, not_pid: int | None, ready: Callable[[], bool], what: str) -> float:
        deadline = time.monotonic() + timeout
        while True:
            pid = self.qemu_pid(host)
            if pid is not None and pid != not_pid and ready():
                return time.monotonic()
            if time.monotonic() > deadline:
                log = host.supervisors[-1].log_tail() if host.supervisors else "(no supervisor)"
                raise AssertionError(
                    f"{host.name}: no {what} within {timeout} s (QEMU pid {pid}); \n{self.console_tail(host)}\n{log}"
                )
            time.sleep(0.1)

    def console_tail(self, host: Host, chars: int = 400) -> str:
        """The end of the guest's serial console and of QEMU's own log (why a start failed)."""
        parts = []
        consoles = (host.root / "engine-console.log", console_path(_libvirtd(host)))  # domain.py's, engine_ovf.py's
        for path in (*consoles, _libvirtd(host).qemu_log(ENGINE_NAME)):
            try:
                parts.append(f"{path.name}: {path.read_text(errors='replace')[-chars:]}")
            except FileNotFoundError:
                parts.append(f"{path.name}: (none)")
        return "\n".join(parts)

    # --- faults -----------------------------------------------------------------------------

    def kill_vm(self, host: Host) -> int:
        """kill -9 of the engine's QEMU on ``host``; returns the pid that was killed."""
        pid = _libvirtd(host).kill_qemu(ENGINE_NAME)
        if pid is None:
            raise AssertionError(f"{host.name} runs no engine VM to kill")
        return pid

    def watch_split_brain(self) -> SplitBrainWatcher:
        """Start a thread that checks continuously that at most one engine QEMU runs."""
        self._watcher = SplitBrainWatcher(self)
        self._watcher.start()
        return self._watcher


class SplitBrainWatcher:
    """Samples every host every 50 ms; ``check()`` raises if two engine VMs were ever seen
    running guest code at once."""

    def __init__(self, cluster: RealVmCluster, period: float = 0.05) -> None:
        self._cluster = cluster
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="split-brain-watcher", daemon=True)
        self.samples = 0
        self.paused_copies = 0  # samples with a QEMU process whose vCPUs do not run (lease not yet held)
        self.violations: list[dict[str, str]] = []  # host name -> why it counted as running

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            states = {host.name: self._cluster.engine_state(host) for host in self._cluster.hosts}
            running = {name: why for name, why in states.items() if why is not None}
            processes = [host.name for host in self._cluster.hosts if self._cluster.qemu_pid(host) is not None]
            self.samples += 1
            if len(running) > 1:
                self.violations.append(running)
            if len(processes) > len(running):
                self.paused_copies += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        if self.samples == 0:
            raise AssertionError("the split-brain watcher took no sample")
        if self.violations:
            raise AssertionError(f"engine VM ran on several hosts at once: {self.violations[:5]}")


class EnginePageWatcher:
    """Polls the engine's health page on every host's port, one thread per host, every
    ``period`` s (each request with a short timeout), and records when and where it said
    "DB Up": the engine answering wherever it runs, as a client that knows every host's
    address would see it across a live migration."""

    TIMEOUT = 0.5

    def __init__(self, cluster: RealVmCluster, period: float = 0.05) -> None:
        self._cluster = cluster
        self._period = period
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[tuple[float, str]] = []  # (monotonic time of the answer, host name)
        self._threads = [
            threading.Thread(target=self._run, args=(host,), name=f"page-{host.name}", daemon=True)
            for host in cluster.hosts
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self, host: Host) -> None:
        while not self._stop.is_set():
            if page_says_up(host.health_url, self.TIMEOUT):
                with self._lock:
                    self.answers.append((time.monotonic(), host.name))
            self._stop.wait(self._period)

    def longest_gap(self, since: float, until: float) -> tuple[float, float]:
        """The longest time in [since, until] without an answer from any host: (gap, its start)."""
        with self._lock:
            times = sorted(t for t, _ in self.answers if since <= t <= until)
        edges = [since, *times, until]
        gap, start = max(((b - a, a) for a, b in pairwise(edges)), default=(0.0, since))
        return gap, start

    def hosts_answering(self, since: float, until: float) -> list[str]:
        """The hosts whose page answered in [since, until], in order of their first answer."""
        with self._lock:
            seen = [name for t, name in sorted(self.answers) if since <= t <= until]
        return list(dict.fromkeys(seen))


def page_says_up(url: str, timeout: float = HTTP_TIMEOUT) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return HEALTH_BODY in response.read()
    # not listening, reset, paused guest (timeout); an answer cut short (the guest moved or
    # stopped mid-response: http.client.IncompleteRead) is no answer either
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        return False


def lease_holdings(host: Host, timeout: float = 10.0) -> list[LeaseHolding]:
    """What ``host``'s sanlock daemon has granted, and to which pid: the lines
    ``r <lockspace>:<resource>:<path>:<offset>:<lver> p <pid>`` of ``sanlock client status``."""
    result = subprocess.run(
        ["sanlock", "client", "status"],
        env=host.daemon.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    holdings = []
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == "r" and words[2] == "p":
            lockspace, resource = words[1].split(":")[:2]
            holdings.append(LeaseHolding(lockspace, resource, int(words[3])))
    return holdings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (QEMU binds it at VM start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _libvirtd(host: Host) -> QemuLibvirtd:
    if not isinstance(host.libvirtd, QemuLibvirtd):
        raise TypeError(f"{host.name} has no QEMU libvirtd")
    return host.libvirtd
