"""Everything ``he-ha run`` can be told, as one frozen value (built by cli.py).

Derived paths (admin socket, keeper pid file, fence file, notifier state) live under the
daemon's run directory unless given explicitly, so several simulated hosts on one machine
only need distinct run directories. The broker socket is the exception: VDSM looks for it
at the original's fixed path, so hosts on one machine must each be given their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from he_ha.config import ConfigPaths
from he_ha.fsm import TimingConfig

HolderKind = Literal["keeper", "worker", "qemu"]
HOLDER_KINDS: tuple[HolderKind, ...] = ("keeper", "worker", "qemu")
DEFAULT_BROKER_SOCKET = Path("/var/run/ovirt-hosted-engine-ha/broker.socket")  # where VDSM's HAClient connects
QEMU_CONF = Path("/etc/libvirt/qemu.conf")  # the system libvirtd's QEMU driver configuration
RETRY_PAUSE = 5.0  # between attempts of a start-up step that failed for a transient reason (daemon.py)
# The URIs of the system libvirtd on this host, the one QEMU_CONF configures.
_SYSTEM_URIS = frozenset({"qemu:///system", "qemu+unix:///system"})
_LOCK_MANAGER = re.compile(r'^\s*lock_manager\s*=\s*"([^"]*)"\s*(#.*)?$', re.MULTILINE)


def lock_manager(qemu_conf_text: str) -> str | None:
    """The ``lock_manager`` a qemu.conf sets (the last uncommented setting wins, as in
    libvirt's parser), None if it sets none."""
    found = _LOCK_MANAGER.findall(qemu_conf_text)
    return found[-1][0] if found else None


def default_holder_kind(libvirt_uri: str, qemu_conf: Path = QEMU_CONF) -> HolderKind:
    """The lease holder when none is configured (docs/supervisor.md "The lease holder").

    The test driver's VMs live in this process, so the lease must too (worker). The system
    libvirtd configured with the sanlock lock manager (as VDSM configures every oVirt host)
    holds the lease in QEMU, which is what live migration needs (qemu). Anything else: the
    lease keeper. An unreadable qemu.conf counts as no lock manager (the keeper works
    everywhere; it only cannot migrate)."""
    if libvirt_uri.startswith("test:///"):
        return "worker"
    if libvirt_uri not in _SYSTEM_URIS:
        return "keeper"
    try:
        text = qemu_conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "keeper"
    return "qemu" if lock_manager(text) == "sanlock" else "keeper"


@dataclass(frozen=True)
class SupervisorSettings:
    paths: ConfigPaths = field(default_factory=ConfigPaths)
    vm_conf: Path | None = None  # None: hosted-engine.conf 'conf'
    notification_template: Path | None = None  # None: the notifier's default path (or built-in)
    mount_root: Path = Path("/rhev/data-center/mnt")  # VDSM's mount root (he_ha/ovirt/layout.py)
    state_dir: Path = Path("/var/lib/he-ha")  # persistent: the last good VM definition
    host_root: Path = Path("/")  # where the host facts for the engine XML's sysinfo are read (VDSM's files)
    libvirt_uri: str = "qemu:///system"
    sanlock_run_dir: Path | None = None  # None: the system daemon (/run/sanlock)
    run_dir: Path = Path("/run/he-ha")
    admin_socket: Path | None = None  # None: <run_dir>/admin.sock
    admin_group: str | None = None
    broker_socket: Path | None = DEFAULT_BROKER_SOCKET  # the original broker's XML-RPC socket; None: not served
    io_timeout: int = 10  # sanlock io_timeout of the lockspace and the lease
    timing: TimingConfig = field(default_factory=TimingConfig)
    peer_poll: float = 2.0  # seconds between peer-change polls of the whiteboard; 0: off
    storage_timeout: float = 5.0  # deadline of each whiteboard read/write and sanlock query in a tick
    monitor_interval: float = 10.0
    health_url: str | None = None
    health_grace: float = 600.0
    holder: HolderKind | None = None  # None: default_holder_kind(libvirt_uri, qemu_conf)
    qemu_conf: Path = QEMU_CONF  # read for the default lease holder only
    migrate_uri: str = "qemu+tls://{hostname}/system"
    decision_log: Path | None = None
    metrics_listen: tuple[str, int] | None = None  # (address, port) of the read-only /metrics listener; None: off
    decision_ring: int = 100
    hostname: str | None = None
    log_json: bool = False
    log_level: str = "INFO"
    stop_deadline: float = 30.0

    @property
    def tick_period(self) -> float:
        return self.timing.loop_delay

    @property
    def holder_kind(self) -> HolderKind:
        if self.holder is not None:
            return self.holder
        return default_holder_kind(self.libvirt_uri, self.qemu_conf)

    @property
    def definition_timeout(self) -> float:
        """Deadline of a VM definition refresh and of an engine XML resolution (shared storage reads)."""
        return 2 * self.storage_timeout

    @property
    def admin_socket_path(self) -> Path:
        return self.admin_socket or self.run_dir / "admin.sock"

    @property
    def keeper_file(self) -> Path:
        return self.run_dir / "lease-keeper.json"

    @property
    def fence_file(self) -> Path:
        return self.run_dir / "fence.json"

    @property
    def notify_state_file(self) -> Path:
        return self.run_dir / "notify-ratelimit.json"
