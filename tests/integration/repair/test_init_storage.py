"""``hosted-engine --init-storage`` against real sanlock daemons, files and loop devices."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from he_ha.config import load_hosted_engine_conf
from he_ha.lease import MIB, LeaseClient, LeaseLayout
from he_ha.provision import AreaIo, ProvisionRefused, StorageAreas, initialise_first_host, survey_lockspace
from he_ha.provision.area_survey import AreaState, LockspaceSurvey, MetadataSurvey, survey_metadata
from he_ha.whiteboard import WHITEBOARD_BYTES
from tests.integration.repair.conftest import (
    IO_TIMEOUT,
    VMID,
    Cli,
    Daemons,
    Storage,
    host_slot,
    join_all,
    leave,
    leave_all,
    publish,
    run,
)

FIRST = (
    "--host-id=1",
    f"--vm-uuid={VMID.upper()}",
    f"--io-timeout={IO_TIMEOUT}",
    "--fqdn=engine.example.com",
    "--network-test=none",
)


async def _survey(areas: StorageAreas) -> tuple[LockspaceSurvey, MetadataSurvey]:
    with AreaIo() as io:
        return await survey_lockspace(io, areas.lockspace), await survey_metadata(io, areas.metadata)


def files(*paths: Path) -> tuple[bytes, ...]:
    return tuple(path.read_bytes() for path in paths)


def test_first_host_additional_host_and_a_rerun(cli: Cli, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    areas = StorageAreas(shared / "hosted-engine.lockspace", shared / "hosted-engine.metadata")
    first = cli("--init-storage", f"--storage={shared}", *FIRST)
    assert first.code == 0, first.err
    assert first.out.splitlines()[-1] == f"Storage ready: host 1 set up as the first host of VM {VMID}."
    assert (areas.lockspace.stat().st_size, areas.metadata.stat().st_size) == (3 * MIB, WHITEBOARD_BYTES)
    lockspace, metadata = run(_survey(areas))
    assert lockspace.geometry is not None
    assert lockspace.geometry.io_timeout == IO_TIMEOUT and lockspace.vm_uuid == VMID
    assert metadata.state is AreaState.ZERO
    conf = load_hosted_engine_conf(cli.conf)
    assert (conf.host_id, conf.vmid, conf.fqdn, conf.network_test) == (1, VMID, "engine.example.com", "none")
    assert (conf.lockspace_path, conf.metadata_path) == (areas.lockspace, areas.metadata)

    before = files(areas.lockspace, areas.metadata, cli.conf)
    again = cli("--init-storage", f"--storage={shared}", *FIRST)
    assert again.code == 0, again.err
    assert again.out.splitlines()[-1] == (
        f"Nothing to change: storage and {cli.conf} are set up for host 1 (VM {VMID})."
    )
    assert files(areas.lockspace, areas.metadata, cli.conf) == before

    second = tmp_path / "host2.conf"
    added = cli(
        "--init-storage",
        f"--lockspace={areas.lockspace}",
        f"--metadata={areas.metadata}",
        "--host-id=2",
        f"--conf-out={second}",
        "--network-test=none",
    )
    assert added.code == 0, added.err
    assert added.out.splitlines()[-1] == f"Storage ready: host 2 set up as an additional host of VM {VMID}."
    assert load_hosted_engine_conf(second).vmid == VMID  # read from the VM lease
    assert files(areas.lockspace, areas.metadata) == before[:2]


def test_dry_run_creates_nothing_and_a_missing_directory_is_refused(cli: Cli, tmp_path: Path) -> None:
    dry = cli("--init-storage", f"--storage={tmp_path}", *FIRST, "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.splitlines()[-1] == "Dry run: nothing was changed."
    assert sorted(line.split(" ")[1] for line in dry.out.splitlines() if line.startswith("Would ")) == [
        "create",
        "create",
        "read",
        "write",
        "write",
        "write",
        "write",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host1"]
    missing = cli("--init-storage", f"--storage={tmp_path / 'nowhere'}", *FIRST)
    assert missing.code == 1
    assert f"cannot create {tmp_path / 'nowhere' / 'hosted-engine.lockspace'}: directory" in missing.err


def test_the_first_host_needs_the_vm_uuid_and_the_sanlock_daemon(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_uuid = cli("--init-storage", f"--storage={tmp_path}", "--host-id=1", "--network-test=none")
    assert no_uuid.code == 1 and "the first host needs --vm-uuid=UUID" in no_uuid.err
    monkeypatch.setenv("SANLOCK_RUN_DIR", str(tmp_path / "no-daemon"))
    no_daemon = cli("--init-storage", f"--storage={tmp_path}", *FIRST)
    assert no_daemon.code == 1
    assert f"this host's sanlock daemon does not answer on {tmp_path / 'no-daemon' / 'sanlock.sock'}" in no_daemon.err
    assert not (tmp_path / "hosted-engine.lockspace").exists()


def test_areas_with_other_content_are_refused_unless_forced(cli: Cli, tmp_path: Path) -> None:
    lockspace, metadata = tmp_path / "ls", tmp_path / "md"
    lockspace.write_bytes(b"\0" * 4096 + b"old data" * 1000)
    metadata.write_bytes(bytes(WHITEBOARD_BYTES))
    publish(metadata, host_slot(7, 70, "old-host"))  # a whiteboard from an earlier deployment
    args = ("--init-storage", f"--lockspace={lockspace}", f"--metadata={metadata}", *FIRST)
    before = files(lockspace, metadata)
    refused = cli(*args)
    assert refused.code == 1
    assert (
        f"Refused: lockspace area {lockspace} holds non-zero bytes (first at offset 4096) that are not a "
        "sanlock lockspace 'hosted-engine'; --force overwrites it"
    ) in refused.err
    assert (
        f"Refused: metadata area {metadata} holds metadata: 1 host slot(s) (7: old-host) (left from an earlier "
        "deployment); --force overwrites it"
    ) in refused.err
    assert files(lockspace, metadata) == before and not cli.conf.exists()
    forced = cli(*args, "--force")
    assert forced.code == 0, forced.err
    assert "Note: --force overrides: lockspace area" in forced.out
    found_lockspace, found_metadata = run(_survey(StorageAreas(lockspace, metadata)))
    assert found_lockspace.vm_uuid == VMID
    assert found_metadata.state is AreaState.ZERO


def test_conflicting_conf_values_are_refused_unless_forced(cli: Cli, tmp_path: Path) -> None:
    cli.conf.write_text("# local notes\nhost_id=2\nbridge=ovirtmgmt\n")
    args = ("--init-storage", f"--storage={tmp_path}", *FIRST)
    refused = cli(*args)
    assert refused.code == 1
    assert f"Refused: {cli.conf} has host_id=2 (would become 1); --force replaces them" in refused.err
    assert not (tmp_path / "hosted-engine.lockspace").exists()  # nothing done on a refusal
    forced = cli(*args, "--force")
    assert forced.code == 0, forced.err
    text = cli.conf.read_text()
    assert text.startswith("# local notes\nhost_id=1\nbridge=ovirtmgmt\n")


def test_a_different_vm_lease_is_refused(cli: Cli, storage: Storage) -> None:
    other = "0b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"
    result = cli(
        "--init-storage", f"--storage={storage.root}", "--host-id=3", f"--vm-uuid={other}", "--network-test=none"
    )
    assert result.code == 1
    assert f"the VM lease on {storage.lockspace} is for VM {VMID}, not {other}; --force overwrites it" in result.err


def test_an_additional_host_must_name_the_clusters_metadata(cli: Cli, storage: Storage, tmp_path: Path) -> None:
    result = cli(
        "--init-storage",
        f"--lockspace={storage.lockspace}",
        f"--metadata={tmp_path / 'typo'}",
        "--host-id=2",
        "--network-test=none",
    )
    assert result.code == 1
    assert (
        f"Refused: {tmp_path / 'typo'} does not exist, but the lockspace on {storage.lockspace} is in use: "
        "an additional host must name the cluster's metadata area"
    ) in result.err
    assert not (tmp_path / "typo").exists()


def test_live_hosts_guard_their_ids_and_forced_rewrites(cli: Cli, storage: Storage, daemons: Daemons) -> None:
    join_all(storage.layout, (daemons.peer, 2), (daemons.local, 1))
    try:
        before = storage.snapshot()
        taken = cli("--init-storage", f"--storage={storage.root}", "--host-id=2", "--network-test=none")
        assert taken.code == 1
        assert "Refused: host id 2 is used by another live host: host 2 (host-b) renewed its delta lease" in taken.err
        ours = cli("--init-storage", f"--storage={storage.root}", "--host-id=1", "--network-test=none")
        assert ours.code == 0, ours.err
        assert "Note: this host's sanlock daemon holds host id 1: the live host is this one" in ours.out
        forced = cli(
            "--init-storage",
            f"--storage={storage.root}",
            *FIRST[:2],
            "--io-timeout=2",
            "--network-test=none",
            "--force",
        )
        assert forced.code == 1
        assert "Note: --force overrides: lockspace 'hosted-engine'" in forced.out
        assert (
            "renewed its delta lease in lockspace 'hosted-engine' during the" in forced.err
            and "storage in use is never rewritten while a host is alive, even with --force" in forced.err
        )
        assert storage.snapshot()[1] == before[1]
    finally:
        leave_all(storage.layout, (daemons.peer, 2), (daemons.local, 1))


def test_the_library_call_refuses_storage_in_use(storage: Storage, daemons: Daemons) -> None:
    async def again() -> None:
        async with await LeaseClient.start(run_dir=daemons.local.run_dir) as client:
            await initialise_first_host(client, storage.areas, vm_uuid=VMID, io_timeout=IO_TIMEOUT)

    with pytest.raises(ProvisionRefused, match="storage is set up already"):
        run(again())


@pytest.fixture
def loop_devices_4k(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two block devices with 4096-byte sectors (root); detached whatever happens."""
    devices: list[str] = []
    try:
        for name, size in (("lockspace.img", 24 * MIB), ("metadata.img", 9 * MIB)):
            backing = tmp_path / name
            with open(backing, "wb") as image:
                image.truncate(size)
            devices.append(
                subprocess.run(
                    ["losetup", "-f", "--show", "--sector-size", "4096", str(backing)],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=30,
                ).stdout.strip()
            )
        yield Path(devices[0]), Path(devices[1])
    finally:
        for device in devices:
            subprocess.run(["losetup", "-d", device], check=True, timeout=30)


@pytest.mark.root
@pytest.mark.slow
def test_block_devices_with_4k_sectors(cli: Cli, loop_devices_4k: tuple[Path, Path], daemons: Daemons) -> None:
    lockspace, metadata = loop_devices_4k
    with open(metadata, "r+b") as device:  # leftovers of an earlier use of the device
        device.write(b"\x17" * 4096)
    args = ("--init-storage", f"--lockspace={lockspace}", f"--metadata={metadata}", *FIRST)
    refused = cli(*args)
    assert refused.code == 1 and f"metadata area {metadata} holds non-zero bytes but no readable" in refused.err
    done = cli(*args, "--force")
    assert done.code == 0, done.err
    found_lockspace, found_metadata = run(_survey(StorageAreas(lockspace, metadata)))
    geometry = found_lockspace.geometry
    assert geometry is not None
    assert (geometry.sector_size, geometry.align, geometry.max_host_id) == (4096, 8 * MIB, 2000)
    assert found_metadata.state is AreaState.ZERO
    assert load_hosted_engine_conf(cli.conf).lockspace_path == lockspace
    layout = LeaseLayout.on_volume(lockspace, resource=VMID, sector_size=4096, io_timeout=IO_TIMEOUT)
    join_all(layout, (daemons.local, 2000))  # the highest id fits (B27)
    leave(daemons.local, layout, 2000)
