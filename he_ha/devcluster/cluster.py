"""Simulated hosts running real ``he-ha run`` processes (shared by the demo, the tests and the benches).

Each host has its own sanlock daemon (SANLOCK_RUN_DIR), its own configuration files, its own
run directory and, for VMs that must outlive a supervisor process, its own private libvirtd
serving the test driver's ``default`` node (pinned by the harness, as a real libvirtd keeps
its QEMU domains).

The storage is laid out as ``hosted-engine --deploy`` and VDSM leave it
(he_ha/devcluster/deployed.py) under one root R = ``<base>/root`` standing for ``/``: the NFS
domain mounted at ``R/rhev/data-center/mnt/nfs.example.com:_exports_he`` with the four
hosted-engine volumes and the configuration archive, and VDSM's run links under
``R/run/vdsm/storage``. All hosts share R: on real hosts every host names a volume by the same
path (``/run/vdsm/storage/<SD>/<IMG>/<VOL>``), and sanlock knows a lockspace by its name and
path, so the simulated hosts must too. Each host's hosted-engine.conf carries the original's
keys only (storage, sdUUID, the volume UUIDs, ``conf`` in the host's own run directory, ...):
he-ha finds the volumes by the layout (``--mount-root``, ``HE_HA_MOUNT_ROOT``). The
"deployment" initialises the lockspace and metadata volumes through host 1's resolved paths,
as ``hosted-engine --init-storage`` on the first he-ha host would, and each host's run
directory holds the vm.conf the original agent left there.

Timings are shortened (sanlock io_timeout 1, 1 s ticks and monitors, 3 s liveness) so a host
starts the VM within seconds. Everything is stopped and removed on exit, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import libvirt

from cli.admin_client import AdminClient
from he_ha.config import load_hosted_engine_conf
from he_ha.devcluster.deployed import (
    MIB,
    DeployedHostView,
    Deployment,
    agent_vm_conf,
    hosted_engine_conf_text,
    lay_out_file_domain,
    run_storage_paths,
)
from he_ha.devcluster.libvirtd import PrivateLibvirtd
from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import LeaseClient, LeaseLayout, is_keeper
from he_ha.ovirt import HeVolumes, VdsmRoots, resolve_volumes
from he_ha.provision import StorageAreas, initialise_first_host
from he_ha.whiteboard import SLOT_BYTES, HostSlot, decode_host_slot

ENGINE_NAME = "HostedEngine"
ENGINE_UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
IO_TIMEOUT = 1
FAST = [
    "--io-timeout",
    str(IO_TIMEOUT),
    "--tick-period",
    "1",
    "--monitor-interval",
    "1",
    "--peer-poll",
    "0.5",
    "--storage-timeout",
    "3",
    "--timing",
    "liveness=3",
    "--timing",
    "history=30",
    "--timing",
    "action_timeout=30",
    "--timing",
    "lease_busy_backoff=2",
]
# he-ha's default timings back over FAST (later options win), the sanlock io_timeout aside.
DEFAULT_TIMINGS = [
    "--tick-period", "10", "--monitor-interval", "10", "--peer-poll", "2", "--storage-timeout", "5",
    "--timing", "liveness=60", "--timing", "history=900", "--timing", "action_timeout=240",
    "--timing", "lease_busy_backoff=20",
]  # fmt: skip
# All of he-ha's defaults, for a Cluster(io_timeout=PRODUCTION_IO_TIMEOUT) (the lockspace's too).
PRODUCTION_IO_TIMEOUT = 10
PRODUCTION = ["--io-timeout", str(PRODUCTION_IO_TIMEOUT), *DEFAULT_TIMINGS]
WAIT = 60.0  # generous upper bound for anything a test waits for


def domain_xml() -> str:
    return (
        f"<domain type='test'><name>{ENGINE_NAME}</name><uuid>{ENGINE_UUID}</uuid>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices/></domain>"
    )


class HealthPage:
    """The engine's health page, answering "DB Up" on 127.0.0.1 (a real HTTP server).

    ``gate``: asked on every request; None means the engine answers, a text means it does
    not (the page then answers 503 with that text). Without a gate the engine always answers.
    ``he_ha.devcluster.vm_watch.VmWatcher.engine_problem`` makes the page follow the VM: it
    answers only while exactly one host's hypervisor runs it. The gate may be set after the
    page started (the page's URL goes into the hosts' configuration before the hosts exist).
    """

    def __init__(self, gate: Callable[[], str | None] | None = None) -> None:
        self.gate = gate
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                problem = page.gate() if page.gate is not None else None
                body = b"DB Up!Welcome to Health Status!" if problem is None else problem.encode()
                self.send_response(200 if problem is None else 503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/ovirt-engine/services/health"

    def __enter__(self) -> HealthPage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class SupervisorProcess:
    """One ``he-ha run`` process."""

    host: Host
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """kill -9 of the supervisor alone (its children live in their own sessions)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


@dataclass
class Host:
    """One simulated host: its configuration files at the top of ``root``, its tmpfs
    ``run/`` (the original's run directory with vm.conf, he-ha's run directory), he-ha's
    persistent ``state/``; the storage under the cluster's shared root (``view``)."""

    host_id: int
    root: Path
    shared: Path  # the domain's ha_agent/ directory: hosted-engine.{metadata,lockspace} links
    health_url: str
    # The metadata volume as this host reaches it: its resolved path once the configuration
    # is written; another file (e.g. a stallable FUSE view) goes in as he-ha's metadata_path override.
    metadata: Path
    libvirtd: PrivateLibvirtd | None = None  # None: the supervisor's in-process test driver
    network_test: str = "network_test=none"  # or e.g. "network_test=ping\ngateway=127.0.0.1"
    deployment: Deployment | None = None  # set by the Cluster before start()
    vdsm_root: Path | None = None  # where VDSM's mounts and run links are (set by the Cluster)
    daemon: SanlockDaemon = field(init=False)
    supervisors: list[SupervisorProcess] = field(default_factory=list)
    _pin: Any = None
    _metadata_override: bool = False

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True)
        self.daemon = SanlockDaemon(self.root / "sanlock", self.name)

    @property
    def name(self) -> str:
        return f"host{self.host_id}"

    @property
    def volatile_dir(self) -> Path:
        """This host's ``/run`` (VDSM's part aside, see the module doc): a tmpfs, empty after a reboot."""
        return self.root / "run"

    @property
    def run_dir(self) -> Path:
        """he-ha's run directory (``/run/he-ha``): admin socket, lease-keeper pid file, fence log."""
        return self.volatile_dir / "he-ha"

    @property
    def vm_conf(self) -> Path:
        """hosted-engine.conf ``conf``: the original's run directory ``/var/run/ovirt-hosted-engine-ha``."""
        return self.volatile_dir / "ovirt-hosted-engine-ha" / "vm.conf"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def hosted_engine_conf(self) -> Path:
        return self.root / "hosted-engine.conf"

    @property
    def mount_root(self) -> Path:
        return self.view.mount_root

    @property
    def view(self) -> DeployedHostView:
        assert self.deployment is not None and self.vdsm_root is not None, "the Cluster deploys the host first"
        return DeployedHostView(self.vdsm_root, self.deployment)

    @property
    def decision_log(self) -> Path:
        return self.root / "decisions.jsonl"  # outside run/: kept across reboots

    @property
    def ha_conf(self) -> Path:
        return self.root / "ha.conf"

    @property
    def admin_socket(self) -> Path:
        return self.run_dir / "admin.sock"

    @property
    def broker_socket(self) -> Path:
        """The original broker's socket (``/var/run/ovirt-hosted-engine-ha/broker.socket``) in
        this host's run directory: hosts on one machine must never share the default path."""
        return self.vm_conf.parent / "broker.socket"

    @property
    def libvirt_uri(self) -> str:
        if self.libvirtd is not None:
            return self.libvirtd.default_uri
        node = self.root / "node.xml"
        node.write_text("<node></node>")
        return f"test://{node}"

    def deployed_conf_text(self) -> str:
        """This host's hosted-engine.conf as deploy wrote it: the original's keys only."""
        assert self.deployment is not None
        overrides = dict(line.split("=", 1) for line in self.network_test.splitlines())
        overrides.update(bridge="lo", fqdn="engine.invalid")  # a bridge every machine has
        return hosted_engine_conf_text(self.deployment, self.host_id, conf=self.vm_conf, overrides=overrides)

    def write_configs(self) -> None:
        text = self.deployed_conf_text()
        self._metadata_override = os.path.realpath(self.metadata) != os.path.realpath(self.view.volume("metadata"))
        if self._metadata_override:
            text += f"metadata_path={self.metadata}\n"  # he-ha's override key
        self.hosted_engine_conf.write_text(text)
        assert self.deployment is not None
        self.vm_conf.parent.mkdir(parents=True, exist_ok=True)  # what the original agent left
        self.vm_conf.write_text(agent_vm_conf(self.deployment, domain_xml()))
        self.state_dir.mkdir(exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ha_conf.write_text("local_maintenance=False\nlocal_maintenance_manual=False\n")
        (self.root / "broker.conf").write_text("[notify]\nstate_transition =\n")  # no mails in these tests
        # All simulated hosts share this machine's CPUs: their own load (and a test run's)
        # must not cost them score and move the engine. The CPU penalty is tested on its own.
        (self.root / "agent.conf").write_text("[score]\ncpu-load-score-penalty = 0\n")
        if not self._metadata_override:
            self.metadata = self.volumes().metadata.path

    def volumes(self, *, overrides: bool = True) -> HeVolumes:
        """The shared volumes as he-ha resolves them from this host's hosted-engine.conf
        (``overrides=False``: by the deployed layout alone, ignoring he-ha's path keys)."""
        conf = load_hosted_engine_conf(self.hosted_engine_conf)
        if not overrides:
            conf = conf.model_copy(update={"metadata_path": None, "lockspace_path": None})
        return resolve_volumes(conf, VdsmRoots.from_mount_root(self.mount_root), self.hosted_engine_conf)

    def storage_paths(self) -> dict[str, Any]:
        """What ``he-ha storage-paths`` prints for this host (run as its own process)."""
        result = run_storage_paths(self.hosted_engine_conf, self.mount_root)
        if result.returncode != 0:
            raise AssertionError(f"{self.name}: he-ha storage-paths exited {result.returncode}: {result.stderr}")
        return dict(json.loads(result.stdout))

    def cli_env(self) -> dict[str, str]:
        """Environment for running ``hosted-engine`` as this host (cli/environment.py)."""
        return {
            "HE_HA_HOSTED_ENGINE_CONF": str(self.hosted_engine_conf),
            "HE_HA_HA_CONF": str(self.ha_conf),
            "HE_HA_AGENT_CONF": str(self.root / "agent.conf"),
            "HE_HA_BROKER_CONF": str(self.root / "broker.conf"),
            "HE_HA_ADMIN_SOCKET": str(self.admin_socket),
            "HE_HA_LIBVIRT_URI": self.libvirt_uri,
            "HE_HA_MOUNT_ROOT": str(self.mount_root),
            "SANLOCK_RUN_DIR": str(self.daemon.run_dir),
            # the daemon's run and state directories: the VM commands act as the daemon would
            # while it is down (cli/direct_vm.py)
            "HE_HA_RUN_DIR": str(self.run_dir),
            "HE_HA_STATE_DIR": str(self.state_dir),
        }

    def set_local_maintenance(self, on: bool) -> None:
        self.ha_conf.write_text(f"local_maintenance={on}\nlocal_maintenance_manual={on}\n")

    def command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "he_ha.main",
            "run",
            "--hosted-engine-conf",
            str(self.hosted_engine_conf),
            "--agent-conf",
            str(self.root / "agent.conf"),
            "--broker-conf",
            str(self.root / "broker.conf"),
            "--ha-conf",
            str(self.ha_conf),
            "--libvirt-uri",
            self.libvirt_uri,
            "--sanlock-run-dir",
            str(self.daemon.run_dir),
            "--run-dir",
            str(self.run_dir),
            "--broker-socket",
            str(self.broker_socket),
            "--mount-root",
            str(self.mount_root),
            "--state-dir",
            str(self.state_dir),
            "--hostname",
            self.name,
            "--health-url",
            self.health_url,
            "--decision-log",
            str(self.decision_log),
            "--log-json",
            *FAST,
            *extra,
        ]

    def start_supervisor(self, *extra: str, env: dict[str, str] | None = None) -> SupervisorProcess:
        log_path = self.root / f"supervisor-{len(self.supervisors) + 1}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command(*extra),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
                env={**os.environ, **(env or {})},
            )
        supervisor = SupervisorProcess(self, process, log_path)
        self.supervisors.append(supervisor)
        return supervisor

    # --- what the host shows -------------------------------------------------------------

    def decisions(self) -> list[dict[str, Any]]:
        try:
            lines = self.decision_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for_decision(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT, after: int = 0
    ) -> tuple[int, dict[str, Any]]:
        """The first decision (index >= ``after``) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, entry in enumerate(self.decisions()):
                if index >= after and predicate(entry):
                    return index, entry
            self._check_alive()
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name}: no matching decision within {timeout} s; last: {self._last_rules()}\n"
            f"{self.supervisors[-1].log_tail() if self.supervisors else ''}"
        )

    def _last_rules(self) -> list[str]:
        return [f"{e['record']['rule']}->{e['record']['to_state']}" for e in self.decisions()[-8:]]

    def _check_alive(self) -> None:
        if self.supervisors and self.supervisors[-1].process.poll() is not None:
            sup = self.supervisors[-1]
            raise AssertionError(f"{self.name}: supervisor exited with {sup.process.returncode}\n{sup.log_tail()}")

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.admin_socket)

    def slot(self) -> HostSlot | None:
        with open(self.metadata, "rb") as volume:
            volume.seek(self.host_id * SLOT_BYTES)
            return decode_host_slot(self.host_id, volume.read(SLOT_BYTES))

    def keeper_pid(self) -> int | None:
        try:
            pid = int(json.loads((self.run_dir / "lease-keeper.json").read_text())["pid"])
        except FileNotFoundError:
            return None
        return pid if is_keeper(pid) else None

    def vm(self) -> libvirt.virDomain | None:
        """The engine VM in this host's libvirtd (None: no such domain, or the host is down)."""
        assert self.libvirtd is not None, "in-process hypervisors cannot be looked at from outside"
        conn = self._pin
        if conn is None:  # not started, or crashed: no hypervisor, so no VM
            return None
        try:
            dom = conn.lookupByUUIDString(ENGINE_UUID)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise
        return dom if dom.isActive() else None

    def wait_for_vm(self, running: bool, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while (self.vm() is not None) != running:
            if time.monotonic() > deadline:
                wanted = "not running" if running else "still running"
                raise AssertionError(f"{self.name}: VM {wanted} after {timeout} s")
            time.sleep(0.05)

    def crash_vm(self) -> None:
        """The engine VM dies behind the supervisor's back (destroyed in the hypervisor)."""
        vm = self.vm()
        if vm is None:
            raise AssertionError(f"{self.name}: no engine VM runs here to crash")
        vm.destroy()

    def launch_vm(self) -> None:
        """Start the engine VM directly in this host's hypervisor, behind the supervisor's
        back and without the lease (a rogue copy, as an admin's ``virsh create`` would)."""
        if self._pin is None:
            raise AssertionError(f"{self.name}: no hypervisor runs here")
        self._pin.createXML(domain_xml(), 0)

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._boot_daemons()
        self.write_configs()

    def _boot_daemons(self) -> None:
        self.daemon.start()
        if self.libvirtd is not None:
            self.libvirtd.start()
            self._pin = libvirt.open(self.libvirtd.default_uri)  # keeps the default node's domains

    def processes(self) -> tuple[list[int], list[int]]:
        """(process groups, single pids) of this host running now: the sanlock daemon's and
        each supervisor's group (with its lease worker), the lease keeper and libvirtd."""
        groups = [s.pid for s in self.supervisors if s.process.poll() is None]
        if self.daemon.running and self.daemon.pid is not None:
            groups.append(self.daemon.pid)
        keeper = self.keeper_pid()
        pids = [keeper] if keeper is not None else []
        if self.libvirtd is not None and self.libvirtd.process is not None and self.libvirtd.process.poll() is None:
            pids.append(self.libvirtd.process.pid)
        return groups, pids

    def crash(self) -> None:
        """The host dies at once, as on power loss: every process of it (supervisor with its
        lease worker, lease keeper, sanlock daemon, libvirtd with the VM) is stopped with
        SIGSTOP first, so none sees the others die and reacts (a keeper killed while its
        sanlock daemon still ran would release the lease cleanly), then killed with SIGKILL.
        The VM lease stays on disk, owned by this host id: peers get it only after sanlock's
        host-dead time. ``reboot()`` brings the host back."""
        freeze_and_kill(*self.processes())
        for supervisor in self.supervisors:
            supervisor.kill()  # reaps it
        self.daemon.kill()  # reaps it
        if self.libvirtd is not None:
            self.libvirtd.kill()  # reaps it, removes its socket
        if self._pin is not None:  # closed after libvirtd is gone: nothing can wait on it
            with contextlib.suppress(libvirt.libvirtError):
                self._pin.close()
            self._pin = None

    def reboot(self, *extra: str, wipe_run_dir: bool = False) -> SupervisorProcess:
        """After ``crash()``: fresh sanlock daemon and hypervisor (no VM), the same files,
        and a new supervisor (``extra``: its additional options). ``wipe_run_dir``: the host's
        ``run/`` comes back empty, as a tmpfs after a reboot: the original's run directory with
        vm.conf and he-ha's run directory are gone (VDSM's run links are shared by the
        simulated hosts and stay)."""
        if any(s.process.poll() is None for s in self.supervisors) or self.daemon.running:
            raise AssertionError(f"{self.name}: reboot() follows crash(); this host still runs")
        if wipe_run_dir:
            shutil.rmtree(self.volatile_dir)
            self.run_dir.mkdir(parents=True)  # systemd's RuntimeDirectory= for he-ha
        self._boot_daemons()
        return self.start_supervisor(*extra)

    def stop(self) -> None:
        for supervisor in self.supervisors:
            supervisor.kill()
        keeper = self.keeper_pid()
        if keeper is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(keeper, signal.SIGKILL)
        if self._pin is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._pin.close()
        if self.libvirtd is not None:
            self.libvirtd.__exit__(None, None, None)
        self.daemon.stop()


class Cluster:
    """``count`` hosts sharing one deployed storage domain; use as a context manager."""

    def __init__(
        self,
        count: int,
        *,
        libvirtd: bool,
        health_url: str,
        metadata: Path | None = None,
        base_dir: Path | None = None,
        io_timeout: int = IO_TIMEOUT,
    ) -> None:
        """``metadata``: where hosts find the metadata volume when not by the layout (e.g. a
        stallable FUSE view of ``metadata_file``; written as he-ha's ``metadata_path``
        override). ``base_dir``: where the cluster's temporary directory goes (default /tmp;
        it must support O_DIRECT). ``io_timeout``: the lockspace's and the VM lease's sanlock
        io_timeout, fixed at initialisation (production: 10; its supervisors then need
        ``--io-timeout`` to match, see PRODUCTION)."""
        self.io_timeout = io_timeout
        self.base = Path(tempfile.mkdtemp(prefix="he-ha-sv-", dir=base_dir or "/tmp"))
        self.base.chmod(0o755)
        self.deployment = Deployment.new(
            vm_uuid=ENGINE_UUID, vm_disk_size=128 * MIB, vm_name=ENGINE_NAME, mem_mib=64, vcpus=1, fqdn="engine.invalid"
        )
        self.vdsm_root = self.base / "root"  # R: VDSM's part of every host's "/"
        view = DeployedHostView(self.vdsm_root, self.deployment)
        self.storage = view.domain_dir.parent  # the NFS export as mounted
        self.shared = view.domain_dir / "ha_agent"
        # The volume files on the storage (the hosts reach them through VDSM's run links)
        self.metadata_file, self.lockspace_file, self.conf_file = map(view.volume, ("metadata", "lockspace", "conf"))
        self.hosts = [
            Host(
                n,
                self.base / f"h{n}",
                self.shared,
                health_url,
                metadata or self.metadata_file,
                PrivateLibvirtd(self.base / f"h{n}-lv") if libvirtd else None,
            )
            for n in range(1, count + 1)
        ]
        self.layout: LeaseLayout | None = None
        self.leftovers: list[tuple[int, str]] = []  # processes __exit__ had to kill (should stay empty)

    def __enter__(self) -> Cluster:
        try:
            for host in self.hosts:  # also hosts added after __init__ (the real-VM harness's)
                host.deployment, host.vdsm_root = self.deployment, self.vdsm_root
            # hosted-engine --deploy on host 1: the domain, its volumes, the configuration archive;
            # VDSM's run links (Image.prepare) and the broker's compatibility links
            view = lay_out_file_domain(self.vdsm_root, self.deployment, self.hosts[0].deployed_conf_text())
            view.ha_agent_links()
            for host in self.hosts:
                (self.base / f"h{host.host_id}-lv").mkdir(exist_ok=True)
                host.start()
            asyncio.run(self._initialise())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    async def _initialise(self) -> None:
        """What ``hosted-engine --init-storage`` on the first he-ha host does once: the
        lockspace, the VM lease and the configuration-volume lock on the lockspace volume, the
        metadata volume zeroed, at the paths host 1 resolves from its hosted-engine.conf (the
        1 GiB lockspace volume is more than needed)."""
        first = self.hosts[0]
        volumes = first.volumes(overrides=False)
        areas = StorageAreas(lockspace=volumes.lockspace.path, metadata=volumes.metadata.path)
        async with await LeaseClient.start(run_dir=first.daemon.run_dir) as client:
            self.layout = await initialise_first_host(client, areas, vm_uuid=ENGINE_UUID, io_timeout=self.io_timeout)

    def engine_host(self, timeout: float = WAIT) -> Host:
        """The first host whose state machine has reached EngineUp (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for host in self.hosts:
                if any(state_of(entry) == "EngineUp" for entry in host.decisions()):
                    return host
            time.sleep(0.2)
        raise AssertionError(f"no host reached EngineUp within {timeout:g} s")

    def terminate_supervisors(self, timeout: float = 40.0) -> dict[str, int | None]:
        """SIGTERM every running supervisor at once and wait for them: host name -> exit code
        (None: still running after ``timeout``; ``__exit__`` kills it)."""
        running = [s for host in self.hosts for s in host.supervisors if s.process.poll() is None]
        for supervisor in running:
            supervisor.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for supervisor in running:
            try:
                codes[supervisor.host.name] = supervisor.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                codes[supervisor.host.name] = None
        return codes

    def owned_paths(self) -> list[Path]:
        """The temporary directories of this cluster (its base and each private libvirtd's)."""
        return [self.base] + [h.libvirtd.dir for h in self.hosts if h.libvirtd is not None]

    def stray_processes(self) -> list[tuple[int, str]]:
        """Processes whose command line or environment names one of ``owned_paths()``: what
        would be left behind (supervisors, lease keepers, fence runs, sanlock daemons and
        their helpers, libvirtd)."""
        return processes_referencing(self.owned_paths())

    def __exit__(self, *exc: object) -> None:
        problems = []
        for host in self.hosts:
            try:
                host.stop()
            except (OSError, RuntimeError, subprocess.SubprocessError, libvirt.libvirtError) as error:
                problems.append(f"{host.name}: {error}")  # go on: every host must be cleaned up
        self.leftovers = self.stray_processes()
        for pid, _ in self.leftovers:  # last resort; callers check ``leftovers`` is empty
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
        if problems:
            raise RuntimeError("cluster clean-up: " + "; ".join(problems))

    def lease_client(self, host: Host) -> contextlib.AbstractAsyncContextManager[LeaseClient]:
        return _client(host)


@contextlib.asynccontextmanager
async def _client(host: Host) -> Any:
    client = await LeaseClient.start(run_dir=host.daemon.run_dir, stderr=host.root / "test-client.log")
    try:
        yield client
    finally:
        await client.close()


def processes_referencing(paths: list[Path]) -> list[tuple[int, str]]:
    """(pid, command line) of every process but this one whose command line or environment
    contains one of ``paths`` (needs root to read other users' environments)."""
    needles = [os.fsencode(path) for path in paths]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if any(needle in cmdline or needle in environ for needle in needles):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


@contextlib.contextmanager
def health_page() -> Iterator[str]:
    with HealthPage() as page:
        yield page.url


def rule_of(entry: dict[str, Any]) -> str:
    return str(entry["record"]["rule"])


def state_of(entry: dict[str, Any]) -> str:
    return str(entry["record"]["to_state"])


def freeze_and_kill(groups: Iterable[int], pids: Iterable[int]) -> None:
    """SIGSTOP every process group and process first, so that none sees another die and reacts
    (a lease keeper killed while its sanlock daemon runs releases the lease cleanly), then SIGKILL."""
    groups, pids = list(groups), list(pids)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def causes_of(entry: dict[str, Any]) -> list[str]:
    return [c["cause"] for c in entry["meta"]["causes"]]


def actions_of(entry: dict[str, Any]) -> list[str]:
    return [a["type"] for a in entry["record"]["actions"]]
