"""Where the ``hosted-engine`` shim finds this host's files and daemon.

The original reads fixed paths. We keep them as defaults and let the environment override
each one, so several simulated hosts on one machine (the demo, the tests) can each run the
shim against their own files, socket and sanlock daemon.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from he_ha.config import ConfigError, ConfigPaths, HostedEngineConf, load_hosted_engine_conf
from he_ha.ovirt import DEFAULT_MOUNT_ROOT, HeVolumes, ResolvedVolume, VdsmRoots, resolve_volume, resolve_volumes

# environment variable -> what it overrides
ENV_HOSTED_ENGINE_CONF = "HE_HA_HOSTED_ENGINE_CONF"
ENV_HA_CONF = "HE_HA_HA_CONF"
ENV_AGENT_CONF = "HE_HA_AGENT_CONF"
ENV_BROKER_CONF = "HE_HA_BROKER_CONF"
ENV_ADMIN_SOCKET = "HE_HA_ADMIN_SOCKET"
ENV_LIBVIRT_URI = "HE_HA_LIBVIRT_URI"
ENV_SANLOCK_RUN_DIR = "SANLOCK_RUN_DIR"  # libsanlock's own variable
ENV_MOUNT_ROOT = "HE_HA_MOUNT_ROOT"  # VDSM's mount root, where the shared volumes are looked up
ENV_SHARED_HE_CONF = "HE_HA_SHARED_HE_CONF"  # the local cache of the configuration volume's hosted-engine.conf
# What the VM commands need to act as the daemon would while it is down (cli/direct_vm.py):
# the daemon's --run-dir, --state-dir and --lease-holder.
ENV_RUN_DIR = "HE_HA_RUN_DIR"
ENV_STATE_DIR = "HE_HA_STATE_DIR"
ENV_LEASE_HOLDER = "HE_HA_LEASE_HOLDER"

DEFAULT_RUN_DIR = Path("/run/he-ha")
DEFAULT_LIBVIRT_URI = "qemu:///system"
DEFAULT_SHARED_HE_CONF = Path("/var/lib/ovirt-hosted-engine-ha/hosted-engine.conf")
DEFAULT_STATE_DIR = Path("/var/lib/he-ha")


@dataclass(frozen=True)
class CliEnvironment:
    paths: ConfigPaths
    admin_socket: Path
    libvirt_uri: str
    sanlock_run_dir: Path | None  # None: the system sanlock daemon
    mount_root: Path = DEFAULT_MOUNT_ROOT
    shared_he_conf: Path = DEFAULT_SHARED_HE_CONF  # the he_shared cache
    run_dir: Path = DEFAULT_RUN_DIR  # the daemon's: lease-keeper record, fence file
    state_dir: Path = DEFAULT_STATE_DIR  # the daemon's: the last good VM definition
    lease_holder: str | None = None  # the daemon's --lease-holder; None: its default

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CliEnvironment:
        env = os.environ if environ is None else environ
        defaults = ConfigPaths()

        def path(name: str, default: Path) -> Path:
            value = env.get(name)
            return Path(value) if value else default

        sanlock_run_dir = env.get(ENV_SANLOCK_RUN_DIR)
        run_dir = path(ENV_RUN_DIR, DEFAULT_RUN_DIR)
        return cls(
            paths=ConfigPaths(
                hosted_engine_conf=path(ENV_HOSTED_ENGINE_CONF, defaults.hosted_engine_conf),
                agent_conf=path(ENV_AGENT_CONF, defaults.agent_conf),
                broker_conf=path(ENV_BROKER_CONF, defaults.broker_conf),
                ha_conf=path(ENV_HA_CONF, defaults.ha_conf),
            ),
            admin_socket=path(ENV_ADMIN_SOCKET, run_dir / "admin.sock"),  # as the daemon: in its run dir
            libvirt_uri=env.get(ENV_LIBVIRT_URI) or DEFAULT_LIBVIRT_URI,
            sanlock_run_dir=Path(sanlock_run_dir) if sanlock_run_dir else None,
            mount_root=path(ENV_MOUNT_ROOT, DEFAULT_MOUNT_ROOT),
            shared_he_conf=path(ENV_SHARED_HE_CONF, DEFAULT_SHARED_HE_CONF),
            run_dir=run_dir,
            state_dir=path(ENV_STATE_DIR, DEFAULT_STATE_DIR),
            lease_holder=env.get(ENV_LEASE_HOLDER) or None,
        )

    def engine_conf(self) -> HostedEngineConf:
        """hosted-engine.conf, parsed; raises ConfigError naming the file and the bad key."""
        return load_hosted_engine_conf(self.paths.hosted_engine_conf)

    def volumes(self) -> HeVolumes:
        """The shared volumes named by hosted-engine.conf; ConfigError (VolumeNotFound) names
        the key, the UUIDs and every path tried."""
        return resolve_volumes(self.engine_conf(), VdsmRoots.from_mount_root(self.mount_root),
                               self.paths.hosted_engine_conf)

    def volume(self, role: str) -> ResolvedVolume:
        """One shared volume (metadata, lockspace or conf), as ``volumes()`` finds it."""
        return resolve_volume(self.engine_conf(), role, VdsmRoots.from_mount_root(self.mount_root),
                              self.paths.hosted_engine_conf)


__all__ = ["CliEnvironment", "ConfigError"]
