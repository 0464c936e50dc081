"""Sanlock leader records decoded from bytes sanlock 3.8.5 wrote itself (captured here)."""

from __future__ import annotations

import pytest

from he_ha.lease import MIB, LockspaceGeometry, RecordError, RecordKind, find_geometry, parse_delta_lease, parse_leader
from he_ha.lease.sanlock_records import CHECKSUM_SPAN, crc32c

# Host 3's delta lease after host "hostB" joined lockspace hosted-engine (io_timeout 1),
# 512-byte sectors, 1 MiB alignment; `sanlock direct dump` showed timestamp 7291, own 3, gen 1.
JOINED_HOST_3 = bytes.fromhex(
    "102021120400030010000000000200000000000000000000010000000000000003000000000000000100000000000000"
    "0000000000000000686f737465642d656e67696e65000000000000000000000000000000000000000000000000000000"
    "0000000000000000686f7374420000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000007b1c000000000000000000000000000059daf11300000100"
)
# Host 1's delta lease right after write_lockspace: never used.
FRESH_HOST_1 = bytes.fromhex(
    "102021120400030010000000000200000000000000000000010000000000000000000000000000000000000000000000"
    "0000000000000000686f737465642d656e67696e65000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000d95cea3200000100"
)
# The VM lease's leader while host 1 (generation 1) held it.
VM_LEASE_HELD = bytes.fromhex(
    "10201506040006001000000000020000d007000000000000d00700000000000001000000000000000100000000000000"
    "0200000000000000686f737465642d656e67696e65000000000000000000000000000000000000000000000000000000"
    "000000000000000035623166306333652d386132642d346336652d396631302d32613362346335643665376600000000"
    "0000000000000000801c000000000000000000000000000004f88d2e00000000"
)


def test_crc32c_matches_the_standard_check_value() -> None:
    # CRC-32C of "123456789" is 0xe3069283 (seed ~0, final xor); sanlock uses seed ~1, no xor.
    assert crc32c(b"123456789", 0xFFFFFFFF) ^ 0xFFFFFFFF == 0xE3069283


def test_a_joined_delta_lease() -> None:
    record = parse_leader(JOINED_HOST_3)
    assert record is not None
    assert (record.kind, record.space_name, record.resource_name) == (RecordKind.DELTA, "hosted-engine", "hostB")
    assert (record.owner_id, record.generation, record.timestamp, record.io_timeout) == (3, 1, 7291, 1)
    assert (record.sector_size, record.align, record.held) == (512, MIB, True)


def test_a_fresh_delta_lease_is_not_held() -> None:
    record = parse_leader(FRESH_HOST_1)
    assert record is not None
    assert (record.owner_id, record.timestamp, record.held, record.resource_name) == (0, 0, False, "")


def test_the_vm_lease_leader() -> None:
    record = parse_leader(VM_LEASE_HELD)
    assert record is not None
    assert record.kind is RecordKind.PAXOS
    assert (record.resource_name, record.owner_id, record.generation, record.timestamp) == (
        "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f",
        1,
        1,
        7296,
    )


def test_all_zero_is_no_record() -> None:
    assert parse_leader(bytes(512)) is None


@pytest.mark.parametrize("offset", [0, 20, 60, 110, 152, 170])
def test_any_changed_byte_is_refused(offset: int) -> None:
    damaged = bytearray(JOINED_HOST_3)
    damaged[offset] ^= 0x40
    with pytest.raises(RecordError) as caught:
        parse_leader(bytes(damaged))
    assert "checksum" in caught.value.problem or "magic" in caught.value.problem


def test_garbage_and_short_input() -> None:
    with pytest.raises(RecordError, match="no sanlock leader"):
        parse_leader(b"garbage!" * 64)
    with pytest.raises(RecordError, match="only 100 bytes"):
        parse_leader(JOINED_HOST_3[:100])


def test_impossible_geometry_is_refused() -> None:
    bad = bytearray(FRESH_HOST_1)
    bad[12:16] = (1024).to_bytes(4, "little")  # sector size 1024
    bad[CHECKSUM_SPAN : CHECKSUM_SPAN + 4] = crc32c(bytes(bad[:CHECKSUM_SPAN])).to_bytes(4, "little")
    with pytest.raises(RecordError, match="impossible geometry"):
        parse_leader(bytes(bad))


def _area(*sectors: bytes) -> bytes:
    return b"".join(sector.ljust(512, b"\0") for sector in sectors).ljust(8 * 512, b"\0")


def test_geometry_from_host_1_or_from_the_next_good_sector() -> None:
    expected = LockspaceGeometry("hosted-engine", 512, MIB, 1)
    assert find_geometry(_area(FRESH_HOST_1, FRESH_HOST_1, JOINED_HOST_3)) == expected
    assert find_geometry(_area(b"\xff" * 512, FRESH_HOST_1)) == expected  # host 1's sector damaged
    assert find_geometry(_area()) is None
    assert find_geometry(_area(VM_LEASE_HELD)) is None  # a resource lease is not a lockspace
    assert find_geometry(_area(FRESH_HOST_1), name="other") is None


def test_delta_lease_of_each_host() -> None:
    area = _area(FRESH_HOST_1, b"\x01" * 512, JOINED_HOST_3, VM_LEASE_HELD)
    geometry = LockspaceGeometry("hosted-engine", 512, MIB, 1)
    assert parse_delta_lease(area, geometry, 3).record.owner_id == 3  # type: ignore[union-attr]
    assert parse_delta_lease(area, geometry, 5).record is None  # all zero: no problem either
    assert parse_delta_lease(area, geometry, 5).problem is None
    assert "no sanlock leader" in (parse_delta_lease(area, geometry, 2).problem or "")
    assert "resource lease" in (parse_delta_lease(area, geometry, 4).problem or "")
    assert geometry.max_host_id == 2000 and geometry.sector_of(3) == 1024
