"""A block domain's LVM tags (he_ha/ovirt/lvm.py): the lvs JSON report parsed, what lvs's exit
code and stderr become, and where ``block_domain_tags`` takes the tags from. Real LVM is in
tests/integration/ovirt/test_lvm_tags.py; here a stand-in ``lvs`` script plays lvs's
contract (exit code, stdout, stderr) so every case is exact."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from he_ha.ovirt import lvm
from he_ha.ovirt.domain_meta import BlockDomainTags, DomainMetaError
from he_ha.ovirt.layout import VdsmRoots
from he_ha.ovirt.lvm import DEFAULT_DEVICES_FILTER, block_domain_tags, parse_lvs_report, read_lvm_tags

SD = "ce880525-a44b-4248-8b63-d9e11b2f123a"
VG_TAGS = "MDT_PV0=pv:3600&44&uuid:Ab0c,MDT_VERSION=5,RHAT_storage_domain"


def report(*rows: dict[str, object]) -> str:
    return json.dumps({"report": [{"lv": list(rows)}]})


def row(name: str, lv_tags: object = "", vg_tags: str = VG_TAGS) -> dict[str, object]:
    return {"vg_tags": vg_tags, "lv_name": name, "lv_tags": lv_tags}


def test_a_report_becomes_the_domains_tags() -> None:
    tags = parse_lvs_report(SD, report(row("metadata"), row("v", "IU_i,MD_4,PU_p")))
    assert tags == BlockDomainTags(
        ("MDT_PV0=pv:3600&44&uuid:Ab0c", "MDT_VERSION=5", "RHAT_storage_domain"),
        {"metadata": (), "v": ("IU_i", "MD_4", "PU_p")},
        f"VG {SD} (lvs)",
    )
    assert tags.metadata()["PV0"] == "pv:3600,uuid:Ab0c"  # the escape undone only when read
    # several report objects (as lvs may print) are one list of LVs
    two = json.dumps({"report": [{"lv": [row("metadata")]}, {"lv": [row("v", "IU_i")]}]})
    assert set(parse_lvs_report(SD, two).lv_tags) == {"metadata", "v"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not an lvs JSON report"),
        ("Volume group not found", "not an lvs JSON report"),
        ("[]", "not an lvs JSON report"),
        ('{"report": [{"vg": []}]}', "not an lvs JSON report"),
        (report({"lv_name": "v", "lv_tags": ""}), "not an lvs JSON report.*vg_tags"),
        (report(row("v", lv_tags=None)), "not an lvs JSON report.*lv_tags is None"),
        (report(), f"VG {SD} has no LVs: not a block storage domain"),
        ('{"report": []}', f"VG {SD} has no LVs"),
        (report(row("v", vg_tags="")), rf"VG {SD} \(lvs\): no domain version"),
        (report(row("v", vg_tags="RHAT_storage_domain,MDT_VERSION=x")), "no domain version"),
    ],
)
def test_odd_reports_are_named_errors(text: str, message: str) -> None:
    with pytest.raises(DomainMetaError, match=message):
        parse_lvs_report(SD, text)


def fake_lvs(directory: Path, *, stdout: str = "", stderr: str = "", code: int = 0) -> str:
    """An ``lvs`` that prints what it is given and records its arguments beside it."""
    script = directory / "lvs"
    (directory / "out").write_text(stdout)
    (directory / "err").write_text(stderr)
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {directory}/args\n'
        f"cat {directory}/out\ncat {directory}/err >&2\nexit {code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_the_lvs_command(tmp_path: Path) -> None:
    lvs = fake_lvs(tmp_path, stdout=report(row("v", "IU_i")), stderr="  WARNING: something odd\n")
    tags = read_lvm_tags(SD, lvs=lvs)  # warnings with exit 0: ignored
    assert tags.lv_tags == {"v": ("IU_i",)}
    args = (tmp_path / "args").read_text().splitlines()
    assert args == [
        "--reportformat",
        "json",
        "--readonly",
        "-o",
        "vg_tags,lv_name,lv_tags",
        "--config",
        'devices { use_devicesfile=0 filter=["a|^/dev/mapper/|", "r|.*|"] }',
        SD,
    ]
    assert DEFAULT_DEVICES_FILTER == '"a|^/dev/mapper/|", "r|.*|"'
    read_lvm_tags(SD, lvs=lvs, devices_filter='"a|^/dev/loop7$|", "r|.*|"')
    assert 'filter=["a|^/dev/loop7$|", "r|.*|"]' in (tmp_path / "args").read_text()


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ('  Volume group "x" not found\n  Cannot process volume group x\n', 'Volume group "x" not found'),
        ("  WARNING: a\n  Device /dev/sdb has no label\n  WARNING: b\n\n", "Device /dev/sdb has no label"),
        ("  WARNING: only a warning\n", "WARNING: only a warning"),
        ("", "no message"),
    ],
)
def test_a_failing_lvs_is_named_with_its_exit_code_and_reason(tmp_path: Path, stderr: str, reason: str) -> None:
    lvs = fake_lvs(tmp_path, stdout=report(), stderr=stderr, code=5)
    with pytest.raises(DomainMetaError) as failed:
        read_lvm_tags(SD, lvs=lvs)
    assert str(failed.value) == f"lvs of VG {SD} failed (exit 5): {reason}"


def test_lvs_that_cannot_run_or_hangs(tmp_path: Path) -> None:
    with pytest.raises(DomainMetaError, match=f"cannot read the LVM tags of VG {SD}: {tmp_path}/none not found"):
        read_lvm_tags(SD, lvs=str(tmp_path / "none"))
    (tmp_path / "plain").write_text("not executable")
    with pytest.raises(DomainMetaError, match=f"cannot run {tmp_path}/plain for VG {SD}: Permission denied"):
        read_lvm_tags(SD, lvs=str(tmp_path / "plain"))
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    with pytest.raises(DomainMetaError, match=f"lvs of VG {SD}: no answer within 0.2 s"):
        read_lvm_tags(SD, lvs=str(hang), timeout=0.2)


def test_block_domain_tags_come_from_lvs_on_a_host_and_the_side_file_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_lvs = parse_lvs_report(SD, report(row("v", "IU_i")))
    asked: list[str] = []

    def read_lvm_tags(sd: str) -> BlockDomainTags:
        asked.append(sd)
        return from_lvs

    monkeypatch.setattr(lvm, "read_lvm_tags", read_lvm_tags)
    assert block_domain_tags(VdsmRoots(), SD) is from_lvs and asked == [SD]  # a real host (/dev)

    relocated = VdsmRoots.from_mount_root(tmp_path / "rhev/data-center/mnt")
    side = tmp_path / "lvm" / f"{SD}.json"
    with pytest.raises(DomainMetaError, match=f"cannot read the LV tags file {side}"):
        block_domain_tags(relocated, SD)  # no side file: named, and lvs is not asked
    side.parent.mkdir()
    side.write_text(json.dumps({"vg": {"tags": ["MDT_VERSION=4"]}, "lvs": {"v": {"tags": ["IU_i"]}}}))
    assert block_domain_tags(relocated, SD) == BlockDomainTags(("MDT_VERSION=4",), {"v": ("IU_i",)}, str(side))
    with pytest.raises(DomainMetaError, match="no storage domain UUID"):
        block_domain_tags(VdsmRoots(), "")
    assert asked == [SD]
