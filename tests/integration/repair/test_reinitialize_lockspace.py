"""``hosted-engine --reinitialize-lockspace`` against real sanlock daemons."""

from __future__ import annotations

from pathlib import Path

import pytest

from he_ha.devcluster.sanlockd import SanlockDaemon
from he_ha.lease import MIB, LeaseClient, find_geometry, parse_delta_lease
from tests.integration.repair.conftest import (
    Cli,
    Daemons,
    Storage,
    global_maintenance,
    host_slot,
    join,
    joined,
    leave,
    publish,
    run,
)

GLOBAL_ONLY = "Lockfile reset can be performed in global maintenance mode only."
ACTIVE_AGENT = "Lockfile reset cannot be performed with an active agent."


def delta_leases(storage: Storage) -> dict[int, tuple[int, int, int]]:
    """(owner, generation, timestamp) of every host id whose delta lease is not blank."""
    data = storage.lockspace.read_bytes()[:MIB]
    geometry = find_geometry(data)
    assert geometry is not None
    found = {}
    for host_id in range(1, geometry.max_host_id + 1):
        record = parse_delta_lease(data, geometry, host_id).record
        assert record is not None, f"host {host_id}'s delta lease does not read back"
        if record.owner_id or record.timestamp or record.generation:
            found[host_id] = (record.owner_id, record.generation, record.timestamp)
    return found


def test_refused_outside_global_maintenance(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    before = storage.snapshot()
    result = cli("--reinitialize-lockspace")
    assert result.code == 1
    assert result.err.splitlines() == [
        GLOBAL_ONLY,
        f"    the global block (slot 0) of {storage.metadata} is empty: global maintenance is off",
        "--force overrides these checks (DANGEROUS).",
    ]
    assert result.out == "Note: hosts were not watched: the cluster is not in global maintenance\n"
    assert storage.snapshot() == before
    global_maintenance(storage.metadata, False)
    before = storage.snapshot()
    result = cli("--reinitialize-lockspace", "--dry-run")
    assert result.code == 1 and "says maintenance=0" in result.err
    forced = cli("--reinitialize-lockspace", "--force", "--dry-run")  # --force first: shows what it overrides
    assert forced.code == 0, forced.err
    assert forced.out.startswith("Watching shared storage for 3 s to see which hosts are alive...\n")
    assert forced.out.splitlines()[1:] == [
        f"--force overrides: the global block (slot 0) of {storage.metadata} says maintenance=0",
        f"Would rewrite lockspace 'hosted-engine' on {storage.lockspace} (offset 0, 1048576 bytes: 512-byte sectors, "
        "1 MiB alignment, io timeout 1 s; geometry as found on storage); every host's delta lease would be reset.",
        "Dry run: nothing was changed.",
    ]
    assert storage.snapshot() == before


def test_refused_with_an_active_host_then_reset_once_it_left(cli: Cli, storage: Storage, daemons: Daemons) -> None:
    cli.deploy(storage)
    global_maintenance(storage.metadata, True)
    with joined(daemons.peer, storage.layout, 2):
        refused = cli("--reinitialize-lockspace")
        assert refused.code == 1
        assert refused.err.splitlines()[0] == ACTIVE_AGENT
        assert "host 2 (host-b) renewed its delta lease in lockspace 'hosted-engine'" in refused.err
        assert GLOBAL_ONLY not in refused.err
        assert delta_leases(storage)[2][:2] == (2, 1)  # not reset: its lease is still there, generation 1
    publish(storage.metadata, host_slot(2, 20, "host-b", stopped=True))
    assert delta_leases(storage)[2][2] == 0  # left cleanly: released
    lockspace, metadata = storage.snapshot()
    done = cli("--reinitialize-lockspace")
    assert done.code == 0, done.err
    assert done.out.splitlines()[-1].startswith(f"Reinitialized lockspace 'hosted-engine' on {storage.lockspace}")
    assert delta_leases(storage) == {}  # every delta lease blank again
    after = storage.lockspace.read_bytes()
    assert after[MIB:] == lockspace[MIB:]  # the VM lease area is not touched
    assert storage.metadata.read_bytes() == metadata
    join(daemons.peer, storage.layout, 2)  # hosts can join again
    try:
        assert delta_leases(storage)[2][:2] == (2, 1)
    finally:
        leave(daemons.peer, storage.layout, 2)


def test_a_damaged_lockspace_is_rewritten_with_its_geometry(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    global_maintenance(storage.metadata, True)
    with open(storage.lockspace, "r+b") as volume:  # a power cut tore host 1..8's sectors
        volume.write(b"\xa5" * 8 * 512)
    result = cli("--reinitialize-lockspace")
    assert result.code == 0, result.err
    assert "the delta lease of host 1 is unreadable: no sanlock leader here" in result.out
    assert "geometry as found on storage" in result.out
    assert delta_leases(storage) == {}


def test_an_unreadable_lockspace_uses_the_storage_geometry_and_the_given_io_timeout(cli: Cli, storage: Storage) -> None:
    cli.deploy(storage)
    global_maintenance(storage.metadata, True)
    with open(storage.lockspace, "r+b") as volume:
        volume.write(b"\x5a" * MIB)
    result = cli("--reinitialize-lockspace", "--io-timeout=1")
    assert result.code == 0, result.err
    assert "no readable lockspace record: 512-byte sectors as the storage reports, io timeout 1 s" in result.out
    assert delta_leases(storage) == {}
    geometry = find_geometry(storage.lockspace.read_bytes()[:MIB])
    assert geometry is not None and (geometry.align, geometry.io_timeout) == (MIB, 1)


def test_the_local_sanlock_daemon_is_needed(
    cli: Cli, storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.deploy(storage)
    global_maintenance(storage.metadata, True)
    monkeypatch.setenv("SANLOCK_RUN_DIR", str(tmp_path / "no-daemon"))
    result = cli("--reinitialize-lockspace", "--force")
    assert result.code == 1
    assert f"does not answer on {tmp_path / 'no-daemon' / 'sanlock.sock'}" in result.err


async def _take_vm_lease_and_crash(daemon: SanlockDaemon, storage: Storage, host_id: int) -> None:
    async with await LeaseClient.start(run_dir=daemon.run_dir) as client:
        await client.join(storage.layout.lockspace, host_id)
        await client.acquire(storage.layout.vm_lease)
        daemon.kill()  # the host dies holding the lease: storage still names it the owner


@pytest.mark.slow
def test_a_vm_lease_owner_that_stopped_renewing_is_refused_unless_forced(
    cli: Cli, storage: Storage, tmp_path: Path
) -> None:
    cli.deploy(storage)
    global_maintenance(storage.metadata, True)
    with SanlockDaemon(tmp_path / "crash", "host-c") as crashed:
        run(_take_vm_lease_and_crash(crashed, storage, 3))
    refused = cli("--reinitialize-lockspace")
    assert refused.code == 1
    assert refused.err.splitlines()[:2] == [
        ACTIVE_AGENT,
        "    the VM lease 5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f is held by host 3 (host-c), whose delta lease stopped "
        "renewing but was never released: it may still run the VM (crashed, or cut off from storage)",
    ]
    forced = cli("--reinitialize-lockspace", "--force")
    assert forced.code == 0, forced.err
    assert "--force overrides: the VM lease 5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f is held by host 3" in forced.out
    assert delta_leases(storage) == {}
