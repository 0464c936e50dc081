"""Two deployed-style hosts sharing one HE storage domain, each with its own real sanlock
daemon, for the configuration volume's tests.

The storage domain is laid out as VDSM mounts an NFS export (spec ovirt-host-integration.md
§1.4, §1.10): ``<root>/rhev/data-center/mnt/nfs.example.com:_exports_he/<SD>/images/<IMG>/<VOL>``
for the metadata (128 MiB), lockspace (1 GiB) and configuration (1 GiB) volumes, all sparse.
Each host's hosted-engine.conf is the deployed file: volumes by UUID, no he-ha path key;
the shim finds them through HE_HA_MOUNT_ROOT. The lockspace volume is initialised with the
library call the harness uses (``initialise_first_host``), so it holds the lockspace, the
VM lease and the configuration-volume lock; the configuration volume holds the archive deploy
writes (real GNU tar, GNU dialect, owner 36/36), copied to offset 0 without truncating.

Timings: the lockspace uses io_timeout 1 (sanlock's default is 10) so that a join takes a
few seconds instead of tens and the whole package runs in about a minute; the sanlock
algorithms are the same at any io timeout.

The shim runs as a separate process per call (the installed ``hosted-engine`` script) with
the environment of the host it runs on, so two hosts can run it at the same time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import LeaseClient, LeaseLayout
from he_ha.provision import StorageAreas, initialise_first_host
from tests.unit.ovirt.samples import BROKER_CONF, FHANSWERS, SD, VM_CONF, VMID

IO_TIMEOUT = 1  # shortened from sanlock's 10 s: joins take seconds, not tens of seconds (see the module doc)
GIB = 1024**3
MIB = 1024 * 1024
STORAGE = "nfs.example.com:/exports/he"
MOUNT_DIR = "nfs.example.com:_exports_he"
DEPLOY_ORDER = ("vm.conf", "broker.conf", "version", "fhanswers.conf", "hosted-engine.conf")
HOSTED_ENGINE = Path(sys.executable).parent / "hosted-engine"

# role -> (image UUID, volume UUID, size)
VOLUMES = {
    "metadata": ("7c2d1e0f-9a8b-4c7d-8e6f-5a4b3c2d1e0f", "3b8e4a21-5c6d-4e7f-8a9b-0c1d2e3f4a5b", 128 * MIB),
    "lockspace": ("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", GIB),
    "conf": ("6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b", "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a", GIB),
}


def hosted_engine_conf(host_id: int, vm_conf: Path) -> str:
    """The file deploy writes (ansible template keys), for ``host_id``."""
    uuids = "".join(
        f"{role}_image_UUID={image}\n{role}_volume_UUID={volume}\n" for role, (image, volume, _) in VOLUMES.items()
    )
    return (
        f"fqdn=engine.example.com\nvmid={VMID}\nstorage={STORAGE}\nnfs_version=auto\nmnt_options=\n"
        f"conf={vm_conf}\nhost_id={host_id}\nconsole=vnc\ndomainType=nfs\n"
        f"spUUID=00000000-0000-0000-0000-000000000000\nsdUUID={SD}\n"
        "connectionUUID=e29cf818-5ee5-46e1-85c1-8aeefa33e95d\nca_cert=/etc/pki/vdsm/libvirt-spice/ca-cert.pem\n"
        'ca_subject="C=EN, L=Test, O=Test, CN=Test"\nvdsm_use_ssl=true\ngateway=192.0.2.1\nbridge=ovirtmgmt\n'
        f"network_test=dns\ntcp_t_address=\ntcp_t_port=\n{uuids}"
    )


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(eq=False)  # hashable: one object per host
class Host:
    host_id: int
    daemon: SanlockDaemon
    root: Path  # this host's own files
    mount_root: Path

    @property
    def conf(self) -> Path:
        return self.root / "hosted-engine.conf"

    @property
    def broker_conf(self) -> Path:
        return self.root / "broker.conf"

    @property
    def shared_cache(self) -> Path:
        return self.root / "var-lib" / "hosted-engine.conf"

    @property
    def vm_conf(self) -> Path:
        return self.root / "vm.conf"

    def env(self) -> dict[str, str]:
        env = self.daemon.env()
        env.update(
            {
                "HE_HA_HOSTED_ENGINE_CONF": str(self.conf),
                "HE_HA_HA_CONF": str(self.root / "ha.conf"),
                "HE_HA_BROKER_CONF": str(self.broker_conf),
                "HE_HA_AGENT_CONF": str(self.root / "agent.conf"),
                "HE_HA_ADMIN_SOCKET": str(self.root / "admin.sock"),
                "HE_HA_MOUNT_ROOT": str(self.mount_root),
                "HE_HA_SHARED_HE_CONF": str(self.shared_cache),
            }
        )
        return env

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(HOSTED_ENGINE), *args], env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def __call__(self, *args: str, timeout: float = 120) -> Result:
        started = time.monotonic()
        process = self.start(*args)
        out, err = process.communicate(timeout=timeout)
        assert "Traceback" not in err, err
        assert time.monotonic() - started < timeout
        return Result(process.returncode, out, err)


@dataclass
class Cluster:
    hosts: tuple[Host, Host]
    domain: Path
    layout: LeaseLayout

    def volume(self, role: str) -> Path:
        image, volume, _ = VOLUMES[role]
        return self.domain / "images" / image / volume

    @property
    def conf_volume(self) -> Path:
        return self.volume("conf")


def deploy_archive(work: Path, hosted_engine: str) -> bytes:
    """The archive as deploy makes it: real GNU tar, GNU format, owner vdsm/kvm."""
    work.mkdir()
    members = {
        "version": "2.5.2\n",
        "fhanswers.conf": FHANSWERS,
        "hosted-engine.conf": hosted_engine,
        "broker.conf": BROKER_CONF,
        "vm.conf": VM_CONF,
    }
    for name, text in members.items():
        (work / name).write_text(text)
    subprocess.run(
        [
            "tar",
            "--format=gnu",
            "--record-size=20480",
            "--owner=36",
            "--group=36",
            "-cf",
            "../deploy.tar",
            *DEPLOY_ORDER,
        ],
        cwd=work,
        check=True,
        timeout=30,
    )
    return (work.parent / "deploy.tar").read_bytes()


def write_at_start(path: Path, data: bytes) -> None:
    """A plain write at offset 0 that keeps the file's size (dd conv=notrunc)."""
    with open(path, "r+b") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


@pytest.fixture(scope="package")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SanlockDaemon, SanlockDaemon]]:
    base = tmp_path_factory.mktemp("sanlock")
    with SanlockDaemon(base / "a", "host-a") as first, SanlockDaemon(base / "b", "host-b") as second:
        yield first, second


async def _initialise(daemon: SanlockDaemon, areas: StorageAreas) -> LeaseLayout:
    async with await LeaseClient.start(run_dir=daemon.run_dir) as client:
        return await initialise_first_host(client, areas, vm_uuid=VMID, io_timeout=IO_TIMEOUT)


@pytest.fixture
def cluster(tmp_path: Path, daemons: tuple[SanlockDaemon, SanlockDaemon]) -> Cluster:
    mount_root = tmp_path / "root" / "rhev" / "data-center" / "mnt"
    domain = mount_root / MOUNT_DIR / SD
    (domain / "dom_md").mkdir(parents=True)
    for image, volume, size in VOLUMES.values():
        (domain / "images" / image).mkdir(parents=True)
        with open(domain / "images" / image / volume, "wb") as file:
            file.truncate(size)
    hosts = []
    for host_id, daemon in enumerate(daemons, start=1):
        root = tmp_path / f"host{host_id}"
        root.mkdir()
        host = Host(host_id, daemon, root, mount_root)
        host.conf.write_text(hosted_engine_conf(host_id, host.vm_conf))
        host.broker_conf.write_text(BROKER_CONF)
        host.vm_conf.write_text(VM_CONF)
        (root / "ha.conf").write_text("local_maintenance=False\nlocal_maintenance_manual=False\n")
        hosts.append(host)
    made = Cluster((hosts[0], hosts[1]), domain, None)  # type: ignore[arg-type]
    made.layout = asyncio.run(_initialise(daemons[0], StorageAreas(made.volume("lockspace"), made.volume("metadata"))))
    write_at_start(made.conf_volume, deploy_archive(tmp_path / "deploy", hosts[0].conf.read_text()))
    return made
