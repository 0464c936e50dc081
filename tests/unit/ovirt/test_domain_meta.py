"""What a storage domain records about its volumes, read as VDSM reads it (spec
ovirt-host-integration.md §1.5-§1.7): the volume metadata block, a block domain's slot and
lease offsets, its LVM tags and the side file the devcluster keeps them in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from he_ha.ovirt.domain_meta import (
    BlockDomainTags,
    DomainMetaError,
    escape_tag,
    load_block_tags,
    lv_tags_file,
    metadata_slot,
    metadata_slot_offset,
    parse_volume_metadata,
    tag_values,
    unescape_tag,
    volume_lease_offset,
)
from he_ha.ovirt.layout import VdsmRoots

SD = "ce880525-a44b-4248-8b63-d9e11b2f123a"
MIB = 1024 * 1024


def test_volume_metadata_as_vdsm_reads_it() -> None:
    text = "B=2\nA = 1\nnoequals\nEOF\nC=3\n\0\0"
    assert parse_volume_metadata(text) == {"B": "2", "A": "1"}  # order kept, EOF ends it
    assert parse_volume_metadata(text.encode()) == parse_volume_metadata(text)  # bytes or text
    assert parse_volume_metadata(b"DESCRIPTION=a=b\r\nFORMAT=\xffRAW\n" + bytes(500)) == {
        "DESCRIPTION": "a=b",
        "FORMAT": "\ufffdRAW",
    }  # the first '=' splits; a bad byte is replaced
    assert parse_volume_metadata(bytes(512)) == {}


def test_block_domain_offsets() -> None:
    assert metadata_slot_offset(5, 1) == 1024 * 1024 + 8192
    assert metadata_slot_offset(5, 5) == 1024 * 1024 + 5 * 8192
    assert metadata_slot_offset(4, 4) == 2048
    assert volume_lease_offset(5, MIB) == 110100480  # the spec's example (§1.7)


def test_the_side_file_is_under_a_relocated_root_only(tmp_path: Path) -> None:
    assert (
        lv_tags_file(VdsmRoots.from_mount_root(tmp_path / "rhev/data-center/mnt"), SD)
        == tmp_path / "lvm" / f"{SD}.json"
    )
    assert lv_tags_file(VdsmRoots(), SD) is None  # a real host: LVM has the tags
    assert lv_tags_file(VdsmRoots(dev_root=tmp_path / "dev"), None) is None


def test_tags() -> None:
    line = "PV0=pv:3600,uuid:Ab0c-De,pestart:0"
    assert escape_tag(line) == "PV0=pv:3600&44&uuid:Ab0c-De&44&pestart:0"
    assert unescape_tag(escape_tag(line)) == line and unescape_tag("hosted&95&storage") == "hosted_storage"
    tags = ("IU_img", "MD_5", "PU_blank")
    assert (tag_values(tags, "IU_"), metadata_slot(tags)) == (["img"], 5)
    assert [metadata_slot(t) for t in ((), ("MD_5", "MD_6"), ("MD_x",))] == [None, None, None]


def test_block_domain_tags() -> None:
    tags = BlockDomainTags(("RHAT_storage_domain", "MDT_VERSION=5", "MDT_DESCRIPTION=hosted&95&storage"), {}, "t")
    assert (tags.version, tags.alignment, tags.metadata()["DESCRIPTION"]) == (5, MIB, "hosted_storage")
    assert BlockDomainTags(("MDT_VERSION=5", "MDT_ALIGNMENT=2097152"), {}, "t").alignment == 2 * MIB
    with pytest.raises(DomainMetaError, match=r"^t: no domain version \(VG tag MDT_VERSION=<n>\)"):
        BlockDomainTags(("MDT_VERSION=",), {}, "t")
    with pytest.raises(DomainMetaError, match="MDT_ALIGNMENT='0' is not a positive number"):
        BlockDomainTags(("MDT_VERSION=5", "MDT_ALIGNMENT=0"), {}, "t")


def test_side_file(tmp_path: Path) -> None:
    side = tmp_path / f"{SD}.json"
    side.write_text(
        json.dumps(
            {
                "vg": {"name": SD, "tags": ["MDT_VERSION=4"]},
                "lvs": {"metadata": {"size": 1}, "v": {"tags": ["IU_i", "MD_4"]}},
            }
        )
    )
    assert load_block_tags(side) == BlockDomainTags(
        ("MDT_VERSION=4",), {"metadata": (), "v": ("IU_i", "MD_4")}, str(side)
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read the LV tags file {path}: No such file or directory"),
        ("{", "{path} is not an LV tags file"),
        ("[]", "{path} is not an LV tags file"),
        ('{"vg": {"tags": "MDT_VERSION=5"}, "lvs": {}}', "{path} is not an LV tags file"),
        ('{"vg": {"tags": ["MDT_VERSION=5"]}, "lvs": {"v": {"tags": [5]}}}', "{path} is not an LV tags file"),
        ('{"vg": {"tags": ["MDT_VERSION=5"]}, "lvs": []}', "{path} is not an LV tags file"),
        ('{"vg": {"tags": []}, "lvs": {}}', "{path}: no domain version"),
    ],
)
def test_side_file_problems_are_named(tmp_path: Path, content: str | None, problem: str) -> None:
    side = tmp_path / f"{SD}.json"
    if content is not None:
        side.write_text(content)
    with pytest.raises(DomainMetaError) as caught:
        load_block_tags(side)
    assert str(caught.value).startswith(problem.format(path=side))
