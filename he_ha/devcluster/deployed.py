"""A host's storage as ``hosted-engine --deploy`` and VDSM leave it, laid out under a root
directory R that stands for ``/`` (spec ovirt-host-integration.md §1.12).

File domain (NFS), mounted at ``R/rhev/data-center/mnt/<escaped storage>`` (§1.2):
``<SD>/dom_md/`` (the domain metadata with its ``_SHA_CKSUM``, empty ``ids``/``leases``/
``xleases``, 16 MiB sparse ``inbox``/``outbox``) and ``<SD>/images/<IMG>/<VOL>`` with
``<VOL>.meta`` and a 1 MiB ``<VOL>.lease`` for the four hosted-engine disks (§1.6, §1.10);
optionally the broker's ``<SD>/ha_agent/`` links. ``Image.prepare`` leaves run links
``R/run/vdsm/storage/<SD>/<IMG>`` → the image directory (§1.8; optional, so a test can check
the lookup without them). The configuration volume holds the archive deploy writes: GNU tar,
record size 20480, vdsm:kvm (36/36), members ``vm.conf``, ``broker.conf``, ``version``,
``fhanswers.conf``, ``hosted-engine.conf``, copied with ``dd bs=20480 count=1 oflag=direct``
and no ``conv=notrunc``, which truncates the 1 GiB volume file to 20480 bytes (§2.1).
hosted-engine.conf carries the deploy template's keys only: no he-ha key.

Block domain (iSCSI): logical volumes as files ``R/dev/<SD>/<name>``, the special ones linked
from ``R/rhev/data-center/mnt/blockSD/<SD>/dom_md/``, run directories
``R/run/vdsm/storage/<SD>/<IMG>/`` of per-volume links → ``R/dev/<SD>/<VOL>`` (§1.7), the volume
metadata in the ``metadata`` LV's version-5 slots, and the VG/LV tags (the domain metadata as
``MDT_`` tags) in a side JSON file ``R/lvm/<SD>.json``, since plain files carry no tags.

Volume files are sparse; the VM disk is small (its capacity is a parameter).

OVF_STORE (optional, file domains; §1.12 step 7, §3.1, §3.2): ``add_ovf_stores`` creates the
pair of 128 MiB volumes the engine adds after deploy (``DISKTYPE=OVFS``, the never-updated JSON
description), ``update_ovf_store`` performs one engine update of one of them: description
``Updated:false``, the ustar archive (``info.json``, ``<vmid>.ovf``, ``metadata.json``, padded to
10240 bytes) at offset 0 without truncating, description ``Updated:true`` with ``Size`` and
``Last Updated`` (Java's ``Date.toString()``). Without them the layout is as before.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from he_ha.ovirt.domain_meta import METADATA_SIZE, escape_tag, metadata_slot_offset
from he_ha.ovirt.layout import mount_dir_name

BLANK = "00000000-0000-0000-0000-000000000000"
MIB = 1024 * 1024
GIB = 1024 * MIB
ARCHIVE_BYTES = 20480  # the configuration archive, exactly (§2.1)
VDSM_UID = VDSM_GID = 36  # vdsm:kvm
VOLUME_MODE = 0o660
MAILBOX_BYTES = 16 * MIB
LEASE_BYTES = MIB  # <VOL>.lease: one sanlock resource at 1 MiB alignment
EXTENT = 128 * MIB  # block domains: every LV is a multiple of the VG extent size
DEFAULT_RUN_CONF = Path("/var/run/ovirt-hosted-engine-ha/vm.conf")
VM_CONF_HEADER = "# Editing the hosted engine VM is only possible via the manager UI/API"
SPICE_CHANNELS = "smain,sdisplay,sinputs,scursor,splayback,srecord,ssmartcard,susbredir"
CDROM_DEVICE = "8c3179ac-b322-4f5c-9449-c52e3665e0ae"  # ovf2VmParams' constant cdrom deviceId
ARCHIVE_ORDER = ("vm.conf", "broker.conf", "version", "fhanswers.conf", "hosted-engine.conf")  # deploy's
# LVM's special volumes of a block domain and their sizes before rounding to extents (§1.7)
BLOCK_SPECIAL = {
    "metadata": 128 * MIB,
    "ids": 8 * MIB,
    "leases": 2048 * MIB,
    "xleases": 1024 * MIB,
    "inbox": 16 * MIB,
    "outbox": 16 * MIB,
    "master": 1024 * MIB,
}


@dataclass(frozen=True)
class HeDisk:
    """One of the four disks deploy creates (§1.6 table, §1.10)."""

    role: str  # hosted-engine.conf key prefix: metadata, lockspace, conf; "vm" for the VM disk
    alias: str
    description: str
    disktype: str
    size: int
    sparse: bool  # allocation as the .meta records it (the fixture's files are sparse anyway)
    image: str = field(default_factory=lambda: str(uuid.uuid4()))
    volume: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def description_json(self) -> str:
        return json.dumps({"DiskAlias": self.alias, "DiskDescription": self.description}, separators=(",", ":"))


@dataclass(frozen=True)
class Deployment:
    """What one ``hosted-engine --deploy`` created: the domain, its disks, the VM."""

    vm_uuid: str
    disks: tuple[HeDisk, ...]
    sd_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    pool_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))  # the data center (the domain is its master)
    connection_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    vg_uuid: str = "q1Wn4e-Xk2p-7Rty-Lm3o-Pq8s-Zx9v-Ab0cDe"  # block domains: LVM's VG id
    storage: str = "nfs.example.com:/exports/he"
    domain_type: str = "nfs"
    domain_name: str = "hosted_storage"
    fqdn: str = "engine.example.com"
    vm_name: str = "HostedEngine"
    mem_mib: int = 16384
    vcpus: int = 4
    mac: str = "00:16:3e:4a:5b:6c"
    ha_version: str = "2.5.2"
    created: int = field(default_factory=lambda: int(time.time()))
    iscsi: dict[str, str] = field(default_factory=dict)  # iqn, portal, user, password, port

    @classmethod
    def new(cls, *, vm_uuid: str | None = None, vm_disk_size: int = GIB, **options: object) -> Deployment:
        """Fresh UUIDs; ``options``: any other field (e.g. ``domain_type="iscsi"``)."""
        disks = (
            HeDisk("vm", "he_virtio_disk", "Hosted-Engine disk", "HEVD", vm_disk_size, sparse=True),
            HeDisk("lockspace", "he_sanlock", "Hosted-Engine sanlock disk", "HESD", GIB, sparse=False),
            HeDisk(
                "conf", "HostedEngineConfigurationImage", "Hosted-Engine configuration disk", "HECI", GIB, sparse=False
            ),
            HeDisk("metadata", "he_metadata", "Hosted-Engine metadata disk", "HEMD", 128 * MIB, sparse=False),
        )
        if options.get("domain_type") in ("iscsi", "fc") and "storage" not in options:
            options["storage"] = "192.0.2.10"
            options.setdefault(
                "iscsi",
                {"iqn": "iqn.2024-01.com.example:he", "portal": "1", "user": "", "password": "", "port": "3260"},
            )
        return cls(vm_uuid or str(uuid.uuid4()), disks, **options)  # type: ignore[arg-type]

    def disk(self, role: str) -> HeDisk:
        (found,) = [d for d in self.disks if d.role == role]
        return found

    @property
    def block(self) -> bool:
        return self.domain_type in ("iscsi", "fc")


# --- text the domain and its volumes carry ---------------------------------------------------


def metadata_checksum(lines: Iterable[str]) -> str:
    """§1.5: SHA-1 over the sorted ``KEY=VALUE`` strings without newlines, ASCII with XML
    character references for anything else."""
    digest = hashlib.sha1()
    for line in sorted(lines):
        digest.update(line.encode("ascii", "xmlcharrefreplace"))
    return digest.hexdigest()


def domain_metadata(d: Deployment) -> dict[str, str]:
    """The version-5 domain metadata of the hosted_storage master domain (§1.5), unsealed."""
    values = {
        "ALIGNMENT": str(MIB),
        "BLOCK_SIZE": "512",
        "CLASS": "Data",
        "DESCRIPTION": d.domain_name,
        "IOOPTIMEOUTSEC": "10",
        "LEASERETRIES": "3",
        "LEASETIMESEC": "60",
        "LOCKPOLICY": "",
        "LOCKRENEWALINTERVALSEC": "5",
        "MASTER_VERSION": "1",
        "POOL_DESCRIPTION": "Default",
        "POOL_DOMAINS": f"{d.sd_uuid}:Active",
        "POOL_SPM_ID": "-1",
        "POOL_SPM_LVER": "-1",
        "POOL_UUID": d.pool_uuid,
        "ROLE": "Master",
        "SDUUID": d.sd_uuid,
        "TYPE": d.domain_type.upper(),
        "VERSION": "5",
    }
    if d.block:
        values["TYPE"] = "ISCSI" if d.domain_type == "iscsi" else "FCP"
        values["VGUUID"] = d.vg_uuid
        pe_count = sum(_extents(size) for size in _block_sizes(d).values())
        values["PV0"] = (
            f"pv:36001405{d.sd_uuid.replace('-', '')[:24]},uuid:Ab0cDe-q1Wn-4eXk-2p7R-tyLm-3oPq-8sZx9v,"
            f"pestart:0,pecount:{pe_count + 8},mapoffset:0"
        )
    else:
        values["REMOTE_PATH"] = d.storage
    return values


def sealed_lines(values: dict[str, str]) -> list[str]:
    """``KEY=VALUE`` sorted, then ``_SHA_CKSUM`` (VDSM's persistent metadata, §1.5)."""
    lines = sorted(f"{key}={value}" for key, value in values.items())
    return [*lines, f"_SHA_CKSUM={metadata_checksum(lines)}"]


def volume_metadata(d: Deployment, disk: HeDisk, description: str | None = None) -> dict[str, str]:
    """A version-5 volume's metadata (§1.6); ``description``: DESCRIPTION other than the disk's own
    (an OVF_STORE's JSON)."""
    return {
        "CAP": str(disk.size),
        "CTIME": str(d.created),
        "DESCRIPTION": disk.description_json if description is None else description,
        "DISKTYPE": disk.disktype,
        "DOMAIN": d.sd_uuid,
        "FORMAT": "RAW",
        "GEN": "0",
        "IMAGE": disk.image,
        "LEGALITY": "LEGAL",
        "PUUID": BLANK,
        "SEQ": "0",
        "TYPE": "SPARSE" if disk.sparse and not d.block else "PREALLOCATED",
        "VOLTYPE": "LEAF",
    }


def volume_meta_text(d: Deployment, disk: HeDisk, description: str | None = None) -> str:
    """``KEY=VALUE`` lines sorted by key, then ``EOF``; at most 512 bytes."""
    values = volume_metadata(d, disk, description)
    text = "".join(f"{key}={values[key]}\n" for key in sorted(values)) + "EOF\n"
    assert len(text.encode()) <= METADATA_SIZE, "volume metadata overflows its 512-byte block"
    return text


def hosted_engine_conf_text(
    d: Deployment, host_id: int, *, conf: Path = DEFAULT_RUN_CONF, overrides: dict[str, str] | None = None
) -> str:
    """hosted-engine.conf from deploy's template (CLI spec §1): the original's keys only.
    ``overrides``: values replacing the template's (keys it lacks are appended)."""
    image, vol = {}, {}
    for disk in d.disks:
        image[disk.role], vol[disk.role] = disk.image, disk.volume
    iscsi = {"iqn": "", "portal": "", "user": "", "password": "", "port": "", **d.iscsi}
    entries: list[tuple[str, str] | str] = [
        ("fqdn", d.fqdn),
        ("vm_disk_id", image["vm"]),
        ("vm_disk_vol_id", vol["vm"]),
        ("vmid", d.vm_uuid),
        ("storage", d.storage),
        ("nfs_version", "" if d.block else "auto"),
        ("mnt_options", ""),
        ("conf", str(conf)),
        ("host_id", str(host_id)),
        ("console", "vnc"),
        ("domainType", d.domain_type),
        ("spUUID", BLANK),
        ("sdUUID", d.sd_uuid),
        ("connectionUUID", d.connection_uuid),
        ("ca_cert", "/etc/pki/vdsm/libvirt-spice/ca-cert.pem"),
        ("ca_subject", '"C=EN, L=Test, O=Test, CN=Test"'),
        ("vdsm_use_ssl", "true"),
        ("gateway", "192.168.122.1"),
        ("bridge", "ovirtmgmt"),
        ("network_test", "dns"),
        ("tcp_t_address", ""),
        ("tcp_t_port", ""),
        ("metadata_volume_UUID", vol["metadata"]),
        ("metadata_image_UUID", image["metadata"]),
        ("lockspace_volume_UUID", vol["lockspace"]),
        ("lockspace_image_UUID", image["lockspace"]),
        ("conf_volume_UUID", vol["conf"]),
        ("conf_image_UUID", image["conf"]),
        "",
        "# The following are used only for iSCSI storage",
        *((key, iscsi[key]) for key in ("iqn", "portal", "user", "password", "port")),
    ]
    pending = dict(overrides or {})
    lines = []
    for entry in entries:
        if isinstance(entry, str):
            lines.append(entry)
        else:
            key, value = entry
            lines.append(f"{key}={pending.pop(key, value)}")
    lines += [f"{key}={value}" for key, value in pending.items()]
    return "\n".join(lines) + "\n"


def _device(**fields: object) -> str:
    """A ``devices=`` line as the original writes it: Python's dict rendering, quotes and spaces removed."""
    return "devices=" + str(fields).replace("'", "").replace(" ", "")


def _vm_devices(d: Deployment) -> list[str]:
    vm = d.disk("vm")
    return [
        _device(
            index="0",
            iface="virtio",
            format="raw",
            poolID=BLANK,
            volumeID=vm.volume,
            imageID=vm.image,
            specParams={},
            readonly="false",
            domainID=d.sd_uuid,
            optional="false",
            deviceId=vm.image,
            address={"bus": "0x00", "slot": "0x06", "domain": "0x0000", "type": "pci", "function": "0x0"},
            device="disk",
            shared="exclusive",
            propagateErrors="off",
            type="disk",
            bootOrder="1",
        ),
        _device(
            index="2",
            iface="ide",
            address={"controller": "0", "target": "0", "unit": "0", "bus": "1", "type": "drive"},
            specParams={},
            readonly="true",
            deviceId=CDROM_DEVICE,
            path="",
            device="cdrom",
            shared="false",
            type="disk",
        ),
        _device(device="scsi", model="virtio-scsi", type="controller"),
        _device(
            nicModel="pv",
            macAddr=d.mac,
            linkActive="true",
            network="ovirtmgmt",
            specParams={},
            deviceId=str(uuid.uuid5(uuid.NAMESPACE_OID, d.mac)),
            address={"bus": "0x00", "slot": "0x03", "domain": "0x0000", "type": "pci", "function": "0x0"},
            device="bridge",
            type="interface",
        ),
        _device(device="console", type="console"),
        _device(device="vga", alias="video0", type="video"),
        _device(device="vnc", type="graphics"),
        _device(device="virtio", specParams={"source": "urandom"}, model="virtio", type="rng"),
    ]


def legacy_vm_conf(d: Deployment) -> str:
    """The configuration archive's vm.conf as deploy's template writes it: no xmlBase64."""
    lines = [
        f"vmId={d.vm_uuid}",
        f"memSize={d.mem_mib}",
        "display=vnc",
        *_vm_devices(d),
        f"vmName={d.vm_name}",
        f"spiceSecureChannels={SPICE_CHANNELS}",
        f"smp={d.vcpus}",
        f"maxVCpus={max(d.vcpus, 16)}",
        "cpuType=Skylake-Server-IBRS",
        "emulatedMachine=pc-q35-rhel8.6.0",
    ]
    return "\n".join(lines) + "\n"


def agent_vm_conf(d: Deployment, domain_xml: str, *, generated: float | None = None) -> str:
    """The run-directory vm.conf as the original agent leaves it (§3.5, §3.6): the three-line
    header, ``xmlBase64`` of the engine's domain XML, then the converted keys and devices."""
    encoded = base64.b64encode(domain_xml.encode()).decode()
    header = [VM_CONF_HEADER, f"# This file was generated at {time.asctime(time.localtime(generated))}", ""]
    lines = [
        f"xmlBase64={encoded}",
        f"vmId={d.vm_uuid}",
        f"vmName={d.vm_name}",
        "display=vnc",
        "cpuType=Skylake-Server-IBRS",
        "emulatedMachine=pc-q35-rhel8.6.0",
        f"smp={d.vcpus}",
        f"maxVCpus={max(d.vcpus, 16)}",
        f"memSize={d.mem_mib}",
        f"spiceSecureChannels={SPICE_CHANNELS}",
        *_vm_devices(d),
    ]
    return "\n".join(header + lines) + "\n"


def fhanswers_conf(d: Deployment) -> str:
    """The otopi answer file deploy stores in the archive (§2.1)."""
    answers = {
        "OVEHOSTED_CORE/deployProceed": "bool:True",
        "OVEHOSTED_CORE/enableKeycloak": "bool:False",
        "OVEHOSTED_CORE/screenProceed": "bool:True",
        "OVEHOSTED_ENGINE/clusterName": "str:Default",
        "OVEHOSTED_ENGINE/datacenterName": "str:Default",
        "OVEHOSTED_ENGINE/enableHcGlusterService": "none:None",
        "OVEHOSTED_ENGINE/insecureSSL": "none:None",
        "OVEHOSTED_NETWORK/bridgeIf": "str:eth0",
        "OVEHOSTED_NETWORK/bridgeName": "str:ovirtmgmt",
        "OVEHOSTED_NETWORK/fqdn": f"str:{d.fqdn}",
        "OVEHOSTED_NETWORK/gateway": "str:192.168.122.1",
        "OVEHOSTED_NETWORK/network_test": "str:dns",
        "OVEHOSTED_NOTIF/destEmail": "str:root@localhost",
        "OVEHOSTED_NOTIF/smtpPort": "str:25",
        "OVEHOSTED_NOTIF/smtpServer": "str:localhost",
        "OVEHOSTED_NOTIF/sourceEmail": "str:root@localhost",
        "OVEHOSTED_STORAGE/LunID": "none:None",
        "OVEHOSTED_STORAGE/discardSupport": "bool:False",
        "OVEHOSTED_STORAGE/domainType": f"str:{d.domain_type}",
        "OVEHOSTED_STORAGE/imgSizeGB": "str:51",
        "OVEHOSTED_STORAGE/iSCSIPortalIPAddress": "none:None",
        "OVEHOSTED_STORAGE/mntOptions": "str:",
        "OVEHOSTED_STORAGE/nfsVersion": "str:auto",
        "OVEHOSTED_STORAGE/sdUUID": f"str:{d.sd_uuid}",
        "OVEHOSTED_STORAGE/spUUID": f"str:{BLANK}",
        "OVEHOSTED_STORAGE/storageDomainConnection": f"str:{d.storage}",
        "OVEHOSTED_STORAGE/storageDomainName": f"str:{d.domain_name}",
        "OVEHOSTED_VM/cloudinitInstanceHostName": f"str:{d.fqdn}",
        "OVEHOSTED_VM/cloudinitRootPwd": "str:",
        "OVEHOSTED_VM/vmMACAddr": f"str:{d.mac}",
        "OVEHOSTED_VM/vmMemSizeMB": f"int:{d.mem_mib}",
        "OVEHOSTED_VM/vmVCpus": f"str:{d.vcpus}",
        "OVEHOSTED_VM/automateVMShutdown": "bool:True",
    }
    return "[environment:default]\n" + "".join(f"{key}={value}\n" for key, value in sorted(answers.items()))


def broker_conf() -> str:
    """broker.conf as deploy's template writes it (§2.1)."""
    return (
        "[email]\nsmtp-server = localhost\nsmtp-port = 25\nsource-email = root@localhost\n"
        "destination-emails = root@localhost\n\n"
        "[notify]\nstate_transition = maintenance|start|stop|migrate|up|down\n"
    )


def deploy_archive(d: Deployment, shared_conf: str) -> bytes:
    """The configuration archive as deploy creates it, with ``shared_conf`` (the deploying
    host's hosted-engine.conf) as its hosted-engine.conf member."""
    texts = {
        "vm.conf": legacy_vm_conf(d),
        "broker.conf": broker_conf(),
        "version": d.ha_version,
        "fhanswers.conf": fhanswers_conf(d),
        "hosted-engine.conf": shared_conf,
    }
    return gnu_tar({name: texts[name] for name in ARCHIVE_ORDER})


def gnu_tar(members: dict[str, str]) -> bytes:
    """``tar --format=gnu --record-size=20480`` of ``members`` in their order, owned by
    vdsm:kvm (36/36), mode 0644, real mtimes: deploy's archive (exactly 20480 bytes)."""
    with tempfile.TemporaryDirectory(prefix="he-ha-deploy-") as work:
        for name, text in members.items():
            path = Path(work, name)
            path.write_text(text)
            path.chmod(0o644)
        subprocess.run(
            [
                "tar",
                "--format=gnu",
                "--record-size=20480",
                "--owner=vdsm:36",
                "--group=kvm:36",
                "-cf",
                "archive.tar",
                *members,
            ],
            cwd=work,
            check=True,
            capture_output=True,
        )
        data = Path(work, "archive.tar").read_bytes()
    if len(data) != ARCHIVE_BYTES:
        raise ValueError(
            f"the configuration archive is {len(data)} bytes, not {ARCHIVE_BYTES}: its members are too big"
        )
    return data


def copy_archive(archive: bytes, volume: Path, *, truncate: bool) -> None:
    """``dd bs=20480 count=1 oflag=direct`` onto ``volume``, as deploy does. Without
    ``conv=notrunc`` dd truncates a file to 20480 bytes (file domains, ``truncate``); a
    logical volume keeps its size (block domains: pass ``truncate=False``)."""
    with tempfile.NamedTemporaryFile(prefix="he-ha-conf-", suffix=".tar") as source:
        source.write(archive)
        source.flush()
        command = ["dd", f"if={source.name}", f"of={volume}", "bs=20480", "count=1", "oflag=direct", "status=none"]
        subprocess.run(command + ([] if truncate else ["conv=notrunc"]), check=True, capture_output=True)


# --- the trees ---------------------------------------------------------------------------------


def _vdsm_file(path: Path, size: int = 0, text: str | None = None) -> Path:
    """A VDSM-owned file: ``text`` or ``size`` sparse bytes, mode 0660, vdsm:kvm."""
    if text is not None:
        path.write_text(text)
    else:
        with path.open("wb") as handle:
            handle.truncate(size)
    path.chmod(VOLUME_MODE)
    _own(path)
    return path


def _vdsm_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    _own(path)
    return path


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        os.chown(path, VDSM_UID, VDSM_GID, follow_symlinks=False)


def _link(path: Path, target: Path | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def create_file_domain(export: Path, d: Deployment, shared_conf: str) -> Path:
    """The storage domain on an export (or its mount): returns ``<export>/<SD>``.
    ``shared_conf``: the deploying host's hosted-engine.conf, stored in the archive."""
    domain = _vdsm_dir(export / d.sd_uuid)
    dom_md = _vdsm_dir(domain / "dom_md")
    _vdsm_file(dom_md / "metadata", text="".join(f"{line}\n" for line in sealed_lines(domain_metadata(d))))
    for name in ("ids", "leases", "xleases"):
        _vdsm_file(dom_md / name)
    for name in ("inbox", "outbox"):
        _vdsm_file(dom_md / name, MAILBOX_BYTES)
    for disk in d.disks:
        image = _vdsm_dir(domain / "images" / disk.image)
        _vdsm_file(image / disk.volume, disk.size)
        _vdsm_file(image / f"{disk.volume}.meta", text=volume_meta_text(d, disk))
        _vdsm_file(image / f"{disk.volume}.lease", LEASE_BYTES)
    conf = d.disk("conf")
    copy_archive(deploy_archive(d, shared_conf), domain / "images" / conf.image / conf.volume, truncate=True)
    return domain


@dataclass(frozen=True)
class DeployedHostView:
    """One host's view of a deployed domain under its root R."""

    root: Path
    deployment: Deployment

    @property
    def mount_root(self) -> Path:
        """What ``he-ha run --mount-root`` and ``HE_HA_MOUNT_ROOT`` get."""
        return self.root / "rhev/data-center/mnt"

    @property
    def run_root(self) -> Path:
        return self.root / "run/vdsm/storage"

    @property
    def domain_dir(self) -> Path:
        d = self.deployment
        if d.block:
            return self.mount_root / "blockSD" / d.sd_uuid
        parent = self.mount_root / "glusterSD" if d.domain_type == "glusterfs" else self.mount_root
        return parent / mount_dir_name(d.storage) / d.sd_uuid

    def volume(self, role: str) -> Path:
        """Where the volume's data is without any run link (file: the image directory on the
        mount; block: the logical volume)."""
        disk, d = self.deployment.disk(role), self.deployment
        if d.block:
            return self.root / "dev" / d.sd_uuid / disk.volume
        return self.domain_dir / "images" / disk.image / disk.volume

    def run_link(self, role: str) -> Path:
        """``/run/vdsm/storage/<SD>/<IMG>/<VOL>``, the path Image.prepare returns."""
        disk = self.deployment.disk(role)
        return self.run_root / self.deployment.sd_uuid / disk.image / disk.volume

    def prepare_images(self, roles: Iterable[str] = ("metadata", "lockspace", "conf", "vm")) -> None:
        """The run links ``Image.prepare`` leaves (file: a link to the image directory; block:
        a directory of per-volume links to the logical volumes)."""
        for role in roles:
            disk = self.deployment.disk(role)
            link = self.run_root / self.deployment.sd_uuid / disk.image
            if self.deployment.block:
                _link(link / disk.volume, self.volume(role))
            else:
                _link(link, self.domain_dir / "images" / disk.image)

    def ha_agent_links(self) -> Path:
        """The broker's compatibility links ``<domain>/ha_agent/hosted-engine.{metadata,lockspace}``
        → the run links, as the original broker writes them (§1.11 step 6)."""
        directory = _vdsm_dir(self.domain_dir / "ha_agent")
        for role in ("metadata", "lockspace"):
            link = directory / f"hosted-engine.{role}"
            link.unlink(missing_ok=True)
            _link(link, self.run_link(role))
        return directory


def lay_out_file_domain(root: Path, d: Deployment, shared_conf: str, *, run_links: bool = True) -> DeployedHostView:
    """An NFS/Gluster domain under ``root``, mounted where VDSM mounts it
    (``R/rhev/data-center/mnt/[glusterSD/]<escaped storage>``); ``shared_conf``: the deploying
    host's hosted-engine.conf, stored in the archive; ``run_links``: Image.prepare's links."""
    view = DeployedHostView(root, d)
    create_file_domain(_vdsm_dir(view.domain_dir.parent), d, shared_conf)
    _vdsm_dir(view.run_root)
    if run_links:
        view.prepare_images()
    return view


def lay_out_block_domain(
    root: Path, d: Deployment, shared_conf: str, *, run_links: bool = True, image_links: bool = False
) -> DeployedHostView:
    """An iSCSI/FC domain under ``root``: LVs as files in ``R/dev/<SD>/``, the ``dom_md`` links,
    volume metadata in the ``metadata`` LV, tags in ``R/lvm/<SD>.json``; ``run_links``: the
    run directories Image.prepare creates; ``image_links``: ``blockSD/<SD>/images/<IMG>`` →
    the run directory, which VDSM adds only for a prepare with a real pool (§1.7)."""
    assert d.block, "a block domain needs domainType iscsi or fc"
    view = DeployedHostView(root, d)
    vg = _vdsm_dir(root / "dev" / d.sd_uuid)
    sizes = _block_sizes(d)
    for name, size in sizes.items():
        _vdsm_file(vg / name, _extents(size) * EXTENT)
    for name in BLOCK_SPECIAL:
        if name != "master":
            _link(view.domain_dir / "dom_md" / name, vg / name)
    _vdsm_dir(view.domain_dir / "images")
    lvs: dict[str, dict[str, object]] = {
        name: {"size": _extents(size) * EXTENT, "tags": []} for name, size in sizes.items() if name in BLOCK_SPECIAL
    }
    with (vg / "metadata").open("r+b") as metadata:
        for slot, disk in enumerate(d.disks, start=1):  # version 5: slot 0 is reserved
            metadata.seek(metadata_slot_offset(5, slot))
            metadata.write(volume_meta_text(d, disk).encode().ljust(METADATA_SIZE, b"\0"))
            lvs[disk.volume] = {
                "size": _extents(disk.size) * EXTENT,
                "tags": [f"IU_{disk.image}", f"MD_{slot}", f"PU_{BLANK}"],
            }
    conf = d.disk("conf")
    copy_archive(deploy_archive(d, shared_conf), vg / conf.volume, truncate=False)
    tags = ["RHAT_storage_domain"] + [f"MDT_{escape_tag(line)}" for line in sealed_lines(domain_metadata(d))]
    side = root / "lvm" / f"{d.sd_uuid}.json"
    side.parent.mkdir(parents=True, exist_ok=True)
    side.write_text(
        json.dumps(
            {"vg": {"name": d.sd_uuid, "uuid": d.vg_uuid, "extent_size": EXTENT, "tags": tags}, "lvs": lvs}, indent=2
        )
        + "\n"
    )
    _vdsm_dir(view.run_root)
    if run_links:
        view.prepare_images()
    if image_links:
        for disk in d.disks:
            _link(view.domain_dir / "images" / disk.image, view.run_root / d.sd_uuid / disk.image)
    return view


def _block_sizes(d: Deployment) -> dict[str, int]:
    return {**BLOCK_SPECIAL, **{disk.volume: disk.size for disk in d.disks}}


def _extents(size: int) -> int:
    return -(-size // EXTENT)


# --- OVF_STORE (§1.12 step 7, §3.1, §3.2) --------------------------------------------------------

OVF_STORE_BYTES = 128 * MIB
OVF_STORE_RECORD = 10240  # commons-compress pads the archive to this


def java_date(epoch: float) -> str:
    """Java's ``Date.toString()`` in UTC: ``Mon Jan 08 10:15:30 UTC 2024``."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch))


def ovf_store_description(sd: str, *, updated: bool, when: str, size: int | None = None) -> str:
    """An OVF_STORE volume's DESCRIPTION as the engine sets it (§3.1): compact JSON."""
    values: dict[str, object] = {"Updated": updated}
    if size is not None:
        values["Size"] = size
    values.update({"Last Updated": when, "Storage Domains": [{"uuid": sd}], "Disk Description": "OVF_STORE"})
    return json.dumps(values, separators=(",", ":"))


def ovf_store_tar(vm_uuid: str, ovf: bytes, sd: str, when: str, *, others: dict[str, bytes] | None = None) -> bytes:
    """The archive ProcessOvfUpdateForStorageDomainCommand uploads (§3.2): ustar, members
    ``info.json``, ``<vmid>.ovf`` (then ``others``: other entities' OVFs), ``metadata.json``,
    padded to a multiple of 10240 bytes."""
    members = {
        "info.json": json.dumps({"Last Updated": when, "Storage Domains": [{"uuid": sd}]}, indent=2).encode(),
        f"{vm_uuid}.ovf": ovf,
        **(others or {}),
        "metadata.json": json.dumps({"VM Status": {vm_uuid: 1}}, indent=2).encode(),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    data = out.getvalue()
    assert len(data) % OVF_STORE_RECORD == 0
    return data


def add_ovf_stores(view: DeployedHostView, count: int = 2) -> tuple[HeDisk, ...]:
    """The OVF_STORE volumes CreateOvfVolumeForStorageDomainCommand adds to the domain after
    deploy (``StorageDomainOvfStoreCount`` = 2): 128 MiB sparse, ``DISKTYPE=OVFS``, never updated
    (``Updated:false``, no date). File domains only. Returns them (role ``ovf_store``)."""
    d = view.deployment
    if d.block:
        raise NotImplementedError("OVF_STORE volumes in the fixture: file domains only")
    stores = tuple(
        HeDisk("ovf_store", "OVF_STORE", "OVF_STORE", "OVFS", OVF_STORE_BYTES, sparse=True) for _ in range(count)
    )
    for disk in stores:
        image = _vdsm_dir(view.domain_dir / "images" / disk.image)
        _vdsm_file(image / disk.volume, disk.size)
        _vdsm_file(image / f"{disk.volume}.lease", LEASE_BYTES)
        _set_ovf_store_description(view, disk, ovf_store_description(d.sd_uuid, updated=False, when=""))
    return stores


def update_ovf_store(view: DeployedHostView, disk: HeDisk, ovf: bytes, epoch: float | None = None) -> bytes:
    """One engine update of the OVF_STORE ``disk`` (§3.1): ``Updated:false`` keeping the previous
    date, the tar with ``ovf`` as ``<vmid>.ovf`` written at offset 0 without truncating,
    ``Updated:true`` with ``Size`` and ``Last Updated`` = ``epoch`` (now by default). Returns the tar."""
    d = view.deployment
    path = view.domain_dir / "images" / disk.image / disk.volume
    when = java_date(time.time() if epoch is None else epoch)
    previous = json.loads(_ovf_store_metadata(view, disk)["DESCRIPTION"]).get("Last Updated", "")
    _set_ovf_store_description(view, disk, ovf_store_description(d.sd_uuid, updated=False, when=previous))
    data = ovf_store_tar(d.vm_uuid, ovf, d.sd_uuid, when)
    with path.open("r+b") as volume:
        volume.write(data)
    _set_ovf_store_description(view, disk, ovf_store_description(d.sd_uuid, updated=True, when=when, size=len(data)))
    return data


def _ovf_store_meta(view: DeployedHostView, disk: HeDisk) -> Path:
    return view.domain_dir / "images" / disk.image / f"{disk.volume}.meta"


def _ovf_store_metadata(view: DeployedHostView, disk: HeDisk) -> dict[str, str]:
    lines = _ovf_store_meta(view, disk).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _set_ovf_store_description(view: DeployedHostView, disk: HeDisk, description: str) -> None:
    """VDSM's Volume.setDescription: the ``.meta`` rewritten with the new DESCRIPTION."""
    meta = _ovf_store_meta(view, disk)
    temporary = meta.with_name(meta.name + ".new")
    _vdsm_file(temporary, text=volume_meta_text(view.deployment, disk, description))
    os.replace(temporary, meta)


def install_host(view: DeployedHostView, host_id: int, overrides: dict[str, str] | None = None) -> Path:
    """Write ``R/etc/ovirt-hosted-engine/hosted-engine.conf`` for ``host_id``, its ``conf`` in
    ``R/run/ovirt-hosted-engine-ha``; returns its path."""
    path = view.root / "etc/ovirt-hosted-engine/hosted-engine.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(host_conf_text(view, host_id, overrides))
    return path


def host_conf_text(view: DeployedHostView, host_id: int, overrides: dict[str, str] | None = None) -> str:
    return hosted_engine_conf_text(
        view.deployment, host_id, conf=view.root / "run/ovirt-hosted-engine-ha/vm.conf", overrides=overrides
    )


def deployed_host(
    root: Path, d: Deployment, *, run_links: bool = True, image_links: bool = False
) -> tuple[DeployedHostView, Path]:
    """Host 1 as deploy left it, alone under ``root``: the domain (file or block, by
    ``d.domain_type``) and hosted-engine.conf, the same text as the archive's member.
    Returns the host's view and its hosted-engine.conf. ``image_links``: block domains only."""
    view = DeployedHostView(root, d)
    shared = host_conf_text(view, 1)
    if d.block:
        lay_out_block_domain(root, d, shared, run_links=run_links, image_links=image_links)
    else:
        lay_out_file_domain(root, d, shared, run_links=run_links)
    return view, install_host(view, 1)


def run_storage_paths(conf: Path, mount_root: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``he-ha storage-paths`` as a separate process, as an administrator runs it."""
    command = [
        sys.executable,
        "-m",
        "he_ha.main",
        "storage-paths",
        "--hosted-engine-conf",
        str(conf),
        "--mount-root",
        str(mount_root),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
