"""Lease-holder pieces that need no daemon: the QEMU tier's domain XML and ownership check,
the keeper's killpath limits, its pid file and its identity, and its exit seen via pidfd."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from he_ha.lease import (
    KeeperFileError,
    KeeperProcess,
    KeeperRecord,
    Killpath,
    LeaseConfigError,
    LeaseOwner,
    VmLease,
    is_keeper,
    is_our_keeper,
    read_record,
    start_time_of,
    write_record,
)
from he_ha.supervisor.lease_holder import LeaseContext, fence_killpath, owned_by_us, with_lease
from he_ha.vm import leases_in, parse_domain_xml

UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
LEASE = VmLease(Path("/rhev/data-center/mnt/he/ha/hosted-engine.lockspace"), UUID, 1048576)


def test_qemu_tier_puts_our_lease_in_the_domain_xml_replacing_vdsms() -> None:
    vdsm_lease = (
        "<lease><lockspace>sd-uuid</lockspace><key>vm-uuid</key><target path='/rhev/xleases' offset='3145728'/></lease>"
    )
    spec = parse_domain_xml(
        f"<domain type='kvm'><name>HostedEngine</name><uuid>{UUID}</uuid>"
        f"<devices><disk/>{vdsm_lease}</devices></domain>",
        "vm.conf",
    )
    (lease,) = leases_in(with_lease(spec, LEASE))
    assert (lease.lockspace, lease.key, lease.path, lease.offset) == ("hosted-engine", UUID, LEASE.path, 1048576)


def test_qemu_tier_ownership_needs_our_current_generation() -> None:
    mine = (LeaseOwner(1, 5, 100),)
    assert owned_by_us(LeaseContext(1, 5, mine)) is True
    assert owned_by_us(LeaseContext(1, 6, mine)) is False  # we rejoined since: that lease is void
    assert owned_by_us(LeaseContext(1, 5, (LeaseOwner(2, 5, 100),))) is False
    assert owned_by_us(LeaseContext(1, None, mine)) is None
    assert owned_by_us(LeaseContext(1, 5, None)) is None


def test_killpath_fits_sanlocks_limits() -> None:
    path = fence_killpath(Path("/run/he-ha/fence.json"))
    assert path.path == sys.executable
    assert path.for_pid(1234) == [b"-m", b"he_ha.main", b"fence", b"/run/he-ha/fence.json", b"1234"]
    assert Killpath.from_json(path.to_json()) == path
    with pytest.raises(LeaseConfigError, match=r"may reach \d+ bytes, over sanlock's 127"):
        fence_killpath(Path("/run/" + "x" * 100 + "/fence.json"))
    with pytest.raises(LeaseConfigError, match="absolute path"):
        Killpath("python3", ())
    with pytest.raises(LeaseConfigError, match="JSON list of strings"):
        Killpath.from_json('{"path": 1}')


def test_keeper_record_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "lease-keeper.json"
    assert read_record(path) is None
    record = KeeperRecord(4242, 777, UUID)
    write_record(path, record)
    assert read_record(path) == record
    path.write_text("{not json")
    with pytest.raises(KeeperFileError, match="not a lease-keeper record"):
        read_record(path)


def test_a_recycled_pid_or_another_program_is_not_our_keeper() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            start = start_time_of(other.pid)
            assert start is not None
            assert not is_keeper(other.pid)
            assert not is_our_keeper(KeeperRecord(other.pid, start, UUID))
        finally:
            other.kill()
    assert start_time_of(other.pid) is None


@pytest.mark.parametrize("module", ["he_ha.lease.keeper", "he_ha.storage.lease_keeper"])
def test_a_keeper_is_known_by_its_module_name_the_current_one_or_the_former_one(module: str) -> None:
    # Keepers started before the move to he_ha.lease run ``python -m he_ha.storage.lease_keeper``
    # and survive an upgrade while they hold the VM lease: the upgraded supervisor must adopt
    # them and its fence command must end them, so is_keeper accepts that name too. A stand-in
    # whose command line carries the module name as its own word, as ``python -m`` leaves it.
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m", module]) as keeper:
        try:
            cmdline = Path(f"/proc/{keeper.pid}/cmdline")
            deadline = time.monotonic() + 5
            while not cmdline.read_bytes() and time.monotonic() < deadline:  # empty until exec is done
                time.sleep(0.01)
            start = start_time_of(keeper.pid)
            assert start is not None
            assert is_keeper(keeper.pid)
            assert is_our_keeper(KeeperRecord(keeper.pid, start, UUID))
        finally:
            keeper.kill()
    assert not is_keeper(keeper.pid)


async def test_keeper_exit_is_seen_through_its_pidfd() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = start_time_of(process.pid)
        assert start is not None
        exits: list[int] = []
        keeper = KeeperProcess(KeeperRecord(process.pid, start, UUID), lambda k: exits.append(k.pid))
        assert keeper.alive
        process.kill()
        await asyncio.to_thread(process.wait)
        await asyncio.wait_for(keeper.exited.wait(), 5)
        assert exits == [process.pid] and not keeper.alive
    finally:
        process.kill()
        process.wait()


async def test_terminate_ends_the_process_and_forget_leaves_it_alone() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = start_time_of(process.pid)
        assert start is not None
        keeper = KeeperProcess(KeeperRecord(process.pid, start, UUID), lambda k: None)
        keeper.forget()
        await asyncio.sleep(0.1)
        assert process.poll() is None  # forgetting never touches it
        watched = KeeperProcess(KeeperRecord(process.pid, start, UUID), lambda k: None)
        reaper = asyncio.create_task(asyncio.to_thread(process.wait))  # our child: someone must reap it
        await watched.terminate(timeout=5)
        assert not watched.alive and await reaper == -15
    finally:
        process.kill()
        process.wait()
