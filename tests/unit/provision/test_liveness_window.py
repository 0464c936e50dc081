"""The observation window follows the slowest renewer: each host writes its own io timeout."""

from __future__ import annotations

from he_ha.lease import MIB, LockspaceGeometry
from he_ha.provision.liveness import slowest_io_timeout
from tests.unit.leases.test_sanlock_records import FRESH_HOST_1

# Host 4 ("hostE") joined with io_timeout 3 a lockspace written with io_timeout 1 (sanlock 3.8.5).
JOINED_IO_3 = bytes.fromhex(
    "102021120400030010000000000200000000000000000000010000000000000004000000000000000100000000000000"
    "0000000000000000686f737465642d656e67696e65000000000000000000000000000000000000000000000000000000"
    "0000000000000000686f7374450000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000005a210000000000000000000000000000beb7309600000300"
)
GEOMETRY = LockspaceGeometry("hosted-engine", 512, MIB, 1)


def area(**sectors: bytes) -> bytes:
    data = bytearray(FRESH_HOST_1.ljust(512, b"\0") * 2000)
    for name, record in sectors.items():
        index = int(name.removeprefix("host")) - 1
        data[index * 512 : (index + 1) * 512] = record.ljust(512, b"\0")
    return bytes(data)


def test_a_host_renewing_with_a_longer_io_timeout_sets_the_window() -> None:
    assert slowest_io_timeout(GEOMETRY, area(host4=JOINED_IO_3)) == 3


def test_without_held_leases_the_lockspace_io_timeout_counts() -> None:
    assert slowest_io_timeout(GEOMETRY, area()) == 1
    assert slowest_io_timeout(None, b"") is None
