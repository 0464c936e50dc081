"""A private libvirtd with the QEMU driver and libvirt's sanlock lock plugin: one simulated
host's real hypervisor.

A root libvirtd takes its QEMU configuration and state from fixed paths (/etc/libvirt,
/run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt); there is no option
or variable to move them, and two daemons sharing them would mix their domains (both call
their first VM ``domain-1-HostedEngine``). So each one runs in its own mount namespace
(``unshare --mount``) where those five directories are bind mounts of its own directories.
Its QEMU processes inherit the namespace; the mounts vanish with the last of them.

* qemu.conf: ``lock_manager = "sanlock"``; QEMU runs as root unconfined, without cgroups
  or a private /dev (none of which this sandbox offers), its stdio logged to a file (no
  virtlogd).
* qemu-sanlock.conf: ``auto_disk_leases = 0``, ``require_lease_for_disks = 0``: only the
  ``<lease>`` in the domain XML is acquired, in the lockspace he-ha joins.
* Live migration (peer to peer, between two such daemons): the source libvirtd connects to the
  destination's socket (``qemu+unix:///system?socket=...``: /tmp is outside the bind mounts, so
  every namespace sees every socket); the QEMU migration stream goes over TCP to a port of
  libvirt's migration range (49152-49215) on the machine's hostname, libvirt's default, which
  must resolve to this machine (it does: /etc/hosts; libvirt refuses ``migration_host`` and
  ``migration_address`` set to 127.0.0.1 or localhost). Each daemon has a ``host_uuid`` of its own:
  libvirt refuses a migration between two daemons with the same one ("the same host"). The
  sanlock plugin moves the leases: released by the source when its vCPUs stop, acquired for
  the destination's QEMU through the destination's sanlock daemon before its vCPUs run.
* The environment carries this host's ``SANLOCK_RUN_DIR``: the plugin (libsanlock, in
  libvirtd and in the forked child that becomes QEMU) talks to this host's sanlock daemon,
  so the lease is registered to the QEMU pid in that daemon.
* ``LIBVIRT_DRIVER_DIR`` holds only the QEMU driver: no network, storage or node-device
  driver touches the machine.

The socket sits in the daemon's /tmp directory (outside the namespace's bind mounts):
clients use ``qemu+unix:///system?socket=<path>``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import uuid
from pathlib import Path

import structlog

from he_ha.devcluster.libvirtd import LibvirtdError, PrivateLibvirtd

log = structlog.get_logger(__name__)

QEMU_DRIVER = Path("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so")
SANLOCK_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/libvirt/lock-driver/sanlock.so")
# The root daemon's fixed directories, each replaced by one of ours inside the namespace.
SYSTEM_DIRS = {
    "etc": Path("/etc/libvirt"),
    "run": Path("/run/libvirt"),
    "lib": Path("/var/lib/libvirt"),
    "cache": Path("/var/cache/libvirt"),
    "log": Path("/var/log/libvirt"),
}
# QEMU as root, unconfined, without cgroups or a per-VM /dev (this sandbox has neither), its
# stdio logged to a file instead of virtlogd: usable by any QEMU test here.
UNCONFINED_QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
cgroup_controllers = [ ]
"""
QEMU_CONF = UNCONFINED_QEMU_CONF + 'lock_manager = "sanlock"\n'

SANLOCK_CONF = """\
auto_disk_leases = 0
require_lease_for_disks = 0
"""


class QemuLibvirtd(PrivateLibvirtd):
    """A real libvirtd serving QEMU domains whose ``<lease>`` is held by QEMU through the
    host's sanlock daemon (``sanlock_run_dir``). Needs root, libvirt-daemon-driver-qemu,
    qemu-system-x86 and libvirt-sanlock."""

    def __init__(self, log_dir: Path, sanlock_run_dir: Path) -> None:
        missing = [
            f"{path} (Debian package {package})"
            for path, package in ((QEMU_DRIVER, "libvirt-daemon-driver-qemu"), (SANLOCK_PLUGIN, "libvirt-sanlock"))
            if not path.exists()
        ]
        if missing:
            raise LibvirtdError("the real-VM libvirtd needs " + ", ".join(missing))
        super().__init__(log_dir)
        self.sanlock_run_dir = sanlock_run_dir
        self.state = self.dir / "state"
        for name in SYSTEM_DIRS:
            (self.state / name).mkdir(parents=True)
        (self.state / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (self.state / "etc" / "qemu-sanlock.conf").write_text(SANLOCK_CONF)
        with self._conf.open("a") as conf:  # a host of its own for libvirt (migration refuses "the same host")
            conf.write(f'host_uuid = "{uuid.uuid4()}"\n')
        self._drivers = self.dir / "drivers"
        self._drivers.mkdir()
        (self._drivers / QEMU_DRIVER.name).symlink_to(QEMU_DRIVER)

    @property
    def default_uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    def uri(self, node_xml: Path) -> str:
        raise LibvirtdError("a QEMU libvirtd has no test-driver nodes; use default_uri")

    def start(self, timeout: float = 30.0) -> None:
        """Spawn it in its own mount namespace and wait until its socket accepts (the QEMU
        driver probes the emulator's capabilities first: about a second)."""
        super().start(timeout)
        log.info("QEMU libvirtd running", pid=self.process.pid if self.process else None, socket=str(self.socket))

    def _spawn(self) -> subprocess.Popen[bytes]:
        for system_dir in SYSTEM_DIRS.values():
            system_dir.mkdir(parents=True, exist_ok=True)  # bind-mount targets must exist
        mounts = [
            f"mount --bind {shlex.quote(str(self.state / name))} {shlex.quote(str(target))}"
            for name, target in SYSTEM_DIRS.items()
        ]
        daemon = shlex.join(["libvirtd", "-f", str(self._conf), "--pid-file", str(self.dir / "libvirtd.pid")])
        script = "; ".join([*mounts, f"exec {daemon}"])
        env = {**os.environ, "LIBVIRT_DRIVER_DIR": str(self._drivers), "SANLOCK_RUN_DIR": str(self.sanlock_run_dir)}
        with self.log_path.open("ab") as log_file:
            return subprocess.Popen(
                [
                    "setpriv",
                    "--pdeathsig",
                    "KILL",
                    "--",
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-ec",
                    script,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    # --- the QEMU processes it started -----------------------------------------------------

    def qemu_pid(self, domain_name: str) -> int | None:
        """The pid of the domain's QEMU process while it lives (from libvirt's pid file,
        checked against /proc so a recycled pid is never taken for it)."""
        try:
            pid = int((self.state / "run" / "qemu" / f"{domain_name}.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if b"qemu-system" in cmdline and f"guest={domain_name}".encode() in cmdline else None

    def qemu_log(self, domain_name: str) -> Path:
        """QEMU's command line and stderr, as libvirt logs them (the serial console goes
        where the domain XML says)."""
        return self.state / "log" / "qemu" / f"{domain_name}.log"

    def kill_qemu(self, domain_name: str, timeout: float = 10.0) -> int | None:
        """kill -9 of the domain's QEMU, waiting until it is gone. Returns its pid (None: none ran)."""
        pid = self.qemu_pid(domain_name)
        if pid is None:
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return pid
        try:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not select.select([pidfd], [], [], timeout)[0]:
                raise LibvirtdError(f"QEMU pid {pid} survived SIGKILL for {timeout} s")
        finally:
            os.close(pidfd)
        log.info("QEMU killed", domain=domain_name, pid=pid)
        return pid

    def kill(self) -> None:
        """SIGKILL of its QEMU processes, then of libvirtd: QEMU is not libvirtd's child and
        would outlive it. ``Host.crash()`` gets here after killing the sanlock daemon, so
        no lease is released: it stays on disk, owned by the dead host."""
        for pid_file in (self.state / "run" / "qemu").glob("*.pid"):
            self.kill_qemu(pid_file.stem)
        super().kill()
