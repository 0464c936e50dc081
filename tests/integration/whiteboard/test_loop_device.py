"""Whiteboard I/O on real block devices (loop devices) with 512- and 4096-byte logical sectors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from he_ha.whiteboard import (
    SLOT_BYTES,
    WHITEBOARD_BYTES,
    GlobalBlock,
    StorageError,
    Whiteboard,
    encode_global_block,
    encode_host_slot,
    write_direct,
)
from he_ha.whiteboard.direct_io import logical_sector_size
from tests.integration.whiteboard.helpers import attach_loop, detach_loop, needs_root, read_raw_slot
from tests.unit.whiteboard.samples import host_slot

pytestmark = [pytest.mark.root, needs_root]


@pytest.mark.parametrize("sector", [512, 4096])
async def test_slots_on_a_block_device(direct_dir: Path, sector: int) -> None:
    image = direct_dir / f"lun-{sector}.img"
    with open(image, "wb") as f:
        f.truncate(WHITEBOARD_BYTES)
    device = attach_loop(image, sector)
    try:
        fd = os.open(device, os.O_RDONLY)
        try:
            assert logical_sector_size(fd) == sector
        finally:
            os.close(fd)
        async with Whiteboard(device, 1999) as mine, Whiteboard(device, 1) as other:
            await other.publish(host_slot(1))
            await mine.publish(host_slot(1999, hostname="ホスト"))
            await mine.admin_write_global(GlobalBlock(maintenance=True))
            view = await other.read_all()
    finally:
        detach_loop(device)
    assert view.hosts == {1: host_slot(1), 1999: host_slot(1999, hostname="ホスト")}
    assert view.global_block == GlobalBlock(maintenance=True) and not view.errors
    # The bytes reached the backing image at exactly id*4096 (O_DSYNC through the loop device).
    assert read_raw_slot(image, 1999) == encode_host_slot(host_slot(1999, hostname="ホスト"))
    assert read_raw_slot(image, 0) == encode_global_block(GlobalBlock(maintenance=True))
    assert read_raw_slot(image, 1998) == bytes(SLOT_BYTES)


def test_unaligned_write_on_4k_sectors_is_refused_before_the_kernel(direct_dir: Path) -> None:
    image = direct_dir / "lun-4k.img"
    with open(image, "wb") as f:
        f.truncate(16 * SLOT_BYTES)
    device = attach_loop(image, 4096)
    try:
        with pytest.raises(StorageError, match="at offset 512 are not aligned to the 4096-byte sector"):
            write_direct(device, 512, bytes(SLOT_BYTES))
    finally:
        detach_loop(device)
