"""What a VDSM storage domain records about its volumes: the volume metadata block and, on block
domains, the LVM tags and where each volume's metadata slot is (spec ovirt-host-integration.md
§1.5-§1.7). One spelling of these facts for every reader (he_ha.ovirt.ovf_store,
he_ha.ovirt.engine_xml) and for the devcluster that writes them (he_ha.devcluster.deployed).

- ``parse_volume_metadata``: a volume's ``KEY=VALUE`` block (§1.6), bytes or text;
- ``metadata_slot_offset``: where slot ``MD_<n>`` is in the ``metadata`` LV (§1.7), and
  ``volume_lease_offset``: where the volume's lease is in the ``leases`` LV;
- ``BlockDomainTags``: a block domain's VG tags (``MDT_`` domain metadata, ``&<code>&``
  escapes, §1.7) and LV tags (``IU_<IMG>``, ``MD_<slot>``, ``PU_<parent>``);
  ``load_block_tags`` reads them from the side file the devcluster keeps instead of LVM
  (``<R>/lvm/<SD>.json``, ``lv_tags_file``); on a host he_ha.ovirt.lvm reads them with ``lvs``.

Pure but for ``load_block_tags``, which reads one local file. Errors are ``DomainMetaError``
naming the file and what is wrong; each reader says it in its own error type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from he_ha.ovirt.layout import VdsmRoots

MIB = 1024 * 1024
METADATA_SIZE = 512  # one volume's metadata block (§1.6); NUL-padded in a block domain's slot
META_SUFFIX = ".meta"  # file domains: <VOL>.meta next to the volume (§1.4)
METADATA_LV, LEASES_LV = "metadata", "leases"  # block domains' special LVs (§1.7)
BLOCK_V5_BASE, BLOCK_V5_SLOT = MIB, 8 * 1024  # metadata LV slots, domain version 5 (§1.7)
BLOCK_V4_SLOT = METADATA_SIZE  # domain version 4 and before: slot x 512
RESERVED_LEASES = 100  # volume leases start at slot 100 of the leases LV (§1.7)
DEFAULT_ALIGNMENT = MIB  # a domain without ALIGNMENT (before version 5)
DOMAIN_TAG, IMAGE_TAG, SLOT_TAG, PARENT_TAG = "MDT_", "IU_", "MD_", "PU_"  # VG tag / LV tag prefixes (§1.7)
_TAG_SAFE = re.compile(r"[a-zA-Z0-9_+.\-/=!:#]")  # what VDSM leaves unescaped in an MDT_ tag
_TAG_ESCAPE = re.compile(r"&(\d+)&")


class DomainMetaError(Exception):
    """A storage domain's metadata cannot be read or makes no sense; the message names the file."""


# --- the volume metadata block -----------------------------------------------------------------


def parse_volume_metadata(data: bytes | str) -> dict[str, str]:
    """A volume's metadata block (§1.6), as VDSM reads it: trailing NULs stripped, up to the
    ``EOF`` line, lines without ``=`` ignored, white space around keys and values stripped.
    Bytes are decoded as UTF-8 (a bad byte becomes U+FFFD). Never raises."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    values: dict[str, str] = {}
    for line in text.rstrip("\0").splitlines():
        if line.startswith("EOF"):
            break
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


# --- block domains: where things are -----------------------------------------------------------


def metadata_slot_offset(version: int, slot: int) -> int:
    """Where slot ``slot`` is in the ``metadata`` LV of a domain of ``version`` (§1.7):
    1 MiB + slot x 8 KiB from version 5 on, slot x 512 before."""
    return BLOCK_V5_BASE + slot * BLOCK_V5_SLOT if version >= 5 else slot * BLOCK_V4_SLOT


def volume_lease_offset(slot: int, alignment: int) -> int:
    """Where the lease of the volume in metadata slot ``slot`` is in the ``leases`` LV (§1.7)."""
    return (RESERVED_LEASES + slot) * alignment


def lv_tags_file(roots: VdsmRoots, sd_uuid: str | None) -> Path | None:
    """The block domain's LV tags side file, ``<R>/lvm/<SD>.json`` under a relocated root (the
    devcluster's stand-in for LVM); None on a real host (``/dev``) or without a domain UUID.
    Whether it exists is the caller's question."""
    if roots.dev_root == Path("/dev") or not sd_uuid:
        return None
    return roots.dev_root.parent / "lvm" / f"{sd_uuid}.json"


# --- block domains: the LVM tags ---------------------------------------------------------------


def escape_tag(text: str) -> str:
    """VDSM's escaping of a domain metadata line in an LVM tag: ``&<decimal code>&`` (§1.7)."""
    return "".join(char if _TAG_SAFE.fullmatch(char) else f"&{ord(char)}&" for char in text)


def unescape_tag(text: str) -> str:
    """``escape_tag`` undone."""
    return _TAG_ESCAPE.sub(lambda match: chr(int(match[1])), text)


def tag_values(tags: Iterable[str], prefix: str) -> list[str]:
    """What follows ``prefix`` in each tag that has it, in order (``IU_`` -> the images...)."""
    return [tag[len(prefix) :] for tag in tags if tag.startswith(prefix)]


def metadata_slot(tags: Iterable[str]) -> int | None:
    """An LV's metadata slot: its one ``MD_<n>`` tag; None when it has none, several, or one
    that is not a number."""
    slots = tag_values(tags, SLOT_TAG)
    return int(slots[0]) if len(slots) == 1 and slots[0].isdigit() else None


@dataclass(frozen=True)
class BlockDomainTags:
    """The LVM tags of one block domain (§1.7): the VG's (``MDT_`` domain metadata among them)
    and each LV's. Checked when made: the domain version (``MDT_VERSION``) must be there and
    a number, ``MDT_ALIGNMENT`` a positive number when there (DomainMetaError otherwise)."""

    vg_tags: tuple[str, ...]
    lv_tags: Mapping[str, tuple[str, ...]]  # LV name -> its tags (IU_<IMG>, MD_<slot>, PU_<parent>)
    source: str  # where they were read, for messages

    def __post_init__(self) -> None:
        values = self.metadata()
        version = values.get("VERSION")
        if version is None or not version.isdigit():
            raise DomainMetaError(f"{self.source}: no domain version (VG tag MDT_VERSION=<n>)")
        alignment = values.get("ALIGNMENT")
        if alignment is not None and not (alignment.isdigit() and int(alignment) > 0):
            raise DomainMetaError(f"{self.source}: VG tag MDT_ALIGNMENT={alignment!r} is not a positive number")

    def metadata(self) -> dict[str, str]:
        """The domain metadata (§1.5) from the ``MDT_KEY=VALUE`` tags, escapes undone."""
        values = {}
        for tag in self.vg_tags:
            if tag.startswith(DOMAIN_TAG):
                key, _, value = unescape_tag(tag[len(DOMAIN_TAG) :]).partition("=")
                values[key] = value
        return values

    @property
    def version(self) -> int:
        """The domain version: where the metadata slots are."""
        return int(self.metadata()["VERSION"])

    @property
    def alignment(self) -> int:
        """The domain's lease alignment in bytes (1 MiB when not recorded)."""
        return int(self.metadata().get("ALIGNMENT") or DEFAULT_ALIGNMENT)


def load_block_tags(path: Path) -> BlockDomainTags:
    """A block domain's tags from a side file ``{"vg": {"tags": [...]}, "lvs": {"<LV>":
    {"tags": [...]}, ...}}`` (other keys ignored). DomainMetaError naming the file when it
    cannot be read, is not such a file, or lacks the domain version."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DomainMetaError(f"cannot read the LV tags file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        vg_tags = _tag_list(data["vg"]["tags"])
        lvs = data["lvs"]
        if not isinstance(lvs, dict):
            raise TypeError("'lvs' is not an object")
        lv_tags = {str(name): _tag_list(lv.get("tags", [])) for name, lv in lvs.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DomainMetaError(f"{path} is not an LV tags file: {exc!r}") from None
    return BlockDomainTags(vg_tags, lv_tags, str(path))


def _tag_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise TypeError(f"tags must be a list of strings, not {value!r}")
    return tuple(value)
