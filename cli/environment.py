"""Where the ``hosted-engine`` shim finds this host's files and daemon.

The original reads fixed paths. We keep them as defaults and let the environment override
each one, so several simulated hosts on one machine (the demo, the tests) can each run the
shim against their own files, socket and sanlock daemon.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded when used: the lean --vm-status path (cli/status_fast.py) never loads pydantic
    from he_ha.config import ConfigError, ConfigPaths, HostedEngineConf
    from he_ha.ovirt import HeVolumes, ResolvedVolume

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
# he_ha.config.ConfigPaths' default, here too so that the lean path needs no pydantic
# (tests/unit/cli_status/test_status_fast.py checks that the two agree)
DEFAULT_HOSTED_ENGINE_CONF = Path("/etc/ovirt-hosted-engine/hosted-engine.conf")
DEFAULT_LIBVIRT_URI = "qemu:///system"
DEFAULT_SHARED_HE_CONF = Path("/var/lib/ovirt-hosted-engine-ha/hosted-engine.conf")
DEFAULT_STATE_DIR = Path("/var/lib/he-ha")


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name)
    return Path(value) if value else default


def hosted_engine_conf_path(env: Mapping[str, str]) -> Path:
    return _path(env, ENV_HOSTED_ENGINE_CONF, DEFAULT_HOSTED_ENGINE_CONF)


def run_dir_path(env: Mapping[str, str]) -> Path:
    return _path(env, ENV_RUN_DIR, DEFAULT_RUN_DIR)


def admin_socket_path(env: Mapping[str, str]) -> Path:
    return _path(env, ENV_ADMIN_SOCKET, run_dir_path(env) / "admin.sock")  # as the daemon: in its run dir


def _default_mount_root() -> Path:
    from he_ha.ovirt import DEFAULT_MOUNT_ROOT

    return DEFAULT_MOUNT_ROOT


@dataclass(frozen=True)
class CliEnvironment:
    paths: ConfigPaths
    admin_socket: Path
    libvirt_uri: str
    sanlock_run_dir: Path | None  # None: the system sanlock daemon
    mount_root: Path = field(default_factory=_default_mount_root)
    shared_he_conf: Path = DEFAULT_SHARED_HE_CONF  # the he_shared cache
    run_dir: Path = DEFAULT_RUN_DIR  # the daemon's: lease-keeper record, fence file
    state_dir: Path = DEFAULT_STATE_DIR  # the daemon's: the last good VM definition
    lease_holder: str | None = None  # the daemon's --lease-holder; None: its default

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CliEnvironment:
        from he_ha.config import ConfigPaths

        env = os.environ if environ is None else environ
        defaults = ConfigPaths()

        def path(name: str, default: Path) -> Path:
            return _path(env, name, default)

        sanlock_run_dir = env.get(ENV_SANLOCK_RUN_DIR)
        return cls(
            paths=ConfigPaths(
                hosted_engine_conf=hosted_engine_conf_path(env),
                agent_conf=path(ENV_AGENT_CONF, defaults.agent_conf),
                broker_conf=path(ENV_BROKER_CONF, defaults.broker_conf),
                ha_conf=path(ENV_HA_CONF, defaults.ha_conf),
            ),
            admin_socket=admin_socket_path(env),
            libvirt_uri=env.get(ENV_LIBVIRT_URI) or DEFAULT_LIBVIRT_URI,
            sanlock_run_dir=Path(sanlock_run_dir) if sanlock_run_dir else None,
            mount_root=path(ENV_MOUNT_ROOT, _default_mount_root()),
            shared_he_conf=path(ENV_SHARED_HE_CONF, DEFAULT_SHARED_HE_CONF),
            run_dir=run_dir_path(env),
            state_dir=path(ENV_STATE_DIR, DEFAULT_STATE_DIR),
            lease_holder=env.get(ENV_LEASE_HOLDER) or None,
        )

    def engine_conf(self) -> HostedEngineConf:
        """hosted-engine.conf, parsed; raises ConfigError naming the file and the bad key."""
        from he_ha.config import load_hosted_engine_conf

        return load_hosted_engine_conf(self.paths.hosted_engine_conf)

    def volumes(self) -> HeVolumes:
        """The shared volumes named by hosted-engine.conf; ConfigError (VolumeNotFound) names
        the key, the UUIDs and every path tried."""
        from he_ha.ovirt import VdsmRoots, resolve_volumes

        return resolve_volumes(
            self.engine_conf(), VdsmRoots.from_mount_root(self.mount_root), self.paths.hosted_engine_conf
        )

    def volume(self, role: str) -> ResolvedVolume:
        """One shared volume (metadata, lockspace or conf), as ``volumes()`` finds it."""
        from he_ha.ovirt import VdsmRoots, resolve_volume

        return resolve_volume(
            self.engine_conf(), role, VdsmRoots.from_mount_root(self.mount_root), self.paths.hosted_engine_conf
        )


def __getattr__(name: str) -> Any:
    """``ConfigError``, re-exported for the commands, loaded when first asked for."""
    if name == "ConfigError":
        from he_ha.config import ConfigError

        return ConfigError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CliEnvironment", "ConfigError"]
