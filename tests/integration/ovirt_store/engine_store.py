"""A hosted-engine storage domain with OVF_STORE volumes as the engine and VDSM leave them
(spec ovirt-host-integration.md §1.4, §1.6, §3.1, §3.2), under a root directory R standing for ``/``:

``R/rhev/data-center/mnt/nfs.example.com:_exports_he/<SD>/`` with ``dom_md/metadata`` and
``images/<IMG>/<VOL>`` + ``<VOL>.meta`` + ``<VOL>.lease`` for the metadata and lockspace volumes
(what hosted-engine.conf names) and for each OVF_STORE: a sparse 128 MiB raw volume, ``DISKTYPE=OVFS``,
the engine's compact JSON as ``DESCRIPTION``. An engine update follows the engine's protocol
(§3.1): description ``Updated:false``, the tar written at offset 0 without truncating (what was
there after the archive stays), description ``Updated:true`` with ``Size`` and ``Last Updated``.
The tar is Python's tarfile in ustar format, members ``info.json``, ``<vmid>.ovf``,
``metadata.json``, padded to a multiple of 10240 bytes, as commons-compress writes it.
Block domains: the LVs as files ``R/dev/<SD>/<name>``, metadata in version-5 slots of
``R/dev/<SD>/metadata``, the tags in ``R/lvm/<SD>.json``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from he_ha.devcluster.deployed import ovf_store_tar

BLANK = "00000000-0000-0000-0000-000000000000"
MIB = 1024 * 1024
OVF_STORE_SIZE = 128 * MIB
STORAGE = "nfs.example.com:/exports/he"
MOUNT_DIR = "nfs.example.com:_exports_he"


def java_date(epoch: float) -> str:
    """Java's Date.toString() in UTC: ``Mon Jan 08 10:15:30 UTC 2024``."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch))


def description(sd: str, *, updated: bool, when: str, size: int | None = None) -> str:
    """The engine's volume description of an OVF_STORE (§3.1), compact, HashMap-ish key order."""
    values: dict[str, object] = {"Updated": updated}
    if size is not None:
        values["Size"] = size
    values.update({"Last Updated": when, "Storage Domains": [{"uuid": sd}], "Disk Description": "OVF_STORE"})
    return json.dumps(values, separators=(",", ":"))


def meta_text(sd: str, image: str, description_text: str, disktype: str, capacity: int) -> str:
    """A version-5 ``.meta`` (§1.6): sorted keys, then ``EOF``."""
    values = {
        "CAP": str(capacity),
        "CTIME": str(int(time.time())),
        "DESCRIPTION": description_text,
        "DISKTYPE": disktype,
        "DOMAIN": sd,
        "FORMAT": "RAW",
        "GEN": "0",
        "IMAGE": image,
        "LEGALITY": "LEGAL",
        "PUUID": BLANK,
        "SEQ": "0",
        "TYPE": "SPARSE",
        "VOLTYPE": "LEAF",
    }
    text = "".join(f"{key}={values[key]}\n" for key in sorted(values)) + "EOF\n"
    assert len(text) <= 512
    return text


@dataclass
class Volume:
    image: str = field(default_factory=lambda: str(uuid.uuid4()))
    volume: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class FileDomain:
    """The HE domain as a host sees the NFS mount."""

    root: Path
    vm_id: str
    sd: str = field(default_factory=lambda: str(uuid.uuid4()))
    metadata: Volume = field(default_factory=Volume)
    lockspace: Volume = field(default_factory=Volume)

    @property
    def mount_root(self) -> Path:
        return self.root / "rhev/data-center/mnt"

    @property
    def domain_dir(self) -> Path:
        return self.mount_root / MOUNT_DIR / self.sd

    @property
    def conf_path(self) -> Path:
        return self.root / "etc/ovirt-hosted-engine/hosted-engine.conf"

    def create(self) -> FileDomain:
        dom_md = self.domain_dir / "dom_md"
        dom_md.mkdir(parents=True)
        (dom_md / "metadata").write_text(
            f"CLASS=Data\nDESCRIPTION=hosted_storage\nREMOTE_PATH={STORAGE}\nSDUUID={self.sd}\nTYPE=NFS\nVERSION=5\n"
        )
        for name in ("ids", "leases", "xleases"):
            (dom_md / name).write_bytes(b"")
        self.add_volume(
            self.metadata,
            '{"DiskAlias":"he_metadata","DiskDescription":"Hosted-Engine metadata disk"}',
            "HEMD",
            128 * MIB,
        )
        self.add_volume(
            self.lockspace,
            '{"DiskAlias":"he_sanlock","DiskDescription":"Hosted-Engine sanlock disk"}',
            "HESD",
            1024 * MIB,
        )
        self.conf_path.parent.mkdir(parents=True)
        self.conf_path.write_text(
            f"fqdn=engine.example.com\nvmid={self.vm_id}\nstorage={STORAGE}\nnfs_version=auto\nmnt_options=\n"
            "conf=/var/run/ovirt-hosted-engine-ha/vm.conf\nhost_id=1\nconsole=vnc\ndomainType=nfs\n"
            f"spUUID={BLANK}\nsdUUID={self.sd}\ngateway=192.0.2.1\nbridge=ovirtmgmt\nnetwork_test=dns\n"
            f"metadata_volume_UUID={self.metadata.volume}\nmetadata_image_UUID={self.metadata.image}\n"
            f"lockspace_volume_UUID={self.lockspace.volume}\nlockspace_image_UUID={self.lockspace.image}\n"
        )
        return self

    def add_volume(self, vol: Volume, description_text: str, disktype: str, capacity: int) -> Path:
        image_dir = self.domain_dir / "images" / vol.image
        image_dir.mkdir(parents=True, exist_ok=True)
        path = image_dir / vol.volume
        with path.open("wb") as f:
            f.truncate(capacity)  # sparse
        (image_dir / f"{vol.volume}.lease").write_bytes(b"")
        self.set_meta(vol, description_text, disktype, capacity)
        return path

    def set_meta(
        self, vol: Volume, description_text: str, disktype: str = "OVFS", capacity: int = OVF_STORE_SIZE
    ) -> None:
        meta = self.domain_dir / "images" / vol.image / f"{vol.volume}.meta"
        meta.write_text(meta_text(self.sd, vol.image, description_text, disktype, capacity))

    def volume_path(self, vol: Volume) -> Path:
        return self.domain_dir / "images" / vol.image / vol.volume

    def new_ovf_store(self, image: str | None = None) -> Volume:
        """An OVF_STORE as CreateOvfVolumeForStorageDomainCommand leaves it: never updated."""
        vol = Volume(image=image or str(uuid.uuid4()))
        self.add_volume(vol, description(self.sd, updated=False, when=""), "OVFS", OVF_STORE_SIZE)
        return vol

    def engine_update(
        self,
        vol: Volume,
        ovf: bytes,
        epoch: float,
        *,
        others: dict[str, bytes] | None = None,
        finish: bool = True,
        partial: bytes | None = None,
    ) -> bytes:
        """One engine update of ``vol``: Updated:false, the tar at offset 0 (no truncation),
        Updated:true with Size. ``finish=False`` stops after writing ``partial`` (or the first
        half of the tar): a store caught mid-upload."""
        when = java_date(epoch)
        previous = json.loads(self.read_meta(vol)["DESCRIPTION"]).get("Last Updated", "")
        self.set_meta(vol, description(self.sd, updated=False, when=previous))
        data = ovf_store_tar(self.vm_id, ovf, self.sd, when, others=others)
        with self.volume_path(vol).open("r+b") as f:
            f.write(data if finish else (partial if partial is not None else data[: len(data) // 2]))
        if finish:
            self.set_meta(vol, description(self.sd, updated=True, when=when, size=len(data)))
        return data

    def read_meta(self, vol: Volume) -> dict[str, str]:
        meta = self.domain_dir / "images" / vol.image / f"{vol.volume}.meta"
        return dict(line.split("=", 1) for line in meta.read_text().splitlines() if "=" in line)
