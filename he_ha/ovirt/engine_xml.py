"""The engine's domain XML made startable: what VDSM does to it at ``VM.create``, without VDSM.

he-ha starts the engine VM through libvirt, so it must hand libvirt the XML VDSM would have
built (spec ovirt-host-integration.md §4). ``resolve_engine_xml`` applies VDSM's steps in
VDSM's order (§4.1 step 3, then the ``before_vm_start`` hook of §4.6):

1. remove ``<on_reboot>`` (§4.2);
2. replace the sysinfo placeholders ``OS-NAME:``, ``OS-VERSION:``, ``HOST-SERIAL:`` of
   ``sysinfo/system/entry[@name='product'|'version'|'serial']`` when the text starts with them;
3. rewrite every disk that names a volume (its ``ovirt-vm:device`` metadata carries
   ``domainID``/``imageID``/``volumeID``, or its source is a VDSM path
   ``/rhev/data-center/…/<SD>/images/<IMG>/<VOL>``): ``type``, the source attribute, the
   driver type from the volume's ``FORMAT`` and a ``dac`` seclabel (§4.3);
4. fill the lease placeholders ``LEASE-PATH:<VOL>:<SD>`` / ``LEASE-OFFSET:<VOL>:<SD>`` of a
   ``<lease>`` whose ``<lockspace>``/``<key>`` are a disk's storage domain and volume, with
   that volume's lease (§4.2, §1.4, §1.7);
5. the hosted-engine hook: ``<on_poweroff>``, ``<on_reboot>``, ``<on_crash>`` = ``destroy``
   and the ``org.ovirt.hosted-engine-setup.0`` channel (§4.6).

Then nothing that looks like a placeholder may remain: a known one left where VDSM would not
resolve it, or an unknown ``WORD-WORD:`` one, raises ``PlaceholderError`` naming it and where
it is. Every lease must be in the hosted-engine storage domain's lockspace (§4.5).

The resolver is pure: the host's facts come in a ``HostFacts``, the volumes through a
``VolumeLookup`` callable. The helpers below the resolver build those from a host's files
(``read_host_facts``, ``file_volume_lookup``, ``block_volume_lookup``); they read files and
run nothing but the ``rpm`` query passed to ``read_host_facts``. What the storage domain
records (volume metadata, a block domain's tags and slots) is read with he_ha.ovirt.domain_meta;
a block domain's tags come in a ``BlockDomainTags`` (he_ha.ovirt.lvm's ``block_domain_tags``).
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from he_ha.ovirt.domain_meta import (
    IMAGE_TAG,
    LEASES_LV,
    META_SUFFIX,
    METADATA_LV,
    METADATA_SIZE,
    SLOT_TAG,
    BlockDomainTags,
    metadata_slot,
    metadata_slot_offset,
    parse_volume_metadata,
    tag_values,
    volume_lease_offset,
)
from he_ha.ovirt.layout import BLOCK_DIR, GLUSTER_DIR, VdsmRoots, mount_dir_name
from he_ha.ovirt.ovf import OVIRT_VM_NS
from he_ha.vm.domain_xml import LeaseSpec
from he_ha.vm.errors import DomainXmlError

FORMATS = {"RAW": "raw", "COW": "qcow2"}  # volume FORMAT -> <driver type=...> (§4.3)
HOOK_CHANNEL = "org.ovirt.hosted-engine-setup.0"
CHANNEL_DIR = "/var/lib/libvirt/qemu/channels"
LIFECYCLE = ("on_poweroff", "on_reboot", "on_crash")
LIBVIRT_NET_PREFIX = "vdsm-"

# sysinfo entry name -> (placeholder, HostFacts field, what it is, for messages)  (§4.2)
SYSINFO = {
    "product": ("OS-NAME:", "os_name", "OS name"),
    "version": ("OS-VERSION:", "os_version", "OS version"),
    "serial": ("HOST-SERIAL:", "serial", "host UUID"),
}
LEASE_PATH, LEASE_OFFSET = "LEASE-PATH:", "LEASE-OFFSET:"
KNOWN_PLACEHOLDERS = frozenset([placeholder for placeholder, _, _ in SYSINFO.values()] + [LEASE_PATH, LEASE_OFFSET])
# Every placeholder of the table has this shape; a MAC address or an upper-case UUID does not.
_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+:")
_FREE_TEXT = frozenset({"metadata", "description", "title"})  # not read by libvirt as settings
_UUID = r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
_VDSM_DISK_PATHS = (  # what the engine (or a VDSM-built XML) names a volume by (§4.2, §1.3, §1.8)
    re.compile(rf"/rhev/data-center/(?:[^/]+/)+?(?P<sd>{_UUID})/images/(?P<img>{_UUID})/(?P<vol>{_UUID})"),
    re.compile(rf"/run/vdsm/storage/(?P<sd>{_UUID})/(?P<img>{_UUID})/(?P<vol>{_UUID})"),
)


class EngineXmlError(DomainXmlError):
    """The engine's XML cannot be made startable; the message names what and where."""


class PlaceholderError(EngineXmlError):
    """A placeholder (or a volume standing in one) would reach libvirt unresolved."""

    def __init__(self, placeholder: str, where: str, reason: str, source: str = "engine XML"):
        self.placeholder, self.where, self.reason = placeholder, where, reason
        super().__init__(f"{source}: {where}: {placeholder!r} {reason}")


class UnresolvedVolume(PlaceholderError):
    """A disk or lease names a volume the lookup cannot find (or use)."""

    def __init__(self, placeholder: str, where: str, error: VolumeLookupError, source: str = "engine XML"):
        self.sd, self.image, self.volume, self.tried = error.sd, error.image, error.volume, error.tried
        super().__init__(placeholder, where, f"cannot be resolved: {error}", source)


class VolumeLookupError(Exception):
    """Raised by a ``VolumeLookup``: the volume is not there or not usable."""

    def __init__(self, sd: str, image: str, volume: str, reason: str, tried: Iterable[Path] = ()):
        self.sd, self.image, self.volume, self.reason, self.tried = sd, image, volume, reason, tuple(tried)
        super().__init__(
            f"volume {volume} of image {image} in storage domain {sd}: {reason}; "
            f"tried: {', '.join(map(str, self.tried)) or 'nothing'}"
        )


@dataclass(frozen=True)
class PreparedVolume:
    """What VDSM's ``Image.prepare`` reports of a leaf volume, as he-ha finds it (§1.8)."""

    sd: str
    image: str
    volume: str
    path: Path
    disk_type: str  # libvirt's <disk type=...>: "file" or "block"
    format: str  # the volume metadata's FORMAT: RAW or COW
    lease_path: Path | None = None
    lease_offset: int | None = None
    lease_problem: str | None = None  # why there is no lease, for the error naming it

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"volume format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.disk_type not in ("file", "block"):
            raise ValueError(f"disk type must be file or block, got {self.disk_type!r}")

    @property
    def driver_type(self) -> str:
        return FORMATS[self.format]


# (storage domain, image, volume) -> the volume; raises VolumeLookupError
VolumeLookup = Callable[[str, str, str], PreparedVolume]


@dataclass(frozen=True)
class HostFacts:
    """What VDSM puts into sysinfo (§4.2); None: unknown, a placeholder needing it is refused."""

    os_name: str | None
    os_version: str | None
    serial: str | None  # the host UUID


@dataclass(frozen=True)
class ResolveContext:
    host: HostFacts
    sd_uuid: str  # hosted-engine.conf sdUUID: the only lockspace he-ha joins (§4.5)
    volumes: VolumeLookup
    hosted_engine_hook: bool = True  # apply the before_vm_start hook's changes (§4.6)


@dataclass(frozen=True)
class ResolvedEngineXml:
    xml: str  # exactly what goes to libvirt
    leases: tuple[LeaseSpec, ...]  # every <lease> libvirt will acquire, in document order
    volume_leases: tuple[LeaseSpec, ...]  # those that are a disk's volume lease (the HE disk's)
    networks: frozenset[str]  # libvirt networks the domain names (vdsm-<net>): they must exist
    bridges: frozenset[str]  # host bridges its interfaces attach to
    volumes: tuple[PreparedVolume, ...]  # the volume behind each rewritten disk
    changes: tuple[str, ...]  # one line per change, for the log

    @property
    def lease(self) -> LeaseSpec | None:
        """The engine's own lease: the first volume lease (the HE disk's), or None."""
        return self.volume_leases[0] if self.volume_leases else None


def resolve_engine_xml(xml: str, context: ResolveContext, source: str = "engine XML") -> ResolvedEngineXml:
    """The engine's domain XML as VDSM and the hosted-engine hook would pass it to libvirt."""
    root = _parse(xml, source)
    changes: list[str] = []
    for element in root.findall("on_reboot"):  # §4.1 3.1: VDSM drops it; the hook adds its own
        root.remove(element)
        changes.append(f"removed <on_reboot>{(element.text or '').strip()}</on_reboot>")
    _replace_sysinfo(root, context.host, changes, source)
    drives = _update_disks(root, context.volumes, changes, source)
    matched = _update_leases(root, drives, changes, source)
    if context.hosted_engine_hook:
        _apply_hook(root, changes, source)
    _refuse_placeholders(root, source)
    leases, volume_leases = [], []
    for element in root.iterfind("devices/lease"):
        lease = _lease_spec(element, source)
        if lease.lockspace.lower() != context.sd_uuid.lower():
            raise EngineXmlError(
                f"{source}: lease {lease.key} is in lockspace {lease.lockspace}; he-ha joins only "
                f"the hosted-engine storage domain's lockspace {context.sd_uuid} (sdUUID)"
            )
        leases.append(lease)
        if id(element) in matched:
            volume_leases.append(lease)
    networks, bridges = _networks(root)
    return ResolvedEngineXml(
        ET.tostring(root, encoding="unicode"),
        tuple(leases),
        tuple(volume_leases),
        networks,
        bridges,
        tuple(drives),
        tuple(changes),
    )


def vdsm_network_xml(network: str, bridged: bool = True) -> str:
    """The libvirt network VDSM defines (with autostart) for ``vdsm-<net>`` (§4.2, graphics):
    bridged, or passthrough to the interface for a bridgeless network."""
    if not network.startswith(LIBVIRT_NET_PREFIX) or network == LIBVIRT_NET_PREFIX:
        raise ValueError(f"not a VDSM libvirt network name (vdsm-<net>): {network!r}")
    net = network[len(LIBVIRT_NET_PREFIX) :]
    root = ET.Element("network")
    ET.SubElement(root, "name").text = network
    if bridged:
        ET.SubElement(root, "forward", mode="bridge")
        ET.SubElement(root, "bridge", name=net)
    else:
        ET.SubElement(ET.SubElement(root, "forward", mode="passthrough"), "interface", dev=net)
    return ET.tostring(root, encoding="unicode")


# ---- the resolver's steps -------------------------------------------------------------------


def _parse(xml: str, source: str) -> ET.Element:
    try:
        for _, (prefix, uri) in ET.iterparse(StringIO(xml), events=("start-ns",)):
            if prefix and not re.fullmatch(r"ns\d+", prefix):  # keep the document's prefixes on output
                ET.register_namespace(prefix, uri)
        root = ET.fromstring(xml, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    except ET.ParseError as exc:
        raise EngineXmlError(f"{source}: not well-formed XML: {exc}") from None
    if root.tag != "domain":
        raise EngineXmlError(f"{source}: root element is <{root.tag}>, expected <domain>")
    return root


def _replace_sysinfo(root: ET.Element, host: HostFacts, changes: list[str], source: str) -> None:
    for system in root.iterfind("sysinfo/system"):
        for entry in system.iterfind("entry"):
            name = entry.get("name", "")
            if name not in SYSINFO:
                continue
            placeholder, field, what = SYSINFO[name]
            text = entry.text or ""
            if not text.startswith(placeholder):
                continue
            value = getattr(host, field)
            if value is None:
                raise PlaceholderError(
                    placeholder, f"sysinfo entry {name!r}", f"cannot be resolved: this host's {what} is unknown", source
                )
            entry.text = value
            changes.append(f"sysinfo {name}: {text!r} -> {value!r}")


def _disk_ids(root: ET.Element) -> dict[str, tuple[str, str, str]]:
    """target dev -> (SD, IMG, VOL) from the ovirt-vm disk metadata (§4.2)."""
    found: dict[str, tuple[str, str, str]] = {}
    for device in root.iterfind(f"metadata/{{{OVIRT_VM_NS}}}vm/{{{OVIRT_VM_NS}}}device"):
        name = device.get("name")
        if device.get("devtype") != "disk" or not name:
            continue
        sd, image, volume = (
            (device.findtext(f"{{{OVIRT_VM_NS}}}{key}") or "").strip() for key in ("domainID", "imageID", "volumeID")
        )
        if sd and image and volume:
            found[name] = (sd, image, volume)
    return found


def _source_attr(source: ET.Element | None) -> tuple[str, str] | None:
    if source is None:
        return None
    for attr in ("file", "dev", "name"):
        value = source.get(attr)
        if value:
            return attr, value
    return None


def _update_disks(root: ET.Element, lookup: VolumeLookup, changes: list[str], source: str) -> list[PreparedVolume]:
    metadata = _disk_ids(root)
    drives = []
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        dev = target.get("dev", "") if target is not None else ""
        old = _source_attr(disk.find("source"))
        ids = metadata.get(dev) or _ids_from_path(old[1] if old else "")
        if ids is None:
            continue  # a plain path (the empty cdrom, a local image): VDSM prepares nothing for it
        where = f"disk {dev or '(no target)'}"
        try:
            info = lookup(*ids)
        except VolumeLookupError as exc:
            raise UnresolvedVolume(old[1] if old else "/".join(ids), where, exc, source) from None
        before = f"type={disk.get('type', '')} {f'{old[0]}={old[1]}' if old else '(no source)'}"
        _rewrite_disk(disk, info)
        changes.append(
            f"{where}: {before} -> type={info.disk_type} "
            f"{'file' if info.disk_type == 'file' else 'dev'}={info.path} driver type={info.driver_type}"
        )
        drives.append(info)
    return drives


def _ids_from_path(path: str) -> tuple[str, str, str] | None:
    for pattern in _VDSM_DISK_PATHS:
        match = pattern.fullmatch(path)
        if match:
            return match["sd"], match["img"], match["vol"]
    return None


def _rewrite_disk(disk: ET.Element, info: PreparedVolume) -> None:
    """§4.3 steps 1-4."""
    if disk.get("device") != "floppy":
        disk.set("type", info.disk_type)
    source = disk.find("source")
    if source is None:
        source = ET.SubElement(disk, "source")
    if source.get("protocol"):  # a network disk becomes a path: its protocol and hosts go
        del source.attrib["protocol"]
        for host in source.findall("host"):
            source.remove(host)
    for attr in ("file", "dev", "name"):
        source.attrib.pop(attr, None)
    source.set("file" if info.disk_type == "file" else "dev", str(info.path))
    driver = disk.find("driver")
    if driver is None:
        driver = ET.SubElement(disk, "driver", name="qemu")
    driver.set("type", info.driver_type)
    if source.find("seclabel") is None:
        ET.SubElement(source, "seclabel", {"type": "none", "relabel": "no", "model": "dac"})


def _update_leases(root: ET.Element, drives: list[PreparedVolume], changes: list[str], source: str) -> set[int]:
    """§4.2 lease placeholders; returns the ids of the <lease> elements matched to a disk."""
    by_leaf: dict[tuple[str, str], PreparedVolume] = {}
    for info in drives:  # VDSM takes the first drive whose leaf is the lease's volume
        by_leaf.setdefault((info.sd, info.volume), info)
    matched = set()
    for element in root.iterfind("devices/lease"):
        key = (element.findtext("key") or "").strip()
        lockspace = (element.findtext("lockspace") or "").strip()
        target = element.find("target")
        if target is None:
            target = ET.SubElement(element, "target")
        where = f"lease {key or '(no key)'} in lockspace {lockspace or '(none)'}"
        wanted = [
            (attr, prefix)
            for attr, prefix in (("path", LEASE_PATH), ("offset", LEASE_OFFSET))
            if target.get(attr) is None or target.get(attr, "").startswith(prefix)
        ]
        placeholders = [value for attr, _ in wanted if (value := target.get(attr))]
        drive = by_leaf.get((lockspace, key))
        if drive is None:
            if placeholders:  # VDSM would leave it for a VM lease; unresolved it must not reach libvirt
                raise PlaceholderError(
                    placeholders[0],
                    where,
                    "cannot be resolved: no disk of the domain is "
                    f"volume {key or '?'} of storage domain {lockspace or '?'} (§4.2)",
                    source,
                )
            continue
        matched.add(id(element))
        for value in placeholders:
            named = value.split(":", 1)[1]
            if named and named != f"{key}:{lockspace}":
                raise PlaceholderError(value, where, f"names {named}, not the lease's {key}:{lockspace}", source)
        if not wanted:
            continue
        if drive.lease_path is None or drive.lease_offset is None:
            raise PlaceholderError(
                placeholders[0] if placeholders else f"{LEASE_PATH}{key}:{lockspace}",
                where,
                f"cannot be resolved: volume {key} of image {drive.image} has no volume lease: "
                f"{drive.lease_problem or 'the lookup reported none'}",
                source,
            )
        values = {"path": str(drive.lease_path), "offset": str(drive.lease_offset)}
        for attr, _ in wanted:
            changes.append(f"{where}: {attr} {target.get(attr)!r} -> {values[attr]!r}")
            target.set(attr, values[attr])
    return matched


def _apply_hook(root: ET.Element, changes: list[str], source: str) -> None:
    """§4.6. The hook appends; an element already there (the engine writes none of them) would
    leave two, of which libvirt reads the first, so the old one is replaced instead."""
    for tag in LIFECYCLE:
        for old in root.findall(tag):
            root.remove(old)
            if (old.text or "").strip() != "destroy":
                changes.append(f"replaced <{tag}>{(old.text or '').strip()}</{tag}>")
        ET.SubElement(root, tag).text = "destroy"
    changes.append("hosted-engine hook: on_poweroff, on_reboot, on_crash = destroy")
    uuid = (root.findtext("uuid") or "").strip()
    if not uuid:
        raise EngineXmlError(f"{source}: no <uuid>: the hosted-engine hook's channel is named after it")
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    names = {
        channel_target.get("name")
        for channel in devices.iterfind("channel")
        if (channel_target := channel.find("target")) is not None
    }
    if HOOK_CHANNEL in names:  # a second port of the same name would make QEMU refuse to start
        return
    channel = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(channel, "target", type="virtio", name=HOOK_CHANNEL)
    ET.SubElement(channel, "source", mode="bind", path=f"{CHANNEL_DIR}/{uuid}.{HOOK_CHANNEL}")
    changes.append(f"hosted-engine hook: channel {HOOK_CHANNEL}")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _refuse_placeholders(root: ET.Element, source: str) -> None:
    def check(value: str | None, where: str) -> None:
        text = (value or "").strip()
        match = _PLACEHOLDER.match(text)
        if match is None:
            return
        token = match.group(0)
        if token in KNOWN_PLACEHOLDERS:
            raise PlaceholderError(
                text, where, "is not where VDSM resolves it (spec §4.2); it must not reach libvirt", source
            )
        raise PlaceholderError(
            text,
            where,
            f"is a placeholder VDSM does not know ({token}; "
            f"known: {', '.join(sorted(KNOWN_PLACEHOLDERS))}); it must not reach libvirt",
            source,
        )

    def walk(element: ET.Element, path: str) -> None:
        for name, value in element.attrib.items():
            check(value, f"{path}/@{_local(name)}")
        check(element.text, path)
        for child in element:
            if isinstance(child.tag, str) and _local(child.tag) not in _FREE_TEXT:
                named = f"[@name={child.get('name')!r}]" if child.get("name") else ""
                walk(child, f"{path}/{_local(child.tag)}{named}")

    walk(root, "domain")


def _lease_spec(element: ET.Element, source: str) -> LeaseSpec:
    target = element.find("target")
    if target is None:  # _update_leases gives every <lease> one; a caller that skipped it gets this
        key = (element.findtext("key") or "").strip() or "(no key)"
        raise EngineXmlError(f"{source}: lease {key} has no <target>: its path and offset are unknown")
    path, offset = target.get("path", ""), target.get("offset", "0")
    if not offset.isdigit():
        raise EngineXmlError(f"{source}: lease offset is not a decimal number: {offset!r}")
    return LeaseSpec(
        lockspace=(element.findtext("lockspace") or "").strip(),
        key=(element.findtext("key") or "").strip(),
        path=Path(path),
        offset=int(offset),
    )


def _networks(root: ET.Element) -> tuple[frozenset[str], frozenset[str]]:
    networks = {
        network
        for listen in root.iterfind("devices/graphics/listen")
        if listen.get("type") == "network" and (network := listen.get("network"))
    }
    bridges: set[str] = set()
    for interface in root.iterfind("devices/interface"):
        for element in interface.iterfind("source"):
            network, bridge = element.get("network"), element.get("bridge")
            if interface.get("type") == "network" and network:
                networks.add(network)
            if interface.get("type") == "bridge" and bridge:
                bridges.add(bridge)
    return frozenset(networks), frozenset(bridges)


# ---- lookups and host facts from a host's files (I/O) ---------------------------------------


def _format_of(values: dict[str, str], sd: str, image: str, volume: str, where: Path) -> str:
    if "NONE" in values:
        raise VolumeLookupError(sd, image, volume, f"its metadata at {where} is cleared (NONE)", [where])
    if values.get("LEGALITY") == "ILLEGAL":  # Image.prepare refuses an ILLEGAL leaf (§1.8)
        raise VolumeLookupError(sd, image, volume, f"its metadata at {where} says LEGALITY=ILLEGAL", [where])
    fmt = values.get("FORMAT", "")
    if fmt not in FORMATS:
        raise VolumeLookupError(
            sd, image, volume, f"its metadata at {where} has FORMAT={fmt!r}, not RAW or COW", [where]
        )
    return fmt


def file_volume_lookup(roots: VdsmRoots, domain_type: str = "nfs", storage: str | None = None) -> VolumeLookup:
    """Volumes of file domains (§1.4): ``<mount>/<SD>/images/<IMG>/<VOL>`` with ``<VOL>.meta``
    (FORMAT) and ``<VOL>.lease`` (offset 0). The mount of ``storage`` (as VDSM names it, §1.2)
    is tried first, then every directory of the mount root (``glusterSD/`` for glusterfs)."""
    parent = roots.mount_root / GLUSTER_DIR if domain_type.lower() == "glusterfs" else roots.mount_root

    def mounts() -> list[str]:
        first = [mount_dir_name(storage)] if storage else []
        try:
            listed = sorted(entry.name for entry in parent.iterdir())
        except OSError:
            listed = []
        return first + [name for name in listed if name not in (GLUSTER_DIR, BLOCK_DIR, *first)]

    def lookup(sd: str, image: str, volume: str) -> PreparedVolume:
        tried = []
        for mount in mounts():
            path = parent / mount / sd / "images" / image / volume
            tried.append(path)
            if not path.is_file():
                continue
            meta = path.with_name(volume + META_SUFFIX)
            try:
                values = parse_volume_metadata(meta.read_bytes())
            except OSError as exc:
                raise VolumeLookupError(sd, image, volume, f"its metadata cannot be read: {exc}", [meta]) from None
            fmt = _format_of(values, sd, image, volume, meta)
            lease = path.with_name(f"{volume}.lease")
            if lease.is_file():
                return PreparedVolume(sd, image, volume, path, "file", fmt, lease, 0)
            return PreparedVolume(sd, image, volume, path, "file", fmt, lease_problem=f"no lease file {lease}")
        raise VolumeLookupError(sd, image, volume, "not found in any mounted file domain", tried)

    return lookup


def block_volume_lookup(roots: VdsmRoots, sd_uuid: str, tags: BlockDomainTags) -> VolumeLookup:
    """Volumes of a block domain (§1.7): the active LV ``/dev/<SD>/<VOL>`` whose ``IU_`` tag is
    the image; FORMAT from its ``MD_<slot>`` block of the ``metadata`` LV; its lease in
    ``/dev/<SD>/leases`` at (100 + slot) × the domain's ALIGNMENT (1 MiB when not recorded)."""
    version, alignment = tags.version, tags.alignment

    def lookup(sd: str, image: str, volume: str) -> PreparedVolume:
        vg = roots.dev_root / sd
        path = vg / volume
        if sd != sd_uuid:
            raise VolumeLookupError(sd, image, volume, f"only storage domain {sd_uuid} is known here", [path])
        if not path.exists():
            raise VolumeLookupError(sd, image, volume, "no such logical volume (not active?)", [path])
        lv_tags = tags.lv_tags.get(volume)
        if lv_tags is None:
            raise VolumeLookupError(sd, image, volume, f"no tags for this LV in {tags.source}", [path])
        images = tag_values(lv_tags, IMAGE_TAG)
        if images != [image]:
            raise VolumeLookupError(sd, image, volume, f"the LV's image tags are {images} ({tags.source})", [path])
        slot = metadata_slot(lv_tags)
        if slot is None:
            raise VolumeLookupError(sd, image, volume, f"no single {SLOT_TAG}<slot> tag in {tags.source}", [path])
        meta = vg / METADATA_LV
        offset = metadata_slot_offset(version, slot)
        try:
            with meta.open("rb") as file:
                file.seek(offset)
                block = file.read(METADATA_SIZE)
        except OSError as exc:
            raise VolumeLookupError(sd, image, volume, f"the metadata LV cannot be read: {exc}", [meta]) from None
        fmt = _format_of(parse_volume_metadata(block), sd, image, volume, Path(f"{meta}@{offset}"))
        leases = vg / LEASES_LV
        if not leases.exists():
            return PreparedVolume(sd, image, volume, path, "block", fmt, lease_problem=f"no leases LV {leases}")
        return PreparedVolume(sd, image, volume, path, "block", fmt, leases, volume_lease_offset(slot, alignment))

    return lookup


def rpm_version_release(path: str) -> tuple[str, str] | None:
    """Version and release of the package owning ``path`` (``rpm -qf``); None if it cannot tell."""
    try:
        done = subprocess.run(
            ["rpm", "-qf", "--queryformat", "%{VERSION}\t%{RELEASE}", path],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    version, tab, release = done.stdout.partition("\t")
    return (version, release) if done.returncode == 0 and tab else None


def read_host_facts(
    root: Path = Path("/"),
    *,
    arch: str = "x86_64",
    rpm_query: Callable[[str], tuple[str, str] | None] = rpm_version_release,
) -> HostFacts:
    """This host's sysinfo values as VDSM derives them (§4.2). ``root`` stands for ``/``;
    ``rpm_query`` gets the logical path (``/etc/redhat-release``)."""
    etc = root / "etc"
    if any(etc.glob("ovirt-node-*-release")):
        name = "oVirt Node"
    else:
        name = next(
            (
                label
                for file, label in (
                    ("rhev-hypervisor-release", "RHEV Hypervisor"),
                    ("fedora-release", "Fedora"),
                    ("redhat-release", "RHEL"),
                    ("debian_version", "Debian"),
                )
                if (etc / file).exists()
            ),
            "unknown",
        )
    version = release = ""
    if name in ("RHEL", "Fedora", "oVirt Node"):
        version, release = rpm_query("/etc/redhat-release") or ("", "")
        if name == "oVirt Node":  # next-generation Node: the image's VERSION_ID
            version = _key_values(etc / "os-release").get("VERSION_ID", "")
    elif name == "RHEV Hypervisor":  # the old Node (inferred: VERSION=/RELEASE= lines)
        values = _key_values(etc / "default/version")
        version, release = values.get("VERSION", ""), values.get("RELEASE", "")
    elif name == "Debian":
        version = _read(etc / "debian_version").strip()
    return HostFacts(name, f"{version}-{release}", _host_uuid(root, arch))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _key_values(path: Path) -> dict[str, str]:
    values = {}
    for line in _read(path).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("\"'")
    return values


def _host_uuid(root: Path, arch: str) -> str | None:
    lines = _read(root / "etc/vdsm/vdsm.id").splitlines()
    if lines and lines[0].strip():
        return lines[0].strip()
    if arch.startswith("ppc"):
        found = _read(root / "proc/device-tree/system-id").strip("\0\n ").replace(",", "")
    else:
        found = _read(root / "sys/class/dmi/id/product_uuid").strip().lower()
    return found or None
