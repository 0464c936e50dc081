"""A block storage domain's LVM tags, read with ``lvs`` (spec ovirt-host-integration.md §1.7).

A block domain (iSCSI, FC) is the VG named after the domain's UUID: its VG tags carry the
domain metadata (``MDT_*``), each LV's tags its image, metadata slot and parent (``IU_``,
``MD_``, ``PU_``). The OVF_STORE reader and the engine XML's volume lookup need them;
``block_domain_tags`` gets them where they are:

- on a real host (``VdsmRoots.dev_root`` is ``/dev``): ``read_lvm_tags`` runs
  ``lvs --reportformat json --readonly -o vg_tags,lv_name,lv_tags --config <config> <SD>``;
- under a relocated root (the devcluster, tests): the side file ``<R>/lvm/<SD>.json`` that
  stands in for LVM (he_ha.ovirt.domain_meta's ``load_block_tags``).

Blocking (a subprocess with a deadline, ``LVS_TIMEOUT``): callers run it off the event loop.
Errors are ``DomainMetaError`` naming the VG (or the side file) and why.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from he_ha.ovirt.domain_meta import BlockDomainTags, DomainMetaError, load_block_tags, lv_tags_file
from he_ha.ovirt.layout import VdsmRoots

# Below the supervisor's default deadline for these paths (2 x storage_timeout = 10 s), so a
# hung lvs (e.g. a multipath device queueing I/O without paths) is reported as such and killed.
LVS_TIMEOUT = 8.0
# An oVirt host's lvm.conf hides shared storage from the host's own LVM (a filter accepting
# only the local disks, or on EL9 the devices file /etc/lvm/devices/system.devices). VDSM
# overrides both in its own lvm calls with a filter accepting the multipath devices
# (/dev/mapper/<wwid>) and rejecting everything else; he-ha does the same, accepting any
# /dev/mapper device since it does not track which ones VDSM connected.
DEFAULT_DEVICES_FILTER = '"a|^/dev/mapper/|", "r|.*|"'
LVS_FIELDS = "vg_tags,lv_name,lv_tags"
# lvs ends a failed VG with this line; the one before it says why
_GENERIC_TRAILER = "Cannot process volume group"


def read_lvm_tags(
    sd_uuid: str, *, devices_filter: str = DEFAULT_DEVICES_FILTER, timeout: float = LVS_TIMEOUT, lvs: str = "lvs"
) -> BlockDomainTags:
    """The tags of VG ``sd_uuid`` and of each of its LVs, read with ``lvs`` (read-only: no
    LVM lock is taken, so nothing here waits for or blocks VDSM's own LVM commands).
    ``devices_filter``: the entries of lvm's ``devices/filter`` list. DomainMetaError naming
    the VG when lvs is missing, fails (its exit code and the reason from its stderr; warnings
    of a successful run are ignored), does not answer within ``timeout`` seconds, or reports
    something that is not the tags of a VG with LVs."""
    config = f"devices {{ use_devicesfile=0 filter=[{devices_filter}] }}"
    command = [lvs, "--reportformat", "json", "--readonly", "-o", LVS_FIELDS, "--config", config, sd_uuid]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise DomainMetaError(
            f"cannot read the LVM tags of VG {sd_uuid}: {lvs} not found (is lvm2 installed?)"
        ) from None
    except subprocess.TimeoutExpired:
        raise DomainMetaError(f"lvs of VG {sd_uuid}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise DomainMetaError(f"cannot run {lvs} for VG {sd_uuid}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise DomainMetaError(f"lvs of VG {sd_uuid} failed (exit {done.returncode}): {_reason(done.stderr)}")
    return parse_lvs_report(sd_uuid, done.stdout)


def parse_lvs_report(sd_uuid: str, text: str) -> BlockDomainTags:
    """``lvs --reportformat json -o vg_tags,lv_name,lv_tags`` output for VG ``sd_uuid`` as
    tags (comma-separated in each field; an empty field: no tags). DomainMetaError when it is
    not such a report or lists no LV (the domain's special LVs are always there)."""
    try:
        rows = [row for report in json.loads(text)["report"] for row in report["lv"]]
        lv_tags = {_field(row, "lv_name"): _tags(_field(row, "lv_tags")) for row in rows}
        vg_tags = _tags(_field(rows[0], "vg_tags")) if rows else ()
    except (ValueError, KeyError, TypeError) as exc:
        raise DomainMetaError(f"lvs of VG {sd_uuid}: not an lvs JSON report ({exc!r}): {text[:200]!r}") from None
    if not rows:
        raise DomainMetaError(f"VG {sd_uuid} has no LVs: not a block storage domain")
    return BlockDomainTags(vg_tags, lv_tags, f"VG {sd_uuid} (lvs)")


def block_domain_tags(roots: VdsmRoots, sd_uuid: str) -> BlockDomainTags:
    """Block domain ``sd_uuid``'s tags: with lvs on a real host, from the side file
    ``<R>/lvm/<SD>.json`` under a relocated root (DomainMetaError naming the file when it is
    missing or bad). Blocking."""
    if not sd_uuid:
        raise DomainMetaError("a block domain's LVM tags: no storage domain UUID (sdUUID)")
    side = lv_tags_file(roots, sd_uuid)
    return read_lvm_tags(sd_uuid) if side is None else load_block_tags(side)


def _field(row: Any, name: str) -> str:
    value = row[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is {value!r}, not a string")
    return value


def _tags(text: str) -> tuple[str, ...]:
    return tuple(tag for tag in text.split(",") if tag)


def _reason(stderr: str) -> str:
    """The last line of lvs's stderr that says what went wrong: not a warning, not the
    generic trailer; any last line when there is no such line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(("WARNING:", _GENERIC_TRAILER))]
    return (meaningful or lines or ["no message"])[-1]
