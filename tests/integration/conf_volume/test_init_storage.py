"""--init-storage writes the configuration archive on a blank configuration volume named by
hosted-engine.conf, in the format the original reads, and never replaces a valid one
without --force."""

from __future__ import annotations

import subprocess
from pathlib import Path

from he_ha import __version__
from he_ha.ovirt.conf_archive import ARCHIVE_SIZE, DEFAULT_BROKER_CONF, parse_archive
from he_ha.ovirt.conf_volume import read_archive_bytes, read_conf_volume
from tests.integration.conf_volume.conftest import GIB, Cluster, deploy_archive, hosted_engine_conf, write_at_start
from tests.unit.ovirt.samples import SD, VM_CONF, VMID


def init(cluster: Cluster, *extra: str):
    one, _ = cluster.hosts
    return one(
        "--init-storage",
        f"--lockspace={cluster.volume('lockspace')}",
        f"--metadata={cluster.volume('metadata')}",
        "--host-id=1",
        *extra,
    )


def test_a_blank_configuration_volume_gets_the_archive(cluster: Cluster, tmp_path: Path) -> None:
    one, two = cluster.hosts
    write_at_start(cluster.conf_volume, bytes(ARCHIVE_SIZE))
    one.broker_conf.unlink()  # no local broker.conf: the original package's default goes there
    done = init(cluster)
    assert done.code == 0, done.err
    assert (
        f"Done: write the configuration archive (version, fhanswers.conf, hosted-engine.conf, broker.conf, "
        f"vm.conf) at the start of {cluster.conf_volume}" in done.out
    )
    members = read_conf_volume(cluster.conf_volume)
    assert members == {
        "version": __version__,
        "fhanswers.conf": (
            f"[environment:default]\nOVEHOSTED_STORAGE/sdUUID=str:{SD}\n"
            "OVEHOSTED_STORAGE/spUUID=str:00000000-0000-0000-0000-000000000000\nOVEHOSTED_STORAGE/domainType=str:nfs\n"
            f"OVEHOSTED_VM/vmUUID=str:{VMID}\n"
        ),
        "hosted-engine.conf": one.conf.read_text(),
        "broker.conf": DEFAULT_BROKER_CONF,
        "vm.conf": VM_CONF,
    }
    assert cluster.conf_volume.stat().st_size == GIB
    # GNU tar, as the original's reader runs it, lists and extracts it
    head = read_archive_bytes(cluster.conf_volume)
    listing = subprocess.run(["tar", "-tvf", "-"], input=head, capture_output=True, check=True, timeout=30)
    assert [line.split()[-1] for line in listing.stdout.decode().splitlines()] == [
        "version",
        "fhanswers.conf",
        "hosted-engine.conf",
        "broker.conf",
        "vm.conf",
    ]
    # another host reads it through the shim; a re-run changes nothing
    assert two("--get-shared-config", "vmid", "--type=he_shared").out == f"\nvmid : {VMID}, type : he_shared\n\n"
    again = init(cluster)
    assert again.code == 0 and again.out.splitlines()[-1].startswith("Nothing to change"), again.out + again.err
    assert f"configuration volume {cluster.conf_volume} holds a configuration archive (kept)" in again.out


def test_a_valid_archive_is_kept_and_anything_else_refused(cluster: Cluster) -> None:
    before = read_archive_bytes(cluster.conf_volume)  # deploy's archive
    kept = init(cluster)
    assert kept.code == 0, kept.err
    assert read_archive_bytes(cluster.conf_volume) == before
    write_at_start(cluster.conf_volume, b"\x17" * 4096)
    damaged = read_archive_bytes(cluster.conf_volume)
    refused = init(cluster)
    assert refused.code == 1
    assert (
        f"Refused: configuration volume {cluster.conf_volume} holds something that is not a configuration "
        "archive (not a tar archive"
    ) in refused.err and "--force overwrites it" in refused.err
    assert read_archive_bytes(cluster.conf_volume) == damaged
    forced = init(cluster, "--force")
    assert forced.code == 0, forced.err
    assert parse_archive(read_archive_bytes(cluster.conf_volume))["version"] == __version__


def test_force_rewrites_a_valid_archive(cluster: Cluster, tmp_path: Path) -> None:
    write_at_start(cluster.conf_volume, deploy_archive(tmp_path / "old", "host_id=1\n"))
    forced = init(cluster, "--force")
    assert forced.code == 0, forced.err
    assert "--force overrides: configuration volume" in forced.out
    assert read_conf_volume(cluster.conf_volume)["hosted-engine.conf"] == cluster.hosts[0].conf.read_text()


def test_a_deployed_host_needs_no_paths_and_keeps_its_hosted_engine_conf(cluster: Cluster) -> None:
    """On a host as deploy left it (blank lockspace volume: no original broker ever ran) the
    areas, the host id and the VM uuid come from hosted-engine.conf's UUIDs; the file stays."""
    one, two = cluster.hosts
    write_at_start(cluster.volume("lockspace"), bytes(3 * 1024 * 1024))  # lockspace, VM lease and lock: blank
    deployed = one.conf.read_bytes()
    done = one("--init-storage")
    assert done.code == 0, done.err
    assert f"Done: write lockspace 'hosted-engine' on {cluster.volume('lockspace')}" in done.out
    assert done.out.splitlines()[-1] == f"Storage ready: host 1 set up as the first host of VM {VMID}."
    assert one.conf.read_bytes() == deployed  # no he-ha key added
    again = one("--init-storage", "--host-id=1")
    assert again.code == 0 and again.out.splitlines()[-1] == (
        f"Nothing to change: storage and {one.conf} are set up for host 1 (VM {VMID})."
    ), again.out + again.err
    other = two("--init-storage")  # an additional host only verifies: its deployed file needs nothing
    assert other.code == 0, other.err
    assert other.out.splitlines()[-1] == (
        f"Nothing to change: storage and {two.conf} are set up for host 2 (VM {VMID})."
    )
    assert two.conf.read_text() == hosted_engine_conf(2, two.vm_conf)


def test_a_deployed_host_refuses_what_would_rewrite_its_file(cluster: Cluster) -> None:
    one, _ = cluster.hosts
    wrong_id = one("--init-storage", "--host-id=2")
    assert (wrong_id.code, wrong_id.out) == (1, "")
    assert wrong_id.err == f"--init-storage: --host-id=2 differs from host_id=1 in {one.conf}\n"
    new_keys = one("--init-storage", "--fqdn=engine.example.org")
    assert new_keys.code == 1
    assert new_keys.err.startswith("--init-storage: --fqdn go into a new hosted-engine.conf; with no --storage")
    one.conf.write_text(one.conf.read_text().replace("lockspace_volume_UUID=", "lockspace_volume_UUID=0"))
    lost = one("--init-storage")
    assert lost.code == 1
    assert "without --storage or --lockspace/--metadata the volumes come from hosted-engine.conf" in lost.err
    assert "key 'lockspace_volume_UUID'" in lost.err and "was not found; tried:" in lost.err
