"""The OVF_STORE volumes of the hosted-engine storage domain: find them, choose one, read ``<vmid>.ovf``.

The engine keeps two OVF_STORE disks on every data domain (spec ovirt-host-integration.md
§3.1). Each is a 128 MiB raw volume holding, at offset 0, a tar archive (ustar, as Apache
commons-compress writes it, padded to a multiple of 10240 bytes; §3.2) whose members include
``<vmid>.ovf``. The rest of the volume is never cleared, so the bytes after the archive are
stale. A volume is an OVF_STORE when the ``DESCRIPTION`` of its metadata is the engine's JSON
with ``"Disk Description":"OVF_STORE"`` (§3.3); ``"Updated"`` is false while the engine uploads
a new archive and true with ``"Size"`` (the archive's bytes) and ``"Last Updated"`` (Java's
``Date.toString()``, e.g. ``Mon Jan 08 10:15:30 UTC 2024``) once it is done.

Where the metadata is:

- file domains (§1.4, §1.6): ``<domain dir>/images/<IMG>/<VOL>.meta`` next to the data
  ``<VOL>``; images being deleted (``_remove_me_*``) are skipped;
- block domains (§1.7): the ``metadata`` logical volume of VG ``<SD>``, in the slot named by
  the volume LV's tag ``MD_<slot>`` (version 5: 1 MiB + slot x 8 KiB; version 4: slot x 512),
  the data in the LV ``<SD>/<VOL>``. The tags (a ``BlockDomainTags``) are read with ``lvs``
  on a host, from the devcluster's side file ``R/lvm/<SD>.json`` under a relocated root
  (he_ha.ovirt.lvm), or from a tags file the caller names (he_ha.ovirt.domain_meta, which
  also parses the metadata blocks).

Which store (§8; the original took whichever its scan found last, even one being uploaded):
the ``Updated`` stores, newest ``Last Updated`` first, then the others; the next one is tried
when reading or converting the first fails. Every failure names the volume and the reason.

Reads go to shared storage and block (a hung NFS server hangs them): callers run
``find_*_stores`` and ``read_vm_ovf`` in a thread with a deadline (he_ha.offloop), never on the
event loop. Volumes are read with O_DIRECT, so a host sees what the engine's host wrote rather
than its own page cache (buffered only where the file system refuses O_DIRECT).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import mmap
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from he_ha.config import HostedEngineConf
from he_ha.ovirt.domain_meta import (
    IMAGE_TAG,
    META_SUFFIX,
    METADATA_LV,
    METADATA_SIZE,
    SLOT_TAG,
    BlockDomainTags,
    DomainMetaError,
    load_block_tags,
    metadata_slot,
    metadata_slot_offset,
    parse_volume_metadata,
    tag_values,
)
from he_ha.ovirt.layout import BLOCK_DOMAINS, VdsmRoots, VolumeNotFound, resolve_volume
from he_ha.ovirt.lvm import block_domain_tags
from he_ha.ovirt.ovf import OvfConversion, OvfError, convert_ovf

T = TypeVar("T")

OVF_STORE = "OVF_STORE"  # the engine's "Disk Description" of an OVF_STORE disk
REMOVED_IMAGE_PREFIX = "_remove_me_"  # VDSM renames an image being deleted (§1.4)
TAR_BLOCK = 512
READ_ALIGNMENT = 4096  # O_DIRECT: good for 512- and 4096-byte sectors
READ_CHUNK = 64 * 1024  # an archive is read in chunks of this much, from offset 0, as far as needed

# Java's Date.toString(): "EEE MMM dd HH:mm:ss zzz yyyy"
_JAVA_DATE = re.compile(r"(?:\w{3}) (\w{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\S+) (\d{4})")
_MONTHS = {
    name: n
    for n, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
# Zone names Java prints; an engine prints one zone for both stores, so others (ambiguous ones
# like IST) are compared as if UTC.
_ZONES = {
    "UTC": 0,
    "GMT": 0,
    "UT": 0,
    "Z": 0,
    "WET": 0,
    "WEST": 1,
    "BST": 1,
    "CET": 1,
    "CEST": 2,
    "EET": 2,
    "EEST": 3,
    "MSK": 3,
    "JST": 9,
    "KST": 9,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
}
_GMT_OFFSET = re.compile(r"GMT([+-])(\d{1,2}):?(\d{2})?")


class OvfStoreError(Exception):
    """An OVF_STORE cannot be found or read; the message names the volume (or domain) and why."""


# --- the volume description ------------------------------------------------------------------


def ovf_store_description(description: str | None) -> dict[str, Any] | None:
    """The engine's JSON when ``description`` marks an OVF_STORE (the original's match, §3.3);
    None otherwise."""
    if not description or "Disk Description" not in description:
        return None
    text = description.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or parsed.get("Disk Description") != OVF_STORE:
        return None
    return parsed


def parse_java_date(text: str | None) -> dt.datetime | None:
    """``Mon Jan 08 10:15:30 UTC 2024`` (Java ``Date.toString()``) as an aware datetime; a zone
    name not known here is taken as UTC; None when the text is not such a date."""
    match = _JAVA_DATE.fullmatch(text.strip()) if text else None
    if match is None or match[1] not in _MONTHS:
        return None
    month, day, hour, minute, second, zone, year = match.groups()
    offset = _zone_offset(zone)
    try:
        return dt.datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=dt.timezone(offset)
        )
    except ValueError:
        return None


def _zone_offset(zone: str) -> dt.timedelta:
    if zone in _ZONES:
        return dt.timedelta(hours=_ZONES[zone])
    match = _GMT_OFFSET.fullmatch(zone)
    if match:
        sign = -1 if match[1] == "-" else 1
        return sign * dt.timedelta(hours=int(match[2]), minutes=int(match[3] or 0))
    return dt.timedelta(0)


# --- the stores ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OvfStore:
    """One OVF_STORE volume and what its description says."""

    image: str
    volume: str
    path: Path  # the volume's data: the file, or the logical volume
    metadata_source: str  # where the description was read, for messages
    updated: bool  # "Updated": false while the engine uploads
    last_updated: str | None  # "Last Updated" as written
    updated_at: dt.datetime | None  # ... parsed; None when missing or not a Java date
    size: int | None  # "Size": the archive's bytes (present once Updated)
    disktype: str | None  # DISKTYPE (OVFS on current engines)

    @property
    def label(self) -> str:
        return f"OVF_STORE volume {self.volume} (image {self.image}, {self.path})"

    @property
    def state(self) -> str:
        when = self.last_updated or "never"
        return f"updated {when}" if self.updated else f"being updated (Updated false; last complete {when})"


@dataclass(frozen=True)
class StoreScan:
    """The OVF_STORE volumes found on a domain, and the volumes whose metadata could not be read."""

    where: str  # the domain, for messages
    stores: tuple[OvfStore, ...]
    skipped: tuple[str, ...] = ()  # "<volume>: <why>"


def store_from_metadata(
    metadata: Mapping[str, str], image: str, volume: str, path: Path, source: str
) -> OvfStore | None:
    """An OvfStore when the metadata's DESCRIPTION marks one; None otherwise."""
    description = ovf_store_description(metadata.get("DESCRIPTION"))
    if description is None:
        return None
    size = description.get("Size")
    last = description.get("Last Updated")
    return OvfStore(
        image=image,
        volume=volume,
        path=path,
        metadata_source=source,
        updated=description.get("Updated") is True,
        last_updated=last if isinstance(last, str) else None,
        updated_at=parse_java_date(last) if isinstance(last, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None,
        disktype=metadata.get("DISKTYPE"),
    )


def find_file_stores(domain_dir: Path) -> StoreScan:
    """The OVF_STORE volumes of a file domain (``<domain dir>/images/<IMG>/<VOL>.meta``).
    Blocking. OvfStoreError when ``images/`` cannot be listed."""
    images = domain_dir / "images"
    try:
        image_dirs = sorted(entry for entry in images.iterdir() if entry.is_dir())
    except OSError as exc:
        raise OvfStoreError(f"storage domain {domain_dir}: cannot list {images}: {exc.strerror or exc}") from None
    stores, skipped = [], []
    for image_dir in image_dirs:
        if image_dir.name.startswith(REMOVED_IMAGE_PREFIX):
            continue
        try:
            metas = sorted(image_dir.glob("*" + META_SUFFIX))
        except OSError as exc:
            skipped.append(f"{image_dir}: {exc.strerror or exc}")
            continue
        for meta in metas:
            volume = meta.name[: -len(META_SUFFIX)]
            try:
                metadata = parse_volume_metadata(_read_at(meta, 0, METADATA_SIZE))
            except OvfStoreError as exc:
                skipped.append(str(exc))
                continue
            store = store_from_metadata(metadata, image_dir.name, volume, image_dir / volume, str(meta))
            if store is not None:
                stores.append(store)
    return StoreScan(str(domain_dir), tuple(stores), tuple(skipped))


def find_block_stores(roots: VdsmRoots, sd_uuid: str, tags: BlockDomainTags) -> StoreScan:
    """The OVF_STORE volumes of block domain ``sd_uuid`` (its LVs in ``<dev root>/<SD>``):
    every LV with an ``MD_<slot>`` tag, its metadata read from that slot of the ``metadata``
    LV. Blocking."""
    lv_dir, version = roots.dev_root / sd_uuid, tags.version
    metadata_lv = lv_dir / METADATA_LV
    stores, skipped = [], []
    for name, lv_tags in sorted(tags.lv_tags.items()):
        if not tag_values(lv_tags, SLOT_TAG):
            continue  # a special LV (ids, leases, ...): no volume metadata
        slot, images = metadata_slot(lv_tags), tag_values(lv_tags, IMAGE_TAG)
        if slot is None or not images:
            skipped.append(f"{name}: tags {list(lv_tags)} name no metadata slot and image")
            continue
        source = f"{metadata_lv} slot {slot}"
        try:
            block = _read_at(metadata_lv, metadata_slot_offset(version, slot), METADATA_SIZE)
        except OvfStoreError as exc:
            skipped.append(f"{name}: {exc}")
            continue
        store = store_from_metadata(parse_volume_metadata(block), images[0], name, lv_dir / name, source)
        if store is not None:
            stores.append(store)
    return StoreScan(f"block domain {sd_uuid} ({lv_dir})", tuple(stores), tuple(skipped))


def preference_order(stores: Sequence[OvfStore]) -> list[OvfStore]:
    """The order to try stores in (§8): Updated ones, newest Last Updated first (an unreadable
    date last), then those being updated, the same way; ties by volume UUID."""

    def newest_first(store: OvfStore) -> tuple[bool, float, str]:
        stamp = store.updated_at.timestamp() if store.updated_at is not None else float("-inf")
        return (not store.updated, -stamp, store.volume)

    return sorted(stores, key=newest_first)


# --- reading the archive ----------------------------------------------------------------------


def read_member(store: OvfStore, name: str) -> bytes:
    """Member ``name`` of the archive at offset 0 of the store. Reads only as far as needed;
    with a known ``Size``, nothing beyond it (what follows is stale). Blocking; OvfStoreError
    naming the volume and the reason."""
    try:
        with _VolumeReader(store.path) as reader:
            limit = reader.size
            if store.size is not None:
                if store.size > reader.size:
                    raise _Bad(f"its description says the archive has {store.size} bytes; the volume has {reader.size}")
                limit = -(-store.size // TAR_BLOCK) * TAR_BLOCK
            for member, offset, size in _tar_members(reader, limit):
                if member == name:
                    if offset + size > limit:
                        raise _Bad(
                            f"member {name} ({size} bytes at byte {offset}) runs past the archive's end at byte {limit}"
                        )
                    data = reader.read(offset, size)
                    if len(data) != size:
                        raise _Bad(f"member {name} is cut short at the end of the volume")
                    return data
            raise _Bad(f"the archive has no member {name}")
    except _Bad as exc:
        raise OvfStoreError(f"{store.label}, {store.state}: {exc}") from None
    except OSError as exc:
        raise OvfStoreError(f"{store.label}: cannot read it: {exc.strerror or exc}") from None


class _Bad(Exception):
    """What is wrong with one store's content (turned into an OvfStoreError naming it)."""


def _tar_members(reader: _VolumeReader, limit: int) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, size) of each regular file in a ustar/GNU/pax archive from offset 0,
    until the end-of-archive block; _Bad for anything that is not such an archive."""
    offset, long_name = 0, None
    while True:
        if offset + TAR_BLOCK > limit:
            raise _Bad(f"the archive has no end-of-archive block within its {limit} bytes")
        header = reader.read(offset, TAR_BLOCK)
        if len(header) < TAR_BLOCK:
            raise _Bad(f"the volume ends inside the tar header at byte {offset}")
        if header == bytes(TAR_BLOCK):
            return
        where = f"the tar header at byte {offset}"
        if header[257:262] != b"ustar":
            raise _Bad(f"{where} is not a ustar header (a volume without an archive, or one overwritten)")
        stored = _octal(header[148:156], f"{where}: checksum")
        unsigned = sum(header[:148]) + 32 * 8 + sum(header[156:])
        signed = sum(b - 256 if b > 127 else b for b in header[:148] + header[156:]) + 32 * 8
        if stored not in (unsigned, signed):
            raise _Bad(f"{where} has a bad checksum (the archive is damaged or half written)")
        size = _size(header[124:136], f"{where}: size")
        kind = header[156:157]
        data_at = offset + TAR_BLOCK
        name = header[:100].split(b"\0", 1)[0]
        if header[257:263] == b"ustar\0" and header[345] != 0:
            name = header[345:500].split(b"\0", 1)[0] + b"/" + name
        if kind in (b"L", b"x"):  # GNU long name / pax extended header: the next member's name
            payload = reader.read(data_at, size)
            long_name = payload.split(b"\0", 1)[0] if kind == b"L" else _pax_path(payload, long_name)
        else:
            if kind in (b"0", b"\0", b"7"):
                text = (long_name or name).decode("utf-8", "replace")
                yield (text[2:] if text.startswith("./") else text), data_at, size
            long_name = None
        offset = data_at + -(-size // TAR_BLOCK) * TAR_BLOCK


def _octal(field_bytes: bytes, what: str) -> int:
    text = field_bytes.split(b"\0", 1)[0].strip(b" ")
    if not text or not all(48 <= b <= 55 for b in text):
        raise _Bad(f"{what} {field_bytes!r} is not an octal number")
    return int(text, 8)


def _size(field_bytes: bytes, what: str) -> int:
    if field_bytes[0] & 0x80:  # base-256, for sizes beyond 8 GiB
        return int.from_bytes(field_bytes[1:], "big")
    return _octal(field_bytes, what)


def _pax_path(payload: bytes, current: bytes | None) -> bytes | None:
    """``path`` of pax records ``<len> <key>=<value>\\n``."""
    at = 0
    while at < len(payload):
        space = payload.find(b" ", at)
        if space < 0 or not payload[at:space].isdigit():
            break
        length = int(payload[at:space])
        key, _, value = payload[space + 1 : at + length].rstrip(b"\n").partition(b"=")
        if key == b"path":
            current = value
        at += max(length, 1)
    return current


class _VolumeReader:
    """A volume read from offset 0 onward in aligned chunks, O_DIRECT (buffered where the file
    system refuses it), keeping what was read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.lseek(self.fd, 0, os.SEEK_END)  # a block device's st_size is 0
        self.data = bytearray()
        self.at_end = False

    def __enter__(self) -> _VolumeReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; fewer only at the end of the volume."""
        end = min(offset + length, self.size)
        while len(self.data) < end and not self.at_end:
            want = max(READ_CHUNK, -(-(end - len(self.data)) // READ_ALIGNMENT) * READ_ALIGNMENT)
            chunk = _pread(self.fd, len(self.data), want)
            self.data += chunk
            self.at_end = len(chunk) < want
        return bytes(self.data[offset:end])


def _pread(fd: int, offset: int, length: int) -> bytes:
    """One aligned read into a page-aligned buffer (as O_DIRECT needs)."""
    with mmap.mmap(-1, length) as buf:
        done = 0
        while done < length:
            with memoryview(buf) as view:
                count = os.preadv(fd, [view[done:length]], offset + done)
            if count == 0:
                break
            done += count
            if count % READ_ALIGNMENT:
                break  # an unaligned tail: the end of the file
        return bytes(buf[:done])


def _read_at(path: Path, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` (one aligned O_DIRECT read around them)."""
    start = offset - offset % READ_ALIGNMENT
    span = -(-(offset + length - start) // READ_ALIGNMENT) * READ_ALIGNMENT
    try:
        with _VolumeReader(path) as reader:
            data = _pread(reader.fd, start, span)
    except OSError as exc:
        raise OvfStoreError(f"cannot read {path} at byte {offset}: {exc.strerror or exc}") from None
    return data[offset - start : offset - start + length]


# --- choosing and reading ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoreRead(Generic[T]):
    """What was read from which store, and the stores that failed before it."""

    store: OvfStore
    value: T
    failures: tuple[str, ...] = field(default=())  # one message per store tried before, in order


def read_vm_ovf(scan: StoreScan, vm_id: str, accept: Callable[[bytes], T]) -> StoreRead[T]:
    """``<vm_id>.ovf`` from the best store that yields it, passed through ``accept`` (which
    raises OvfError or OvfStoreError for content it cannot use: then the next store is tried).
    OvfStoreError listing every store and its reason when none does. Blocking."""
    if not scan.stores:
        skipped = f"; unreadable metadata: {'; '.join(scan.skipped)}" if scan.skipped else ""
        raise OvfStoreError(
            f"no OVF_STORE volume on {scan.where} (no volume description with "
            f'"Disk Description":"{OVF_STORE}"){skipped}'
        )
    failures: list[str] = []
    member = f"{vm_id}.ovf"
    for store in preference_order(scan.stores):
        try:
            value = accept(read_member(store, member))
        except OvfStoreError as exc:
            failures.append(str(exc))
            continue
        except OvfError as exc:
            failures.append(f"{store.label}, {store.state}: {member}: {exc}")
            continue
        return StoreRead(store, value, tuple(failures))
    raise OvfStoreError(
        f"no usable {member} in the {len(scan.stores)} OVF_STORE volume(s) of {scan.where}: " + " | ".join(failures)
    )


def read_vm_conversion(scan: StoreScan, vm_id: str) -> StoreRead[OvfConversion]:
    """The converted definition of VM ``vm_id`` from the best store whose OVF converts."""
    return read_vm_ovf(scan, vm_id, lambda data: convert_ovf(data, expected_vm_id=vm_id))


# --- where the domain is ---------------------------------------------------------------------


def find_domain_stores(
    conf: HostedEngineConf, roots: VdsmRoots, source: Path, *, lv_tags: Path | None = None
) -> StoreScan:
    """The OVF_STORE volumes of hosted-engine.conf's storage domain (read from ``source``).
    File domains: the domain directory is where VDSM's layout puts the hosted-engine volumes
    (he_ha.ovirt.layout). Block domains by their LVM tags: from ``lv_tags`` (a tags file) when
    given, else read with ``lvs`` (``<R>/lvm/<SD>.json`` under a relocated root). Blocking;
    OvfStoreError naming what is missing; ConfigError (from the layout lookup) when
    hosted-engine.conf lacks a key needed to find the volumes."""
    sd = conf.sd_uuid
    if not sd:
        raise OvfStoreError(f"{source}: no sdUUID: the storage domain is unknown")
    if (conf.domain_type or "").lower() in BLOCK_DOMAINS:
        try:
            tags = load_block_tags(lv_tags) if lv_tags is not None else block_domain_tags(roots, sd)
        except DomainMetaError as exc:
            raise OvfStoreError(f"block domain {sd}: {exc}") from None
        return find_block_stores(roots, sd, tags)
    return find_file_stores(file_domain_dir(conf, roots, source))


def file_domain_dir(conf: HostedEngineConf, roots: VdsmRoots, source: Path) -> Path:
    """``<mount>/<storage>/<SD>``: the directory above ``images/`` of a hosted-engine volume
    found the way he_ha.ovirt.layout finds it (run links followed)."""
    tried = []
    for role in ("metadata", "lockspace", "conf"):
        if role == "conf" and not (conf.conf_image_uuid and conf.conf_volume_uuid):
            continue
        try:
            found = resolve_volume(conf, role, roots, source)
        except VolumeNotFound as exc:
            tried.append(str(exc))
            continue
        real = Path(os.path.realpath(found.path))
        if len(real.parents) > 3 and real.parents[1].name == "images" and real.parents[2].name == conf.sd_uuid:
            return real.parents[2]
        tried.append(f"the {role} volume {found.path} ({found.rule}) is not under <domain>/images/")
    raise OvfStoreError(f"storage domain {conf.sd_uuid}: cannot tell its directory: " + "; ".join(tried))
