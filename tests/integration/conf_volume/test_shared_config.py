"""--get/--set-shared-config on the configuration volume between two hosts with real sanlock
daemons: every host reads what one host wrote; concurrent writers never lose an update; a
writer that bypasses the lock is detected; a broken volume changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from he_ha.lease import LeaseClient, LockspaceState
from he_ha.ovirt.conf_archive import ARCHIVE_SIZE, build_archive, parse_archive
from he_ha.ovirt.conf_volume import (
    CHANGED_BY_SOMEBODY_ELSE,
    ConfVolumeChanged,
    read_archive_bytes,
    read_conf_volume,
    update_conf_volume_locked,
)
from tests.integration.conf_volume.conftest import GIB, Cluster, Host, deploy_archive, write_at_start

JOINING = "Joining the sanlock lockspace 'hosted-engine' as host"


def shown(key: str, value: str, kind: str) -> str:
    return f"\n{key} : {value}, type : {kind}\n\n"


def original_reader(volume: Path, member: str) -> str:
    """What the original's extractConfFile runs: ``dd if=<volume> bs=4k | tar -xOf - <member>``."""
    dd = subprocess.run(
        ["dd", f"if={volume}", "bs=4k", "count=5", "status=none"], capture_output=True, check=True, timeout=30
    )
    listing = subprocess.run(["tar", "-tvf", "-"], input=dd.stdout, capture_output=True, check=True, timeout=30)
    assert len(listing.stdout.decode().splitlines()) == 5
    return subprocess.run(
        ["tar", "-xOf", "-", member], input=dd.stdout, capture_output=True, check=True, timeout=30
    ).stdout.decode()


def joined_state(host: Host, cluster: Cluster) -> LockspaceState:
    async def ask() -> LockspaceState:
        async with await LeaseClient.start(run_dir=host.daemon.run_dir) as client:
            return await client.lockspace_state(cluster.layout.lockspace, host.host_id)

    return asyncio.run(ask())


def finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The exit code and error output of a command from ``Host.start`` (stderr piped)."""
    code = process.wait(timeout=120)
    assert process.stderr is not None
    return code, process.stderr.read()


def join(host: Host, cluster: Cluster) -> None:
    """What the he-ha daemon does on its host: hold its host id in the lockspace."""

    async def run() -> None:
        async with await LeaseClient.start(run_dir=host.daemon.run_dir) as client:
            await client.join(cluster.layout.lockspace, host.host_id)

    asyncio.run(run())


def leave(host: Host, cluster: Cluster) -> None:
    async def run() -> None:
        async with await LeaseClient.start(run_dir=host.daemon.run_dir) as client:
            await client.leave(cluster.layout.lockspace, host.host_id)

    asyncio.run(run())


def test_set_on_one_host_is_read_on_the_other(cluster: Cluster) -> None:
    one, two = cluster.hosts
    assert two("--get-shared-config", "fqdn", "--type=he_shared").out == shown(
        "fqdn", "engine.example.com", "he_shared"
    )
    result = one("--set-shared-config", "fqdn", "new-engine.example.com", "--type=he_shared")
    assert (result.code, result.out) == (0, ""), result.err
    assert JOINING in result.err  # no he-ha daemon holds the lockspace on host 1: joined for the update
    assert joined_state(one, cluster) is LockspaceState.NOT_JOINED  # ... and left afterwards
    got = two("--get-shared-config", "fqdn", "--type=he_shared")
    assert (got.code, got.out, got.err) == (0, shown("fqdn", "new-engine.example.com", "he_shared"), "")
    assert "fqdn=new-engine.example.com\n" in two.shared_cache.read_text()  # the local cache, refreshed
    assert "fqdn=engine.example.com\n" in two.conf.read_text()  # he_local is another file
    # the original's reader sees the change; the volume keeps its size; the rest is as deploy wrote it
    text = original_reader(cluster.conf_volume, "hosted-engine.conf")
    assert "fqdn=new-engine.example.com\n" in text and 'ca_subject="C=EN, L=Test, O=Test, CN=Test"\n' in text
    assert cluster.conf_volume.stat().st_size == GIB
    assert original_reader(cluster.conf_volume, "vm.conf") == (one.vm_conf.read_text())


def test_optional_keys_may_be_added_other_keys_must_exist(cluster: Cluster) -> None:
    one, two = cluster.hosts
    assert one("--set-shared-config", "iscsi_paths_blacklist", '["eth1"]', "--type=he_shared").code == 0
    assert read_conf_volume(cluster.conf_volume)["hosted-engine.conf"].endswith('\niscsi_paths_blacklist=["eth1"]')
    assert two("--get-shared-config", "iscsi_paths_blacklist", "--type=he_shared").out == shown(
        "iscsi_paths_blacklist", '["eth1"]', "he_shared"
    )
    before = read_archive_bytes(cluster.conf_volume)
    refused = one("--set-shared-config", "no_such_key", "1", "--type=he_shared")
    assert refused.code == 1 and refused.err.startswith(
        "Invalid configuration key no_such_key.\nAvailable keys are:\nhe_shared : ["
    )
    invalid = one("--set-shared-config", "host_id", "0", "--type=he_shared")
    assert invalid.code == 1
    assert invalid.err.startswith(
        "Refusing to set host_id to '0': the file would be invalid: hosted-engine.conf on "
        f"the configuration volume {cluster.conf_volume}: key 'host_id' = '0'"
    )
    assert invalid.err.rstrip().endswith(f"the configuration volume {cluster.conf_volume} is unchanged")
    assert read_archive_bytes(cluster.conf_volume) == before


def test_without_a_type_both_hosted_engine_confs_hold_the_key(cluster: Cluster) -> None:
    one, _ = cluster.hosts
    result = one("--get-shared-config", "fqdn")
    assert (result.code, result.err) == (
        1,
        "Duplicate key fqdn, please specify the key type. Available types are: ['he_local', 'he_shared']\n",
    )
    assert one("--get-shared-config", "local_maintenance").out == shown("local_maintenance", "False", "ha")


def test_broker_conf_is_the_volume_member_and_the_local_copy(cluster: Cluster) -> None:
    one, two = cluster.hosts
    result = one("--set-shared-config", "email.smtp-server", "smtp.example.com")
    assert result.code == 0, result.err
    member = read_conf_volume(cluster.conf_volume)["broker.conf"]
    assert "smtp-server = smtp.example.com\n" in member and "[notify]\n" in member
    assert one.broker_conf.read_text() == member  # the local copy written too, as the original does
    assert two.broker_conf.read_text() != member  # host 2 has not read it yet
    assert two("--get-shared-config", "email.smtp-server").out == shown(
        "email.smtp-server", "smtp.example.com", "broker"
    )
    assert two.broker_conf.read_text() == member  # refreshed from the volume
    refused = one("--set-shared-config", "email.smtp-port", "abc")
    assert refused.code == 1 and "key 'smtp-port' = 'abc'" in refused.err
    assert read_conf_volume(cluster.conf_volume)["broker.conf"] == member


def test_with_the_daemon_holding_the_lockspace_the_lock_is_just_taken(cluster: Cluster) -> None:
    one, _ = cluster.hosts
    join(one, cluster)
    try:
        result = one("--set-shared-config", "bridge", "br0", "--type=he_shared")
        assert (result.code, result.err) == (0, "")
        assert joined_state(one, cluster) is LockspaceState.JOINED  # the daemon's membership is left alone
    finally:
        leave(one, cluster)
    assert "\nbridge=br0\n" in read_conf_volume(cluster.conf_volume)["hosted-engine.conf"]


@pytest.mark.parametrize("joined", [True, False], ids=["daemons-joined", "joining-for-the-update"])
def test_concurrent_writers_on_two_hosts_lose_no_update(cluster: Cluster, joined: bool) -> None:
    """Both hosts set a different key at the same moment, several times: each update that
    reports success is on the volume at the end; any other was refused with the original's
    text (with the lock, none is)."""
    one, two = cluster.hosts
    if joined:
        join(one, cluster)
        join(two, cluster)
    try:
        rounds = 3 if joined else 1
        for round_number in range(rounds):
            wanted = {one: ("fqdn", f"engine-{round_number}.example.com"), two: ("bridge", f"br{round_number}")}
            running = {
                host: host.start("--set-shared-config", key, value, "--type=he_shared")
                for host, (key, value) in wanted.items()
            }
            outcomes = {host: finished(process) for host, process in running.items()}
            text = read_conf_volume(cluster.conf_volume)["hosted-engine.conf"]
            for host, (code, err) in outcomes.items():
                key, value = wanted[host]
                if code == 0:
                    assert f"\n{key}={value}\n" in "\n" + text, f"host {host.host_id}'s update was lost"
                else:
                    assert err.strip().endswith(CHANGED_BY_SOMEBODY_ELSE), err
            assert all(code == 0 for code, _ in outcomes.values()), outcomes  # the lock serialises them
    finally:
        if joined:
            leave(one, cluster)
            leave(two, cluster)


def test_a_writer_bypassing_the_lock_is_detected(cluster: Cluster, tmp_path: Path) -> None:
    """An original agent on another host rewrites the archive (no lock, plain write) between
    our read and our write: refused, its archive kept, ours not written."""
    one, two = cluster.hosts
    theirs = deploy_archive(tmp_path / "theirs", "host_id=1\nfqdn=theirs.example.com\nnetwork_test=none\n")

    def edit(text: str) -> str:
        write_at_start(cluster.conf_volume, theirs)  # lands after our first read
        return text.replace("fqdn=engine.example.com", "fqdn=ours.example.com")

    async def update() -> None:
        await update_conf_volume_locked(
            cluster.conf_volume,
            "hosted-engine.conf",
            edit,
            lockspace_path=cluster.layout.lockspace.path,
            host_id=one.host_id,
            run_dir=one.daemon.run_dir,
            say=lambda text: None,
        )

    with pytest.raises(ConfVolumeChanged, match=CHANGED_BY_SOMEBODY_ELSE):
        asyncio.run(update())
    assert read_archive_bytes(cluster.conf_volume) == theirs
    # the lock was released: the other host updates at once
    assert two("--set-shared-config", "fqdn", "after.example.com", "--type=he_shared").code == 0
    assert "fqdn=after.example.com\n" in read_conf_volume(cluster.conf_volume)["hosted-engine.conf"]


def _blank(path: Path) -> None:
    write_at_start(path, bytes(ARCHIVE_SIZE))


def _half_written(path: Path) -> None:
    """The volume as a dd that died inside the third member leaves a truncated file volume."""
    data = read_archive_bytes(path)
    with open(path, "r+b") as file:
        file.truncate(0)
        file.write(data[:3300])


def _garbage(path: Path) -> None:
    write_at_start(path, b"\x17" * 4096)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_blank, "no archive: the first 512 bytes are all zero"),
        (_half_written, "the archive is cut short"),
        (_garbage, "not a tar archive"),
    ],
    ids=["blank", "half-written", "garbage"],
)
def test_a_broken_volume_is_named_and_left_unchanged(
    cluster: Cluster, damage: Callable[[Path], None], message: str
) -> None:
    one, two = cluster.hosts
    damage(cluster.conf_volume)
    size, before = cluster.conf_volume.stat().st_size, read_archive_bytes(cluster.conf_volume)
    for host, args in (
        (two, ("--get-shared-config", "fqdn", "--type=he_shared")),
        (one, ("--set-shared-config", "fqdn", "x.example.com", "--type=he_shared")),
        (one, ("--set-shared-config", "email.smtp-server", "x", "--type=broker")),
    ):
        result = host(*args)
        assert (result.code, result.out) == (1, "")
        assert f"configuration volume {cluster.conf_volume}: " in result.err and message in result.err, result.err
    assert (cluster.conf_volume.stat().st_size, read_archive_bytes(cluster.conf_volume)) == (size, before)
    # he_local and ha do not need the volume
    assert one("--get-shared-config", "fqdn", "--type=he_local").out == shown("fqdn", "engine.example.com", "he_local")


def test_a_missing_volume_names_the_paths_tried(cluster: Cluster) -> None:
    one, _ = cluster.hosts
    cluster.conf_volume.unlink()
    result = one("--get-shared-config", "fqdn", "--type=he_shared")
    assert result.code == 1
    assert "key 'conf_volume_UUID'" in result.err and "the conf volume (image" in result.err
    assert str(cluster.conf_volume) in result.err


def test_no_lock_area_is_refused_until_init_storage_adds_it(cluster: Cluster) -> None:
    one, two = cluster.hosts
    lock = cluster.layout.conf_lock
    write_at_start_offset(lock.path, lock.offset, bytes(lock.align))  # storage laid out before the lock existed
    before = read_archive_bytes(cluster.conf_volume)
    result = one("--set-shared-config", "fqdn", "x.example.com", "--type=he_shared")
    assert result.code == 1
    assert (
        f"there is no configuration-volume lock 'he-ha-conf' at offset {lock.offset} of {lock.path} (the area "
        "is blank): run 'hosted-engine --init-storage'"
    ) in result.err, result.err
    assert JOINING not in result.err  # refused before joining anything
    assert read_archive_bytes(cluster.conf_volume) == before
    init = two(
        "--init-storage",
        f"--lockspace={cluster.volume('lockspace')}",
        f"--metadata={cluster.volume('metadata')}",
        "--host-id=2",
    )
    assert init.code == 0, init.err
    assert f"Done: write the configuration-volume lock 'he-ha-conf' on {lock.path} at offset {lock.offset}" in init.out
    assert one("--set-shared-config", "fqdn", "x.example.com", "--type=he_shared").code == 0
    assert "fqdn=x.example.com\n" in read_conf_volume(cluster.conf_volume)["hosted-engine.conf"]


def write_at_start_offset(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def test_the_archive_written_is_the_rewrite_dialect(cluster: Cluster) -> None:
    one, _ = cluster.hosts
    assert one("--set-shared-config", "fqdn", "y.example.com", "--type=he_shared").code == 0
    data = read_archive_bytes(cluster.conf_volume)
    members = parse_archive(data)
    assert data == build_archive(members)
    assert members["version"] == "2.5.2\n"  # kept: a set changes only its member


def test_a_writer_waits_while_another_host_holds_the_lock(cluster: Cluster) -> None:
    """Host 2 holds the configuration-volume lock: host 1's update waits, then goes through."""
    one, two = cluster.hosts
    before = read_archive_bytes(cluster.conf_volume)

    async def scenario() -> tuple[int | None, int, str]:
        async with await LeaseClient.start(run_dir=two.daemon.run_dir) as client:
            await client.join(cluster.layout.lockspace, two.host_id)
            await client.acquire(cluster.layout.conf_lock)
            writer = one.start("--set-shared-config", "fqdn", "waited.example.com", "--type=he_shared")
            await asyncio.sleep(6)  # host 1 has joined (about 3 s) and keeps finding the lock held
            while_held = writer.poll()
            assert read_archive_bytes(cluster.conf_volume) == before
            await client.release(cluster.layout.conf_lock)
            code = await asyncio.to_thread(writer.wait, 60)
            await client.leave(cluster.layout.lockspace, two.host_id)
            assert writer.stderr is not None
            return while_held, code, writer.stderr.read()

    while_held, code, err = asyncio.run(scenario())
    assert while_held is None, err  # still waiting while host 2 held the lock
    assert code == 0, err
    assert "fqdn=waited.example.com\n" in read_conf_volume(cluster.conf_volume)["hosted-engine.conf"]


def test_two_writers_on_one_host_take_turns(cluster: Cluster) -> None:
    """Two commands at once on the host whose daemon holds the lockspace: sanlock refuses the
    second acquire with EEXIST (same host, another process); it waits for its turn."""
    one, _ = cluster.hosts
    join(one, cluster)
    try:
        wanted = (("fqdn", "same-host.example.com"), ("bridge", "br-same"))
        for _ in range(3):
            running = [one.start("--set-shared-config", key, value, "--type=he_shared") for key, value in wanted]
            outcomes = [finished(process) for process in running]
            assert all(code == 0 for code, _ in outcomes), outcomes
            text = "\n" + read_conf_volume(cluster.conf_volume)["hosted-engine.conf"]
            assert all(f"\n{key}={value}\n" in text for key, value in wanted)
    finally:
        leave(one, cluster)
