"""Everything ``he-ha run`` can be told, as one frozen value (built by cli.py).

Derived paths (admin socket, keeper pid file, fence file, notifier state) live under the
daemon's run directory unless given explicitly, so several simulated hosts on one machine
only need distinct run directories. The broker socket is the exception: VDSM looks for it
at the original's fixed path, so hosts on one machine must each be given their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from he_ha.config import ConfigPaths
from he_ha.fsm import TimingConfig

HolderKind = Literal["keeper", "worker", "qemu"]
HOLDER_KINDS: tuple[HolderKind, ...] = ("keeper", "worker", "qemu")
DEFAULT_BROKER_SOCKET = Path("/var/run/ovirt-hosted-engine-ha/broker.socket")  # where VDSM's HAClient connects


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
    holder: HolderKind | None = None  # None: worker for in-process test:/// URIs, else keeper
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
        # An in-process test driver's VMs die with this process: so must the lease.
        return "worker" if self.libvirt_uri.startswith("test:///") else "keeper"

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
