"""A host laid out as ``hosted-engine --deploy`` and VDSM leave it (he_ha/devcluster/deployed.py),
checked against the spec (ovirt-host-integration.md §1.2–§1.7, §2.1), and ``he-ha storage-paths``
run on it as an administrator would: its own process, a hosted-engine.conf with the
original's keys only, every volume found by the rule the layout offers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from he_ha.config import load_hosted_engine_conf, parse_flat_file
from he_ha.devcluster.deployed import (
    ARCHIVE_BYTES,
    BLANK,
    GIB,
    MIB,
    DeployedHostView,
    Deployment,
    add_ovf_stores,
    deployed_host,
    java_date,
    metadata_checksum,
    run_storage_paths,
    update_ovf_store,
)
from he_ha.ovirt.ovf_store import find_file_stores, preference_order, read_member

pytestmark = pytest.mark.root  # vdsm:kvm ownership

ROLES = ("metadata", "lockspace", "conf")
RUN_LINK = "vdsm run link (Image.prepare)"
# Every key deploy's template writes (CLI spec §1); nothing else, no he-ha key.
TEMPLATE_KEYS = {
    "fqdn",
    "vm_disk_id",
    "vm_disk_vol_id",
    "vmid",
    "storage",
    "nfs_version",
    "mnt_options",
    "conf",
    "host_id",
    "console",
    "domainType",
    "spUUID",
    "sdUUID",
    "connectionUUID",
    "ca_cert",
    "ca_subject",
    "vdsm_use_ssl",
    "gateway",
    "bridge",
    "network_test",
    "tcp_t_address",
    "tcp_t_port",
    "metadata_volume_UUID",
    "metadata_image_UUID",
    "lockspace_volume_UUID",
    "lockspace_image_UUID",
    "conf_volume_UUID",
    "conf_image_UUID",
    "iqn",
    "portal",
    "user",
    "password",
    "port",
}
VOLUME_KEYS = [
    "CAP",
    "CTIME",
    "DESCRIPTION",
    "DISKTYPE",
    "DOMAIN",
    "FORMAT",
    "GEN",
    "IMAGE",
    "LEGALITY",
    "PUUID",
    "SEQ",
    "TYPE",
    "VOLTYPE",
]
DISKS = {  # role: (DISKTYPE, alias, description) as deploy creates them (§1.6)
    "vm": ("HEVD", "he_virtio_disk", "Hosted-Engine disk"),
    "lockspace": ("HESD", "he_sanlock", "Hosted-Engine sanlock disk"),
    "conf": ("HECI", "HostedEngineConfigurationImage", "Hosted-Engine configuration disk"),
    "metadata": ("HEMD", "he_metadata", "Hosted-Engine metadata disk"),
}


@pytest.fixture
def nfs(tmp_path: Path) -> tuple[DeployedHostView, Path]:
    """Host 1 of an NFS deployment under ``tmp_path``: (its view, its hosted-engine.conf)."""
    return deployed_host(tmp_path, Deployment.new())


def block(root: Path, **options: bool) -> tuple[DeployedHostView, Path]:
    return deployed_host(root, Deployment.new(domain_type="iscsi"), **options)


def found(conf: Path, mount_root: Path) -> dict[str, dict[str, str]]:
    result = run_storage_paths(conf, mount_root)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def expect(view: DeployedHostView, conf: Path, mount_root: Path, paths: dict[str, Path], rule: str) -> None:
    """``he-ha storage-paths`` prints exactly these paths with this rule, and each is the volume."""
    assert found(conf, mount_root) == {role: {"path": str(paths[role]), "rule": rule} for role in ROLES}
    for role in ROLES:
        assert paths[role].resolve() == view.volume(role).resolve()


# --- hosted-engine.conf --------------------------------------------------------------------------


def test_hosted_engine_conf_has_the_deploy_templates_keys_only(nfs: tuple[DeployedHostView, Path]) -> None:
    view, conf = nfs
    d = view.deployment
    values = parse_flat_file(conf)
    assert set(values) == TEMPLATE_KEYS
    assert (values["storage"], values["domainType"], values["spUUID"], values["sdUUID"]) == (
        "nfs.example.com:/exports/he",
        "nfs",
        BLANK,
        d.sd_uuid,
    )
    assert values["conf"] == str(view.root / "run/ovirt-hosted-engine-ha/vm.conf")
    assert values["ca_subject"] == "C=EN, L=Test, O=Test, CN=Test"  # written double-quoted
    for role in ("metadata", "lockspace", "conf"):
        disk = d.disk(role)
        assert (values[f"{role}_image_UUID"], values[f"{role}_volume_UUID"]) == (disk.image, disk.volume)
    loaded = load_hosted_engine_conf(conf)
    assert (loaded.metadata_path, loaded.lockspace_path, loaded.vm_lease_path) == (None, None, None)


# --- he-ha storage-paths on a file domain ----------------------------------------------------------


def test_storage_paths_finds_every_volume_by_its_run_link(nfs: tuple[DeployedHostView, Path]) -> None:
    view, conf = nfs
    expect(view, conf, view.mount_root, {role: view.run_link(role) for role in ROLES}, RUN_LINK)
    image_dir = view.run_link("metadata").parent
    assert image_dir.is_symlink() and image_dir.readlink() == view.domain_dir / "images" / image_dir.name


def test_without_run_links_the_mount_of_the_storage_connection_finds_them(nfs: tuple[DeployedHostView, Path]) -> None:
    view, conf = nfs
    shutil.rmtree(view.run_root)  # /run after a reboot: nothing prepared the images again
    mount = view.mount_root / "nfs.example.com:_exports_he"
    assert view.domain_dir.parent == mount
    expect(
        view,
        conf,
        view.mount_root,
        {role: view.volume(role) for role in ROLES},
        "mount of storage=nfs.example.com:/exports/he",
    )
    d = view.deployment
    assert view.volume("conf") == mount / d.sd_uuid / "images" / d.disk("conf").image / d.disk("conf").volume


def test_a_mount_under_another_spelling_is_found_by_listing_the_mount_root(nfs: tuple[DeployedHostView, Path]) -> None:
    view, conf = nfs
    shutil.rmtree(view.run_root)
    other = view.mount_root / "192.0.2.5:_exports_he"  # the same export, mounted by address
    view.domain_dir.parent.rename(other)
    d = view.deployment
    paths = {role: other / d.sd_uuid / "images" / d.disk(role).image / d.disk(role).volume for role in ROLES}
    assert found(conf, view.mount_root) == {
        role: {"path": str(paths[role]), "rule": f"domain directory found under {view.mount_root}"} for role in ROLES
    }


def test_a_missing_volume_names_the_key_the_uuids_and_every_path_tried(nfs: tuple[DeployedHostView, Path]) -> None:
    view, conf = nfs
    volume = view.volume("conf")
    volume.unlink()  # the run link now dangles: it counts as not there
    result = run_storage_paths(conf, view.mount_root)
    assert (result.returncode, result.stdout) == (1, "")
    d, disk = view.deployment, view.deployment.disk("conf")
    for text in ("conf_volume_UUID", disk.image, disk.volume, d.sd_uuid, str(view.run_link("conf")), str(volume)):
        assert text in result.stderr, (text, result.stderr)
    tried = result.stderr.split("tried: ", 1)[1].strip().split(", ")
    assert tried == [str(view.run_link("conf")), str(volume)]


def test_the_brokers_compatibility_links(nfs: tuple[DeployedHostView, Path]) -> None:
    view, _ = nfs
    directory = view.ha_agent_links()
    assert directory == view.domain_dir / "ha_agent"
    for role in ("metadata", "lockspace"):
        link = directory / f"hosted-engine.{role}"
        assert link.readlink() == view.run_link(role)  # as the broker writes them: the prepared path
        assert link.resolve() == view.volume(role).resolve()


# --- the file domain's contents -------------------------------------------------------------------


def test_domain_metadata_is_sealed_by_the_spec_rule(nfs: tuple[DeployedHostView, Path]) -> None:
    view, _ = nfs
    text = (view.domain_dir / "dom_md/metadata").read_text()
    lines = text.splitlines()
    assert text.endswith("\n") and lines[:-1] == sorted(lines[:-1])
    key, seal = lines[-1].split("=")
    # SHA-1 over the sorted KEY=VALUE strings, no newlines (§1.5)
    assert (key, seal) == ("_SHA_CKSUM", hashlib.sha1("".join(lines[:-1]).encode("ascii")).hexdigest())
    values = dict(line.split("=", 1) for line in lines[:-1])
    d = view.deployment
    assert values | {"POOL_UUID": "x"} == {
        "ALIGNMENT": "1048576",
        "BLOCK_SIZE": "512",
        "CLASS": "Data",
        "DESCRIPTION": "hosted_storage",
        "IOOPTIMEOUTSEC": "10",
        "LEASERETRIES": "3",
        "LEASETIMESEC": "60",
        "LOCKPOLICY": "",
        "LOCKRENEWALINTERVALSEC": "5",
        "MASTER_VERSION": "1",
        "POOL_DESCRIPTION": "Default",
        "POOL_DOMAINS": f"{d.sd_uuid}:Active",
        "POOL_SPM_ID": "-1",
        "POOL_SPM_LVER": "-1",
        "POOL_UUID": "x",
        "REMOTE_PATH": "nfs.example.com:/exports/he",
        "ROLE": "Master",
        "SDUUID": d.sd_uuid,
        "TYPE": "NFS",
        "VERSION": "5",
    }
    # non-ASCII is hashed as an XML character reference
    assert metadata_checksum(["DESCRIPTION=h\u00e9"]) == hashlib.sha1(b"DESCRIPTION=h&#233;").hexdigest()


def test_special_files_and_volumes(nfs: tuple[DeployedHostView, Path]) -> None:
    view, _ = nfs
    dom_md = view.domain_dir / "dom_md"
    sizes = {name: (dom_md / name).stat().st_size for name in ("ids", "leases", "xleases", "inbox", "outbox")}
    assert sizes == {"ids": 0, "leases": 0, "xleases": 0, "inbox": 16 * MIB, "outbox": 16 * MIB}
    assert (dom_md / "inbox").stat().st_blocks == 0  # sparse
    d = view.deployment
    for disk in d.disks:
        image = view.domain_dir / "images" / disk.image
        volume = image / disk.volume
        expected = ARCHIVE_BYTES if disk.role == "conf" else disk.size  # deploy's dd truncated the conf volume
        assert volume.stat().st_size == expected, disk.role
        assert (image / f"{disk.volume}.lease").stat().st_size == MIB
        for path in (volume, image / f"{disk.volume}.meta", image / f"{disk.volume}.lease"):
            info = path.stat()
            assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o660, 36, 36), path
    assert d.disk("lockspace").size == d.disk("conf").size == GIB and d.disk("metadata").size == 128 * MIB


def meta_values(text: str) -> dict[str, str]:
    """Check the .meta format (§1.6) and return its values."""
    assert len(text.encode()) <= 512 and text.endswith("EOF\n")
    lines = text.splitlines()
    assert lines[-1] == "EOF"
    keys = [line.split("=", 1)[0] for line in lines[:-1]]
    assert keys == VOLUME_KEYS  # every version-5 key, sorted
    return dict(line.split("=", 1) for line in lines[:-1])


def test_volume_meta_files(nfs: tuple[DeployedHostView, Path]) -> None:
    view, _ = nfs
    d = view.deployment
    for disk in d.disks:
        values = meta_values((view.domain_dir / "images" / disk.image / f"{disk.volume}.meta").read_text())
        disktype, alias, description = DISKS[disk.role]
        assert json.loads(values["DESCRIPTION"]) == {"DiskAlias": alias, "DiskDescription": description}
        assert values["DESCRIPTION"] == f'{{"DiskAlias":"{alias}","DiskDescription":"{description}"}}'  # compact
        assert values | {"CTIME": "t"} == {
            "CAP": str(disk.size),
            "CTIME": "t",
            "DESCRIPTION": values["DESCRIPTION"],
            "DISKTYPE": disktype,
            "DOMAIN": d.sd_uuid,
            "FORMAT": "RAW",
            "GEN": "0",
            "IMAGE": disk.image,
            "LEGALITY": "LEGAL",
            "PUUID": BLANK,
            "SEQ": "0",
            "TYPE": "SPARSE" if disk.role == "vm" else "PREALLOCATED",
            "VOLTYPE": "LEAF",
        }


def test_the_configuration_archive_as_deploy_writes_it(nfs: tuple[DeployedHostView, Path]) -> None:
    view, conf = nfs
    volume = view.volume("conf")
    data = volume.read_bytes()
    assert len(data) == ARCHIVE_BYTES  # the 1 GiB volume file, truncated by dd
    with tarfile.open(volume) as archive:
        members = archive.getmembers()
        texts = {m.name: archive.extractfile(m).read().decode() for m in members}  # type: ignore[union-attr]
    assert [m.name for m in members] == ["vm.conf", "broker.conf", "version", "fhanswers.conf", "hosted-engine.conf"]
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname, member.mode) == (36, 36, "vdsm", "kvm", 0o644)
        assert member.mtime > 0
    assert all(data[offset + 257 : offset + 265] == b"ustar  \0" for offset in _header_offsets(data))  # GNU headers
    assert texts["hosted-engine.conf"] == conf.read_text()
    assert texts["version"] == "2.5.2"
    vm_conf = texts["vm.conf"]
    assert "xmlBase64" not in vm_conf and vm_conf.startswith(f"vmId={view.deployment.vm_uuid}\n")
    assert re.search(r"^devices=\{index:0,iface:virtio,format:raw,", vm_conf, re.MULTILINE)
    assert texts["fhanswers.conf"].startswith("[environment:default]\n")
    assert "OVEHOSTED_STORAGE/storageDomainConnection=str:nfs.example.com:/exports/he\n" in texts["fhanswers.conf"]
    assert "[notify]\nstate_transition = maintenance|start|stop|migrate|up|down\n" in texts["broker.conf"]
    # the original's validity check: dd | tar -tvf - lists every member name
    listing = subprocess.run(
        f"dd if='{volume}' bs=4k status=none | tar -tvf -", shell=True, capture_output=True, text=True, check=True
    ).stdout
    assert all(name in listing for name in texts)


def _header_offsets(data: bytes) -> list[int]:
    offsets, offset = [], 0
    while data[offset : offset + 512].strip(b"\0"):
        offsets.append(offset)
        size = int(data[offset + 124 : offset + 136].strip(b"\0 ") or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    return offsets


# --- block domains ------------------------------------------------------------------------------


def test_block_domain_through_the_run_links(tmp_path: Path) -> None:
    view, conf = block(tmp_path)
    expect(view, conf, view.mount_root, {role: view.run_link(role) for role in ROLES}, RUN_LINK)
    d = view.deployment
    for role in ROLES:
        image_dir = view.run_link(role).parent
        assert image_dir.is_dir() and not image_dir.is_symlink()  # a directory of per-volume links
        assert view.run_link(role).readlink() == tmp_path / "dev" / d.sd_uuid / d.disk(role).volume


def test_block_domain_through_the_blocksd_image_links(tmp_path: Path) -> None:
    view, conf = block(tmp_path, image_links=True)
    d = view.deployment
    # A mount root that is not a relocated root keeps the run links and the LVs at the
    # machine's /run/vdsm/storage and /dev, where this domain is not: only the image links
    # under blockSD lead to the volumes.
    plain = tmp_path / "vdsm-mnt"
    plain.symlink_to(view.mount_root)
    assert not Path("/run/vdsm/storage", d.sd_uuid).exists() and not Path("/dev", d.sd_uuid).exists()
    paths = {
        role: plain / "blockSD" / d.sd_uuid / "images" / d.disk(role).image / d.disk(role).volume for role in ROLES
    }
    expect(view, conf, plain, paths, "block domain image link")
    link = view.domain_dir / "images" / d.disk("conf").image
    assert link.readlink() == view.run_root / d.sd_uuid / d.disk("conf").image


def test_block_domain_through_the_logical_volumes(tmp_path: Path) -> None:
    view, conf = block(tmp_path, run_links=False)
    d = view.deployment
    assert not list((view.domain_dir / "images").iterdir())  # the blank pool links no images (§1.7)
    paths = {role: tmp_path / "dev" / d.sd_uuid / d.disk(role).volume for role in ROLES}
    assert all(paths[role] == view.volume(role) for role in ROLES)
    for role in ROLES:
        rule = f"logical volume {d.sd_uuid}/{d.disk(role).volume}"
        assert found(conf, view.mount_root)[role] == {"path": str(paths[role]), "rule": rule}


def test_block_domain_missing_volume_lists_the_three_places(tmp_path: Path) -> None:
    view, conf = block(tmp_path, image_links=True)
    d, disk = view.deployment, view.deployment.disk("metadata")
    view.volume("metadata").unlink()  # the LV is gone: every link to it dangles
    result = run_storage_paths(conf, view.mount_root)
    assert result.returncode == 1
    assert "metadata_volume_UUID" in result.stderr and disk.image in result.stderr
    tried = result.stderr.split("tried: ", 1)[1].strip().split(", ")
    assert tried == [
        str(view.run_link("metadata")),
        str(view.mount_root / "blockSD" / d.sd_uuid / "images" / disk.image / disk.volume),
        str(tmp_path / "dev" / d.sd_uuid / disk.volume),
    ]


def test_block_domain_contents(tmp_path: Path) -> None:
    view, conf = block(tmp_path)
    d = view.deployment
    vg = tmp_path / "dev" / d.sd_uuid
    for name in ("metadata", "ids", "leases", "xleases", "inbox", "outbox"):
        assert (view.domain_dir / "dom_md" / name).readlink() == vg / name
    assert (vg / "master").exists() and not (view.domain_dir / "dom_md" / "master").exists()
    side = json.loads((tmp_path / "lvm" / f"{d.sd_uuid}.json").read_text())
    assert side["vg"]["name"] == d.sd_uuid and side["vg"]["tags"][0] == "RHAT_storage_domain"
    # The domain metadata as MDT_ tags: unescaped, the same sealed lines as a file domain's
    lines = [re.sub(r"&(\d+)&", lambda m: chr(int(m.group(1))), tag[4:]) for tag in side["vg"]["tags"][1:]]
    assert lines[-1] == f"_SHA_CKSUM={metadata_checksum(lines[:-1])}"
    values = dict(line.split("=", 1) for line in lines[:-1])
    assert (values["TYPE"], values["VGUUID"], values["SDUUID"]) == ("ISCSI", d.vg_uuid, d.sd_uuid)
    assert "REMOTE_PATH" not in values and values["PV0"].startswith("pv:")
    assert "&44&" in next(tag for tag in side["vg"]["tags"] if tag.startswith("MDT_PV0="))  # commas escaped
    with (vg / "metadata").open("rb") as metadata:
        for disk in d.disks:
            (slot,) = [int(tag[3:]) for tag in side["lvs"][disk.volume]["tags"] if tag.startswith("MD_")]
            assert f"IU_{disk.image}" in side["lvs"][disk.volume]["tags"]
            metadata.seek(MIB + slot * 8 * 1024)  # version 5: 1 MiB + slot x 8 KiB (§1.7)
            values = meta_values(metadata.read(512).rstrip(b"\0").decode())
            assert (values["IMAGE"], values["DISKTYPE"], values["TYPE"]) == (
                disk.image,
                DISKS[disk.role][0],
                "PREALLOCATED",
            )
    for name, lv in side["lvs"].items():
        assert lv["size"] % (128 * MIB) == 0 and (vg / name).stat().st_size == lv["size"]
    conf_lv = view.volume("conf")
    assert conf_lv.stat().st_size == GIB  # an LV keeps its size under dd
    with tarfile.open(fileobj=conf_lv.open("rb")) as archive:
        assert archive.getnames()[-1] == "hosted-engine.conf"
    assert parse_flat_file(conf)["domainType"] == "iscsi"
    assert os.path.realpath(view.run_link("conf")) == str(conf_lv)


# --- OVF_STORE (§1.12 step 7) ----------------------------------------------------------------------


def test_the_optional_ovf_store_pair_is_found_and_read_as_the_engine_left_it(
    nfs: tuple[DeployedHostView, Path],
) -> None:
    view, _ = nfs
    assert find_file_stores(view.domain_dir).stores == ()  # as deploy leaves it: none
    first, second = add_ovf_stores(view)
    stores = {store.volume: store for store in find_file_stores(view.domain_dir).stores}
    assert set(stores) == {first.volume, second.volume}
    assert all(not s.updated and s.last_updated == "" and s.disktype == "OVFS" for s in stores.values())
    path = view.domain_dir / "images" / first.image / first.volume
    assert path.stat().st_size == 128 * MIB and (path.parent / f"{first.volume}.lease").stat().st_size == MIB
    vm = view.deployment.vm_uuid
    tar = update_ovf_store(view, first, b"<ovf first/>", 1_700_000_000)
    update_ovf_store(view, second, b"<ovf second/>", 1_700_000_060)
    assert len(tar) % 10240 == 0 and path.stat().st_size == 128 * MIB  # written in place, not truncated
    best, other = preference_order(find_file_stores(view.domain_dir).stores)
    assert (best.volume, best.updated, best.size, best.last_updated) == (
        second.volume,
        True,
        len(tar),
        java_date(1_700_000_060),
    )
    assert read_member(best, f"{vm}.ovf") == b"<ovf second/>" and read_member(other, f"{vm}.ovf") == b"<ovf first/>"
    with tarfile.open(path) as archive:
        assert archive.getnames() == ["info.json", f"{vm}.ovf", "metadata.json"]
    meta = (path.parent / f"{first.volume}.meta").read_text()
    assert "DISKTYPE=OVFS\n" in meta and meta.endswith("EOF\n") and '"Updated":true' in meta
