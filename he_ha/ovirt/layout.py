"""Where a deployed host's hosted-engine volumes are, from hosted-engine.conf alone (pure lookups).

``hosted-engine --deploy`` names the volumes by UUID (spec ovirt-host-integration.md §1.10):
``metadata_image_UUID``/``metadata_volume_UUID`` (the whiteboard), ``lockspace_*`` (the HA
lockspace) and ``conf_*`` (the configuration archive), all on the storage domain ``sdUUID``.
The original asks VDSM (``Image.prepare``) for each path; he-ha finds them by VDSM's
documented layout instead (§1.2, §1.4, §1.7, §1.8), trying in order:

1. an explicit he-ha key (``metadata_path``, ``lockspace_path``): an override;
2. the run link ``/run/vdsm/storage/<SD>/<IMG>/<VOL>`` that ``Image.prepare`` leaves (any domain);
3. file domains (nfs*, glusterfs, posixfs): ``<mount root>/[glusterSD/]<escaped storage>/<SD>/images/<IMG>/<VOL>``
   from the ``storage`` connection, then every ``<mount root>/[glusterSD/]*/<SD>`` (the
   original's directory listing, which also finds a mount made under another spelling);
4. block domains (iscsi, fc): ``<mount root>/blockSD/<SD>/images/<IMG>/<VOL>``, then the
   logical volume ``/dev/<SD>/<VOL>`` (VG = SD, LV = VOL).

A volume not found is a ``VolumeNotFound`` naming the key, the UUIDs and every path tried.

The mount root is a setting. A mount root ending in ``rhev/data-center/mnt`` stands for a
whole relocated root (tests and the demo lay out ``<R>/rhev/data-center/mnt``,
``<R>/run/vdsm/storage`` and ``<R>/dev``); any other mount root keeps the run links under
``/run/vdsm/storage`` and the logical volumes under ``/dev``.
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass
from pathlib import Path

from he_ha.config import ConfigError, HostedEngineConf

DEFAULT_MOUNT_ROOT = Path("/rhev/data-center/mnt")
_MOUNT_SUFFIX = ("rhev", "data-center", "mnt")
FILE_DOMAINS = ("nfs", "nfs3", "nfs4", "glusterfs", "posixfs")
BLOCK_DOMAINS = ("iscsi", "fc")
GLUSTER_DIR = "glusterSD"
BLOCK_DIR = "blockSD"

# hosted-engine.conf key prefix -> he-ha's override key (None: no override exists)
VOLUME_KEYS: dict[str, str | None] = {"metadata": "metadata_path", "lockspace": "lockspace_path", "conf": None}


class VolumeNotFound(ConfigError):
    """A hosted-engine volume is not where the layout says; the message lists every path tried."""


@dataclass(frozen=True)
class VdsmRoots:
    """The three places VDSM puts storage on a host."""

    mount_root: Path = DEFAULT_MOUNT_ROOT  # file-domain mounts, glusterSD/, blockSD/
    run_root: Path = Path("/run/vdsm/storage")  # Image.prepare's run links
    dev_root: Path = Path("/dev")  # block domains' logical volumes: <dev>/<SD>/<VOL>

    @classmethod
    def from_mount_root(cls, mount_root: Path) -> VdsmRoots:
        if mount_root.parts[-3:] == _MOUNT_SUFFIX:
            root = mount_root.parents[2]
            return cls(mount_root, root / "run/vdsm/storage", root / "dev")
        return cls(mount_root)


@dataclass(frozen=True)
class ResolvedVolume:
    path: Path
    rule: str  # which rule found it, for `he-ha storage-paths` and the logs

    def as_json(self) -> dict[str, str]:
        return {"path": str(self.path), "rule": self.rule}


@dataclass(frozen=True)
class HeVolumes:
    metadata: ResolvedVolume
    lockspace: ResolvedVolume
    conf: ResolvedVolume | None  # None: hosted-engine.conf names no configuration volume


def mount_dir_name(storage: str) -> str:
    """VDSM's mount-point name for a storage connection (§1.2): normalise, then ``_``→``__``, ``/``→``_``."""
    return _normalise_spec(storage).replace("_", "__").replace("/", "_")


def _normalise_path(path: str) -> str:
    # posixpath.normpath keeps a leading "//" (POSIX allows it to mean something); VDSM does not.
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _normalise_spec(spec: str) -> str:
    if spec.startswith("/") or ":" not in spec:
        return _normalise_path(spec)
    if spec.startswith("["):  # [IPv6]:tail
        close = spec.find("]")
        host, tail = spec[1:close], spec[close + 2 :]
        ipaddress.IPv6Address(host)  # a malformed bracket form is not a connection string
        host = f"[{host}]"
    else:
        host, _, tail = spec.partition(":")
    port, sep, path = tail.partition(":")
    if sep and _is_port(port):
        return f"{host}:{port}:{_normalise_path(path)}"
    return f"{host}:{_normalise_path(tail)}"


def _is_port(text: str) -> bool:
    return text.isdigit() and not text.startswith("0") and 1 <= int(text) <= 65535


def resolve_volumes(conf: HostedEngineConf, roots: VdsmRoots, source: Path) -> HeVolumes:
    """Every hosted-engine volume of ``conf`` (read from ``source``, named in errors).
    Blocking (it looks at the file system): run it off the event loop."""
    finder = _Finder(conf, roots, source)
    metadata, lockspace = finder.find("metadata"), finder.find("lockspace")
    named = conf.conf_image_uuid or conf.conf_volume_uuid
    return HeVolumes(metadata, lockspace, finder.find("conf") if named else None)


def resolve_volume(conf: HostedEngineConf, role: str, roots: VdsmRoots, source: Path) -> ResolvedVolume:
    """One volume: ``role`` is metadata, lockspace or conf (a conf volume must be named)."""
    return _Finder(conf, roots, source).find(role)


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in path.iterdir())
    except OSError:
        return []


class _Finder:
    def __init__(self, conf: HostedEngineConf, roots: VdsmRoots, source: Path) -> None:
        self.conf, self.roots, self.source = conf, roots, source

    def find(self, role: str) -> ResolvedVolume:
        override = VOLUME_KEYS[role]
        explicit = getattr(self.conf, override) if override else None
        if explicit is not None:
            return ResolvedVolume(explicit, f"hosted-engine.conf {override}")
        image, volume = self._uuids(role)
        tried: list[Path] = []
        for path, rule in self._candidates(image, volume):
            if path.exists():
                return ResolvedVolume(path, rule)
            tried.append(path)
        raise VolumeNotFound(
            self.source,
            f"the {role} volume (image {image}, volume {volume}) of storage domain "
            f"{self.conf.sd_uuid} was not found; tried: {', '.join(map(str, tried)) or 'nothing'}",
            key=f"{role}_volume_UUID",
            value=volume,
        )

    def _uuids(self, role: str) -> tuple[str, str]:
        image = getattr(self.conf, f"{role}_image_uuid")
        volume = getattr(self.conf, f"{role}_volume_uuid")
        override = VOLUME_KEYS[role]
        for key, value in (
            (f"{role}_image_UUID", image),
            (f"{role}_volume_UUID", volume),
            ("sdUUID", self.conf.sd_uuid),
        ):
            if not value:
                hint = f" (or he-ha's {override})" if override else ""
                raise ConfigError(self.source, f"required to find the {role} volume{hint}", key=key)
        return image, volume

    def _candidates(self, image: str, volume: str) -> list[tuple[Path, str]]:
        sd, kind = str(self.conf.sd_uuid), (self.conf.domain_type or "").lower()
        mount = self.roots.mount_root
        found = [(self.roots.run_root / sd / image / volume, "vdsm run link (Image.prepare)")]
        if kind in BLOCK_DOMAINS:
            found.append((mount / BLOCK_DIR / sd / "images" / image / volume, "block domain image link"))
            found.append((self.roots.dev_root / sd / volume, f"logical volume {sd}/{volume}"))
            return found
        if kind not in FILE_DOMAINS:
            raise ConfigError(
                self.source,
                f"not a storage domain type he-ha knows ({', '.join(FILE_DOMAINS + BLOCK_DOMAINS)})",
                key="domainType",
                value=self.conf.domain_type,
            )
        parent = mount / GLUSTER_DIR if kind == "glusterfs" else mount
        tail = Path(sd) / "images" / image / volume
        if self.conf.storage:
            try:
                name = mount_dir_name(self.conf.storage)
            except ValueError:
                raise ConfigError(
                    self.source, "not a storage connection VDSM could mount", key="storage", value=self.conf.storage
                ) from None
            found.append((parent / name / tail, f"mount of storage={self.conf.storage}"))
        for entry in _listdir(parent):
            if entry in (GLUSTER_DIR, BLOCK_DIR):
                continue
            candidate = (parent / entry / tail, f"domain directory found under {parent}")
            if candidate[0] not in [path for path, _ in found]:
                found.append(candidate)
        return found
