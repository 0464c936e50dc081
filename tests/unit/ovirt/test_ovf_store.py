"""The OVF_STORE pieces on small files: volume metadata and the engine's description JSON
(spec ovirt-host-integration.md §1.6, §3.1, §3.3), Java dates, the store preference (§8), and
the archive reader on archives Python's tarfile writes in every dialect, damaged ones named."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from he_ha.config import load_hosted_engine_conf
from he_ha.ovirt.domain_meta import BlockDomainTags, load_block_tags, metadata_slot_offset, parse_volume_metadata
from he_ha.ovirt.layout import VdsmRoots
from he_ha.ovirt.ovf_store import (
    OvfStore,
    OvfStoreError,
    StoreScan,
    find_block_stores,
    find_domain_stores,
    ovf_store_description,
    parse_java_date,
    preference_order,
    read_member,
    read_vm_ovf,
)

VMID = "eccb9cb6-affd-4806-8200-708370581227"
SD = "ce880525-a44b-4248-8b63-d9e11b2f123a"


def description(updated: bool, when: str = "Mon Jan 08 10:15:30 UTC 2024", size: int | None = 10240) -> str:
    values: dict[str, object] = {
        "Updated": updated,
        "Last Updated": when,
        "Storage Domains": [{"uuid": SD}],
        "Disk Description": "OVF_STORE",
    }
    if updated and size is not None:
        values["Size"] = size
    return json.dumps(values, separators=(",", ":"))


def archive(members: dict[str, bytes], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1704708930
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def store_at(
    path: Path,
    data: bytes,
    *,
    volume_size: int = 1024 * 1024,
    updated: bool = True,
    size: int | None = None,
    when: str | None = "Mon Jan 08 10:15:30 UTC 2024",
    name: str = "v",
) -> OvfStore:
    if not path.exists():
        path.write_bytes(b"")
        path.chmod(0o600)
    with path.open("r+b") as f:
        f.truncate(volume_size)
        f.seek(0)
        f.write(data)
    return OvfStore(
        image="i",
        volume=name,
        path=path,
        metadata_source="test",
        updated=updated,
        last_updated=when,
        updated_at=parse_java_date(when),
        size=size,
        disktype="OVFS",
    )


# --- metadata and description ------------------------------------------------------------------


def test_volume_metadata_reader_follows_vdsm_rules() -> None:
    block = (
        b"CAP=134217728\nDESCRIPTION=" + description(True).encode() + b"\nDISKTYPE=OVFS\n"
        b" no equals sign\n  FORMAT =  RAW \nEOF\nAFTER=ignored\n"
    ).ljust(512, b"\0")
    values = parse_volume_metadata(block)
    assert values["DISKTYPE"] == "OVFS" and values["FORMAT"] == "RAW" and "AFTER" not in values
    assert ovf_store_description(values["DESCRIPTION"])["Size"] == 10240  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        '{"DiskAlias":"he_metadata","DiskDescription":"Hosted-Engine metadata disk"}',
        '{"Disk Description":"OVF_STORE"',
        'x{"Disk Description":"OVF_STORE"}',
        '{"Disk Description":"OVF_STORE",}',
        '{"Disk Description":"ovf_store"}',
        '["Disk Description"]',
    ],
)
def test_only_the_engine_json_marks_an_ovf_store(text: str | None) -> None:
    assert ovf_store_description(text) is None


def test_the_updated_flag_does_not_decide_the_match() -> None:
    assert ovf_store_description(description(False)) == {
        "Updated": False,
        "Last Updated": "Mon Jan 08 10:15:30 UTC 2024",
        "Storage Domains": [{"uuid": SD}],
        "Disk Description": "OVF_STORE",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon Jan 08 10:15:30 UTC 2024", dt.datetime(2024, 1, 8, 10, 15, 30, tzinfo=dt.UTC)),
        ("Tue Mar 05 09:00:00 CET 2024", dt.datetime(2024, 3, 5, 8, 0, 0, tzinfo=dt.UTC)),
        ("Sun Jul 07 12:00:00 EDT 2024", dt.datetime(2024, 7, 7, 16, 0, 0, tzinfo=dt.UTC)),
        ("Sun Jul 07 12:00:00 GMT+05:30 2024", dt.datetime(2024, 7, 7, 6, 30, 0, tzinfo=dt.UTC)),
        ("Sun Jul 07 12:00:00 IST 2024", dt.datetime(2024, 7, 7, 12, 0, 0, tzinfo=dt.UTC)),  # unknown: UTC
        ("2024-01-08T10:15:30Z", None),
        ("Mon Foo 08 10:15:30 UTC 2024", None),
        ("Mon Feb 30 10:15:30 UTC 2024", None),
        ("", None),
    ],
)
def test_java_dates(text: str, expected: dt.datetime | None) -> None:
    assert parse_java_date(text) == expected


def test_preference_updated_newest_first_then_those_being_updated(tmp_path: Path) -> None:
    def store(name: str, updated: bool, when: str | None) -> OvfStore:
        return OvfStore("i", name, tmp_path / name, "test", updated, when, parse_java_date(when), None, "OVFS")

    stores = [
        store("uploading", False, "Wed Jan 10 10:00:00 UTC 2024"),
        store("old", True, "Mon Jan 08 10:00:00 UTC 2024"),
        store("undated", True, None),
        store("new", True, "Tue Jan 09 10:00:00 UTC 2024"),
    ]
    assert [s.volume for s in preference_order(stores)] == ["new", "old", "undated", "uploading"]


# --- the archive -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reads_the_member_in_every_dialect(tmp_path: Path, fmt: int) -> None:
    ovf = b"<ovf/>" * 1000
    data = archive({"info.json": b"{}", f"{VMID}.ovf": ovf, "metadata.json": b"{}"}, fmt)
    assert len(data) % 10240 == 0
    assert read_member(store_at(tmp_path / "v", data), f"{VMID}.ovf") == ovf


def test_long_names_through_gnu_and_pax_headers(tmp_path: Path) -> None:
    name = "d" * 120 + ".ovf"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        data = archive({"info.json": b"{}", name: b"long"}, fmt)
        assert read_member(store_at(tmp_path / f"v{fmt}", data), name) == b"long"


def test_bytes_after_the_archive_are_stale(tmp_path: Path) -> None:
    """An older, longer archive lies beyond the new one: its members are never read."""
    old = archive({"info.json": b"{}", "pad.bin": b"x" * 30000, f"{VMID}.ovf": b"<old/>"})
    new = archive({"info.json": b"{}"})
    path = tmp_path / "v"
    store_at(path, old)
    for size in (len(new), None):  # Updated with Size, or no Size: the end-of-archive block ends it
        store = store_at(path, new, size=size)
        with pytest.raises(OvfStoreError, match=f"the archive has no member {VMID}.ovf"):
            read_member(store, f"{VMID}.ovf")


def test_a_size_larger_than_the_volume_is_named(tmp_path: Path) -> None:
    store = store_at(tmp_path / "v", archive({"a": b"1"}), volume_size=65536, size=10**9)
    with pytest.raises(OvfStoreError, match="says the archive has 1000000000 bytes; the volume has 65536"):
        read_member(store, "a")


def test_member_cut_by_size_is_named(tmp_path: Path) -> None:
    data = archive({"info.json": b"{}", f"{VMID}.ovf": b"y" * 5000})
    store = store_at(tmp_path / "v", data, size=2048)
    with pytest.raises(OvfStoreError, match="runs past the archive's end at byte 2048"):
        read_member(store, f"{VMID}.ovf")


def resealed(data: bytes) -> bytes:
    """The first header with its checksum recomputed (damage that a checksum does not catch)."""
    header = bytearray(data[:512])
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + data[512:]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: b"\x5a" * 4096 + d[4096:], "is not a ustar header"),
        (lambda d: d[:100] + b"9" + d[101:], "bad checksum"),
        (lambda d: resealed(d[:124] + b"zzzzzzzzzzz\0" + d[136:]), "size b'zzzzzzzzzzz\\\\x00' is not an octal number"),
    ],
)
def test_damaged_headers_are_named(tmp_path: Path, damage: Callable[[bytes], bytes], message: str) -> None:
    data = damage(archive({"info.json": b"{}", f"{VMID}.ovf": b"<ovf/>"}))
    store = store_at(tmp_path / "v", data, name="3ab9fff0")
    with pytest.raises(OvfStoreError, match=message) as caught:
        read_member(store, f"{VMID}.ovf")
    assert "OVF_STORE volume 3ab9fff0" in str(caught.value)


def test_empty_volume_and_missing_volume(tmp_path: Path) -> None:
    with pytest.raises(OvfStoreError, match="no member"):
        read_member(store_at(tmp_path / "zero", b""), "x.ovf")  # all zero: an empty archive
    gone = OvfStore("i", "gone", tmp_path / "gone", "test", True, None, None, None, "OVFS")
    with pytest.raises(OvfStoreError, match=r"OVF_STORE volume gone .*cannot read it: No such file"):
        read_member(gone, "x.ovf")


def test_read_vm_ovf_tries_the_next_store_and_reports_all_failures(tmp_path: Path) -> None:
    good = store_at(
        tmp_path / "good", archive({f"{VMID}.ovf": b"<good/>"}), when="Mon Jan 08 10:00:00 UTC 2024", name="good"
    )
    bad = store_at(tmp_path / "bad", b"\x01" * 8192, when="Tue Jan 09 10:00:00 UTC 2024", name="bad")
    found = read_vm_ovf(StoreScan("d", (good, bad)), VMID, lambda data: data)
    assert found.value == b"<good/>" and found.store.volume == "good"
    assert len(found.failures) == 1 and "OVF_STORE volume bad" in found.failures[0]
    with pytest.raises(OvfStoreError) as caught:
        read_vm_ovf(StoreScan("d", (bad,)), VMID, lambda data: data)
    assert "no usable" in str(caught.value) and "OVF_STORE volume bad" in str(caught.value)
    with pytest.raises(OvfStoreError, match="no OVF_STORE volume on d"):
        read_vm_ovf(StoreScan("d", ()), VMID, lambda data: data)


# --- block domains -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 5])
def test_block_stores_from_tags_and_metadata_slots(tmp_path: Path, version: int) -> None:
    lv_dir = tmp_path / SD
    lv_dir.mkdir()
    (lv_dir / "metadata").write_bytes(b"")
    with (lv_dir / "metadata").open("r+b") as f:
        f.truncate(2 * 1024 * 1024)
        for slot, text in ((6, description(True)), (7, '{"DiskAlias":"he_metadata"}')):
            f.seek(metadata_slot_offset(version, slot))
            f.write(f"DESCRIPTION={text}\nDISKTYPE=OVFS\nEOF\n".encode().ljust(512, b"\0"))
    tags_file = tmp_path / "tags.json"
    tags_file.write_text(
        json.dumps(
            {
                "vg": {"tags": ["RHAT_storage_domain", f"MDT_VERSION={version}"]},
                "lvs": {
                    "metadata": {"tags": []},
                    "ovfvol": {"tags": ["IU_ovfimg", "MD_6", "PU_x"]},
                    "mdvol": {"tags": ["IU_mdimg", "MD_7"]},
                },
            }
        )
    )
    tags = load_block_tags(tags_file)
    assert tags == BlockDomainTags(
        ("RHAT_storage_domain", f"MDT_VERSION={version}"),
        {"metadata": (), "ovfvol": ("IU_ovfimg", "MD_6", "PU_x"), "mdvol": ("IU_mdimg", "MD_7")},
        str(tags_file),
    )
    assert tags.version == version
    scan = find_block_stores(VdsmRoots(dev_root=tmp_path), SD, tags)
    assert [(s.image, s.volume, s.path, s.size) for s in scan.stores] == [
        ("ovfimg", "ovfvol", lv_dir / "ovfvol", 10240)
    ]
    assert scan.stores[0].metadata_source == f"{lv_dir / 'metadata'} slot 6"


def test_tags_file_problems_are_named_for_the_domain(tmp_path: Path) -> None:
    conf_path = tmp_path / "hosted-engine.conf"
    conf_path.write_text(
        f"vmid={VMID}\nhost_id=1\ndomainType=iscsi\nstorage=192.0.2.10\nsdUUID={SD}\ngateway=192.0.2.1\n"
    )
    conf, roots = load_hosted_engine_conf(conf_path), VdsmRoots(dev_root=tmp_path / "dev")
    with pytest.raises(OvfStoreError, match=f"block domain {SD}: cannot read the LV tags file"):
        find_domain_stores(conf, roots, conf_path, lv_tags=tmp_path / "missing.json")
    bad = tmp_path / "lvm" / f"{SD}.json"  # found by itself under the relocated root
    with pytest.raises(OvfStoreError, match=f"block domain {SD}: cannot read the LV tags file {bad}"):
        find_domain_stores(conf, roots, conf_path)  # missing: named (no lvs under a relocated root)
    bad.parent.mkdir()
    bad.write_text('{"vg": {"tags": []}, "lvs": {}}')
    with pytest.raises(OvfStoreError, match=f"block domain {SD}: {bad}: no domain version"):
        find_domain_stores(conf, roots, conf_path)
    bad.write_text("[]")
    with pytest.raises(OvfStoreError, match=f"block domain {SD}: {bad} is not an LV tags file"):
        find_domain_stores(conf, roots, conf_path)
