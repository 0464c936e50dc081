"""Sanlock's on-disk leader records, decoded straight from bytes (pure: no daemon, no I/O).

Why read them ourselves: the repair commands must decide who is alive from shared storage
with the local daemons stopped, without joining the lockspace. Every delta lease (one per
host id) and every resource lease starts with a 512-byte ``leader_record`` (sanlock 3.x,
little-endian), layout verified against sanlock 3.8.5's own writes and ``sanlock direct
dump`` (tests/unit/leases/test_sanlock_records.py pins real bytes):

    off  size  field                off  size  field
    0    4     magic                56   48    space_name (lockspace)
    4    4     version              104  48    resource_name (delta: the host's name)
    8    4     flags (alignment)    152  8     timestamp (owner's monotonic s; 0 = free)
    12   4     sector_size          160  8     unused
    16   8     num_hosts            168  4     checksum: crc32c(~1) over bytes 0..167
    24   8     max_hosts            172  2     unused
    32   8     owner_id             174  2     io_timeout
    40   8     owner_generation
    48   8     lver

A delta lease with timestamp 0 is free: never used (owner 0) or released by a clean leave.
A resource (paxos) lease's leader names its last owner; timestamp 0 there means released.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from he_ha.lease.lease_layout import LOCKSPACE_NAME, MIB, SECTOR_SIZES, max_host_id

DELTA_MAGIC = 0x12212010
PAXOS_MAGIC = 0x06152010
CHECKSUM_SPAN = 168
RECORD_BYTES = 176  # through io_timeout: all a reader needs
# leader flags -> alignment (sanlock's LFL_ALIGN_*)
ALIGN_FLAGS = {0x10: 1 * MIB, 0x20: 2 * MIB, 0x40: 4 * MIB, 0x80: 8 * MIB}
_HEAD = struct.Struct("<IIII QQQQQ")  # magic .. lver
_NAME_BYTES = 48


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes, crc: int = 0xFFFFFFFE) -> int:
    """Castagnoli CRC as sanlock computes its leader checksum (seed ~1, no final xor)."""
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


class RecordKind(enum.Enum):
    DELTA = "delta lease"
    PAXOS = "resource lease"


class RecordError(ValueError):
    """Bytes where a leader record should be that are not one (garbage, torn, foreign)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True)
class LeaderRecord:
    kind: RecordKind
    sector_size: int
    align: int
    space_name: str
    resource_name: str  # a delta lease's holds the host name its owner's daemon runs under
    owner_id: int
    generation: int
    timestamp: int
    io_timeout: int

    @property
    def held(self) -> bool:
        """A delta lease being renewed (or abandoned uncleanly); a resource lease owned."""
        return self.timestamp != 0


def parse_leader(data: bytes | memoryview) -> LeaderRecord | None:
    """The record at the start of ``data``; None when those bytes are all zero.

    Raises RecordError naming what is wrong: no magic, bad checksum, impossible geometry.
    """
    head = bytes(data[:RECORD_BYTES])
    if len(head) < RECORD_BYTES:
        raise RecordError(f"only {len(head)} bytes; a leader record needs {RECORD_BYTES}")
    if not any(head):
        return None
    magic, _version, flags, sector_size, _num, _max, owner, generation, _lver = _HEAD.unpack_from(head)
    kinds = {DELTA_MAGIC: RecordKind.DELTA, PAXOS_MAGIC: RecordKind.PAXOS}
    if magic not in kinds:
        raise RecordError(f"no sanlock leader here (magic {magic:#010x})")
    (stored,) = struct.unpack_from("<I", head, CHECKSUM_SPAN)
    computed = crc32c(head[:CHECKSUM_SPAN])
    if stored != computed:
        raise RecordError(
            f"leader checksum {stored:#010x} does not match the computed {computed:#010x} (torn or damaged)"
        )
    align = ALIGN_FLAGS.get(flags & 0xF0)
    if sector_size not in SECTOR_SIZES or align is None:
        raise RecordError(f"impossible geometry: {sector_size}-byte sectors, flags {flags:#x}")
    (timestamp,) = struct.unpack_from("<Q", head, 152)
    (io_timeout,) = struct.unpack_from("<H", head, 174)
    return LeaderRecord(
        kind=kinds[magic],
        sector_size=sector_size,
        align=align,
        space_name=_name(head, 56),
        resource_name=_name(head, 104),
        owner_id=owner,
        generation=generation,
        timestamp=timestamp,
        io_timeout=io_timeout,
    )


def _name(head: bytes, offset: int) -> str:
    return head[offset : offset + _NAME_BYTES].split(b"\0", 1)[0].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class LockspaceGeometry:
    """What the lockspace's own records say about it."""

    name: str
    sector_size: int
    align: int
    io_timeout: int

    def sector_of(self, host_id: int) -> int:
        """Byte offset of ``host_id``'s delta lease."""
        return (host_id - 1) * self.sector_size

    @property
    def max_host_id(self) -> int:
        return max_host_id(self.sector_size, self.align)


def find_geometry(data: bytes | memoryview, name: str = LOCKSPACE_NAME) -> LockspaceGeometry | None:
    """The geometry from the first valid delta lease of lockspace ``name`` in ``data`` (read
    from offset 0). Host 1's sector normally answers; if it is damaged, the scan goes on at
    both sector sizes, so one bad sector does not hide the lockspace. None: nothing found."""
    for sector in SECTOR_SIZES:
        for offset in range(0, len(data) - RECORD_BYTES + 1, sector):
            try:
                record = parse_leader(data[offset : offset + RECORD_BYTES])
            except RecordError:
                continue
            if (
                record is not None
                and record.kind is RecordKind.DELTA
                and record.space_name == name
                and record.sector_size == sector
            ):
                return LockspaceGeometry(name, sector, record.align, record.io_timeout)
    return None


@dataclass(frozen=True)
class DeltaLeaseSlot:
    """One host id's sector: a record, nothing (all zero), or a problem."""

    host_id: int
    record: LeaderRecord | None
    problem: str | None


def parse_delta_lease(data: bytes | memoryview, geometry: LockspaceGeometry, host_id: int) -> DeltaLeaseSlot:
    """Host ``host_id``'s delta lease from the lockspace area bytes ``data`` (offset 0)."""
    start = geometry.sector_of(host_id)
    sector = data[start : start + geometry.sector_size]
    try:
        record = parse_leader(sector)
    except RecordError as exc:
        return DeltaLeaseSlot(host_id, None, exc.problem)
    if record is None:
        return DeltaLeaseSlot(host_id, None, None)
    if record.kind is not RecordKind.DELTA or record.space_name != geometry.name:
        return DeltaLeaseSlot(
            host_id,
            None,
            f"holds a {record.kind.value} of {record.space_name!r}, not a delta lease of {geometry.name!r}",
        )
    return DeltaLeaseSlot(host_id, record, None)
