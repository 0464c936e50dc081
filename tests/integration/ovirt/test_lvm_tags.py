"""A block domain's LVM tags read with the real ``lvs`` (he_ha/ovirt/lvm.py): a VG on a loop
device carrying the tags the devcluster's block deployment records in its side file
(he_ha/devcluster/deployed.py), so what he-ha reads on a host equals what it reads from the
side file elsewhere.

This machine has no device-mapper targets: LVs cannot be activated, so the PV, VG and LVs are
created with ``global{activation=0}`` (metadata only; ``-an -Zn``). ``read_lvm_tags`` needs no
such setting: lvs only reads metadata. Its filter is the one parameter the test sets, since
the loop device is no multipath device (the production filter accepts /dev/mapper/ only).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from he_ha.devcluster.deployed import Deployment, deployed_host
from he_ha.ovirt.domain_meta import DomainMetaError, load_block_tags
from he_ha.ovirt.lvm import read_lvm_tags

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices and LVM need root (CI runs as root)"),
]

MIB = 1024 * 1024
PV_BYTES = 200 * MIB  # sparse; every LV is one 4 MiB extent: the sizes do not matter for tags
COMMAND_TIMEOUT = 60


@dataclass(frozen=True)
class TaggedVg:
    """A VG named after the domain on ``device``, tagged as the side file ``side`` says."""

    sd: str
    device: str
    side: Path

    @property
    def devices_filter(self) -> str:
        return f'"a|^{self.device}$|", "r|.*|"'


def lvm_config(device: str) -> str:
    """For the commands making the VG: only this loop device, no activation (no device-mapper
    here), and no metadata backups or archives left in /etc/lvm."""
    return (
        f'devices{{filter=["a|^{device}$|","r|.*|"] use_devicesfile=0}} '
        "activation{udev_sync=0 udev_rules=0} global{activation=0} backup{backup=0 archive=0}"
    )


def run(*command: str) -> None:
    subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, timeout=COMMAND_TIMEOUT
    )


def tag_options(tags: tuple[str, ...]) -> list[str]:
    return [option for tag in tags for option in ("--addtag", tag)]


@pytest.fixture
def tagged_vg(tmp_path: Path) -> Iterator[TaggedVg]:
    """The devcluster's block deployment made real: PV on a loop device, VG ``<SD>`` and one
    LV per LV of the side file, with its tags. Removed and detached whatever happens."""
    d = Deployment.new(domain_type="iscsi")
    deployed_host(tmp_path / "host", d)
    side = tmp_path / "host" / "lvm" / f"{d.sd_uuid}.json"
    recorded = load_block_tags(side)
    image = tmp_path / "pv.img"
    with image.open("wb") as handle:
        handle.truncate(PV_BYTES)
    device = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True, timeout=COMMAND_TIMEOUT
    ).stdout.strip()
    config = lvm_config(device)
    try:
        try:
            run("pvcreate", "--config", config, device)
            run("vgcreate", "--config", config, "-s", "4m", *tag_options(recorded.vg_tags), d.sd_uuid, device)
            for name, tags in recorded.lv_tags.items():
                run("lvcreate", "--config", config, "-an", "-Zn", "-l", "1", "-n", name, *tag_options(tags), d.sd_uuid)
            yield TaggedVg(d.sd_uuid, device, side)
        finally:
            # check=False: a step that failed above leaves less to remove
            subprocess.run(
                ["vgremove", "-f", "--config", config, d.sd_uuid],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            subprocess.run(
                ["pvremove", "-f", "--config", config, device],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=COMMAND_TIMEOUT, check=True)


def test_lvs_gives_the_tags_the_side_file_records(tagged_vg: TaggedVg) -> None:
    read = read_lvm_tags(tagged_vg.sd, devices_filter=tagged_vg.devices_filter)
    recorded = load_block_tags(tagged_vg.side)
    # LVM keeps a tag set (reported sorted): compare sorted, which also catches a duplicate
    assert sorted(read.vg_tags) == sorted(recorded.vg_tags)
    assert {name: sorted(tags) for name, tags in read.lv_tags.items()} == {
        name: sorted(tags) for name, tags in recorded.lv_tags.items()
    }
    assert read.source == f"VG {tagged_vg.sd} (lvs)"
    # the escapes survive LVM: the domain metadata reads the same (PV0 has commas: &44&)
    assert any("&44&" in tag for tag in read.vg_tags)
    assert read.metadata() == recorded.metadata() and "," in read.metadata()["PV0"]
    assert (read.version, read.alignment) == (recorded.version, recorded.alignment) == (5, MIB)
    assert read.lv_tags["metadata"] == ()  # an LV without tags


def test_the_production_filter_does_not_see_a_loop_device(tagged_vg: TaggedVg) -> None:
    # only /dev/mapper/ devices (multipath) are looked at, as VDSM looks at them
    with pytest.raises(
        DomainMetaError,
        match=rf"lvs of VG {tagged_vg.sd} failed \(exit \d+\): "
        rf'Volume group "{tagged_vg.sd}" not found',
    ):
        read_lvm_tags(tagged_vg.sd)


def test_a_missing_vg_is_named() -> None:
    sd = str(uuid.uuid4())
    with pytest.raises(DomainMetaError, match=rf'lvs of VG {sd} failed \(exit \d+\): Volume group "{sd}" not found$'):
        read_lvm_tags(sd, devices_filter='"r|.*|"')


def test_lvs_missing_or_too_slow_is_a_clear_error(tagged_vg: TaggedVg) -> None:
    with pytest.raises(
        DomainMetaError, match=f"cannot read the LVM tags of VG {tagged_vg.sd}: /nonexistent/lvs not found"
    ):
        read_lvm_tags(tagged_vg.sd, devices_filter=tagged_vg.devices_filter, lvs="/nonexistent/lvs")
    with pytest.raises(DomainMetaError, match=f"lvs of VG {tagged_vg.sd}: no answer within 0.001 s"):
        read_lvm_tags(tagged_vg.sd, devices_filter=tagged_vg.devices_filter, timeout=0.001)


def test_a_vg_without_lvs_is_no_block_domain(tagged_vg: TaggedVg) -> None:
    config = lvm_config(tagged_vg.device)
    for name in load_block_tags(tagged_vg.side).lv_tags:
        run("lvremove", "-f", "--config", config, f"{tagged_vg.sd}/{name}")
    with pytest.raises(DomainMetaError, match=f"VG {tagged_vg.sd} has no LVs"):
        read_lvm_tags(tagged_vg.sd, devices_filter=tagged_vg.devices_filter)
