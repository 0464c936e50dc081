"""The lease layout: sanlock geometries, the B27 alignment fix, offsets and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from he_ha.config import MAX_HOST_ID
from he_ha.lease import (
    MIB,
    LeaseConfigError,
    LeaseLayout,
    Lockspace,
    VmLease,
    alignment_for,
    host_dead_seconds,
    wait_deadline,
)
from he_ha.lease.lease_layout import max_host_id

VOLUME = Path("/storage/hosted-engine.lockspace")


@pytest.mark.parametrize(("sector", "align"), [(512, MIB), (4096, 8 * MIB)])
def test_alignment_holds_every_host_id(sector: int, align: int) -> None:
    # Defect B27: the original's default 1 MiB held only 250 ids on 4K storage.
    assert alignment_for(sector) == align
    assert max_host_id(sector, align) >= MAX_HOST_ID


@pytest.mark.parametrize(("hosts", "align"), [(1, MIB), (250, MIB), (251, 2 * MIB), (1000, 4 * MIB), (1001, 8 * MIB)])
def test_alignment_is_the_smallest_that_fits_on_4k(hosts: int, align: int) -> None:
    assert alignment_for(4096, hosts) == align


@pytest.mark.parametrize(("sector", "hosts"), [(1024, 10), (512, 0), (512, 2001), (4096, 2001)])
def test_alignment_rejects_impossible_requests(sector: int, hosts: int) -> None:
    with pytest.raises(LeaseConfigError, match=str(sector) if sector == 1024 else str(hosts)):
        alignment_for(sector, hosts)


@pytest.mark.parametrize(("sector", "align"), [(512, 2 * MIB), (512, 8 * MIB), (4096, 3 * MIB), (2048, MIB)])
def test_invalid_geometry_is_named(sector: int, align: int) -> None:
    with pytest.raises(LeaseConfigError, match=f"sector size {sector} with alignment {align}"):
        Lockspace(VOLUME, sector_size=sector, align=align)


def test_default_layout_puts_the_vm_lease_after_the_lockspace_area() -> None:
    layout = LeaseLayout.on_volume(VOLUME, resource="vm-uuid", sector_size=4096, io_timeout=1)
    assert layout.lockspace == Lockspace(VOLUME, "hosted-engine", 0, 4096, 8 * MIB, 1)
    assert layout.vm_lease == VmLease(VOLUME, "vm-uuid", 8 * MIB, "hosted-engine", 4096, 8 * MIB, 1)
    assert layout.conf_lock == VmLease(VOLUME, "he-ha-conf", 16 * MIB, "hosted-engine", 4096, 8 * MIB, 1)
    assert layout.required_size(VOLUME) == 24 * MIB  # lockspace, VM lease, configuration-volume lock
    assert layout.required_size(Path("/elsewhere")) == 0


def test_layout_with_the_lease_on_another_volume() -> None:
    other = Path("/storage/xleases")
    layout = LeaseLayout.on_volume(VOLUME, resource="vm", sector_size=512, lease_path=other, lease_offset=0)
    assert (layout.vm_lease.path, layout.vm_lease.offset) == (other, 0)
    assert layout.required_size(VOLUME) == 3 * MIB  # the configuration-volume lock stays at 2 x alignment
    assert layout.required_size(other) == MIB


def test_layout_refuses_a_lease_inside_the_lockspace_area() -> None:
    with pytest.raises(LeaseConfigError, match="overlaps the lockspace area"):
        LeaseLayout.on_volume(VOLUME, resource="vm", sector_size=512, lease_offset=0)


@pytest.mark.parametrize("offset", [-MIB, 512, MIB + 4096])
def test_offsets_must_be_aligned(offset: int) -> None:
    with pytest.raises(LeaseConfigError, match=f"offset {offset}"):
        VmLease(VOLUME, "vm", offset)


@pytest.mark.parametrize("name", ["", "x" * 49, "a:b", "nul\0"])
def test_names_are_checked(name: str) -> None:
    with pytest.raises(LeaseConfigError, match="resource name"):
        VmLease(VOLUME, name, MIB)
    with pytest.raises(LeaseConfigError, match="lockspace name"):
        Lockspace(VOLUME, name)


def test_host_id_range_follows_the_geometry() -> None:
    old_layout = Lockspace(VOLUME, sector_size=4096, align=MIB)  # what the original wrote on 4K storage
    old_layout.check_host_id(250)
    with pytest.raises(LeaseConfigError, match=r"host id 251 is outside 1\.\.250"):
        old_layout.check_host_id(251)
    with pytest.raises(LeaseConfigError, match="host id 0"):
        Lockspace(VOLUME).check_host_id(0)
    Lockspace(VOLUME).check_host_id(2000)


def test_io_timeout_range() -> None:
    with pytest.raises(LeaseConfigError, match="io timeout 0"):
        Lockspace(VOLUME, io_timeout=0)
    with pytest.raises(LeaseConfigError, match="io timeout 301"):
        VmLease(VOLUME, "vm", MIB, io_timeout=301)


def test_timings_follow_sanlock() -> None:
    assert host_dead_seconds(1) == 68  # 8 io timeouts + the fixed 60 s watchdog fire time
    assert host_dead_seconds(10) == 140
    assert wait_deadline(1) > host_dead_seconds(1)
