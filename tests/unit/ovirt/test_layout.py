"""Finding the hosted-engine volumes from a deployed hosted-engine.conf (spec
ovirt-host-integration.md §1.2, §1.4, §1.7, §1.8, §1.11), on real directory trees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from he_ha.config import ConfigError, HostedEngineConf, load_hosted_engine_conf
from he_ha.main import main
from he_ha.ovirt import VdsmRoots, VolumeNotFound, mount_dir_name, resolve_volume, resolve_volumes

SD = "3f7f5b4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
BLANK = "00000000-0000-0000-0000-000000000000"
VOLS = {
    "metadata": ("2d9d2426-a051-45b5-a482-390def1b4d2f", "0772f336-f9b9-40a2-b384-15d80ab6b071"),
    "lockspace": ("9da832b1-aeaf-43dd-a995-896fc3fa58e8", "49524530-8889-47a4-a1f4-8089c03252b1"),
    "conf": ("8424c3c5-c0e7-4e40-92c2-f4661dffe965", "78638fb3-96ca-41ff-ab13-2864c92315fc"),
}
VMID = "ed1535c9-903b-415c-bd2f-f3346ca4f256"


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        # the table of spec §1.2
        ("nfs.example.com:/exports/he", "nfs.example.com:_exports_he"),
        ("nfs.example.com:/exports/he/", "nfs.example.com:_exports_he"),
        ("10.0.0.5:/srv/he_sd", "10.0.0.5:_srv_he__sd"),
        ("[2001:db8::5]:/he", "[2001:db8::5]:_he"),
        ("gluster1.example.com:/engine", "gluster1.example.com:_engine"),
        ("mon1:6789:/cephfs/he", "mon1:6789:_cephfs_he"),
        # normalisation: "//", "." and ".." collapse; a leading "//" becomes "/"
        ("nfs:/a//b/./c/../d", "nfs:_a_b_d"),
        ("//local/path", "_local_path"),
        # a tail whose "port" is not a valid one is all path
        ("host:0123:/x", "host:0123:_x"),
    ],
)
def test_mount_directory_names(storage: str, expected: str) -> None:
    assert mount_dir_name(storage) == expected


def conf_text(domain_type: str = "nfs", storage: str = "nfs.example.com:/exports/he", extra: str = "") -> str:
    """A hosted-engine.conf as the deploy template writes it: no he-ha key."""
    lines = [
        "fqdn=engine.example.com",
        "vm_disk_id=b3791e36-dfb0-4333-a666-cc7a73d61abe",
        "vm_disk_vol_id=62501681-897d-46ab-8225-c54181022c2b",
        f"vmid={VMID}",
        f"storage={storage}",
        "nfs_version=v4",
        "mnt_options=",
        "conf=/var/run/ovirt-hosted-engine-ha/vm.conf",
        "host_id=1",
        "console=vnc",
        f"domainType={domain_type}",
        f"spUUID={BLANK}",
        f"sdUUID={SD}",
        "connectionUUID=e29cf818-5ee5-46e1-85c1-8aeefa33e95d",
        "ca_cert=/etc/pki/vdsm/libvirt-spice/ca-cert.pem",
        'ca_subject="C=EN, L=Test, O=Test, CN=Test"',
        "vdsm_use_ssl=true",
        "gateway=192.168.1.1",
        "bridge=ovirtmgmt",
    ]
    for role, (image, volume) in VOLS.items():
        lines += [f"{role}_volume_UUID={volume}", f"{role}_image_UUID={image}"]
    return "\n".join(lines) + "\n" + extra


def load(tmp_path: Path, text: str) -> tuple[Path, HostedEngineConf]:
    path = tmp_path / "hosted-engine.conf"
    path.write_text(text)
    return path, load_hosted_engine_conf(path)


def make_file_domain(root: Path, mount_name: str, *, gluster: bool = False, run_links: bool = False) -> Path:
    mount = root / "rhev/data-center/mnt"
    domain = (mount / "glusterSD" if gluster else mount) / mount_name / SD
    for image, volume in VOLS.values():
        (domain / "images" / image).mkdir(parents=True)
        (domain / "images" / image / volume).write_bytes(b"")
        if run_links:
            (root / "run/vdsm/storage" / SD).mkdir(parents=True, exist_ok=True)
            (root / "run/vdsm/storage" / SD / image).symlink_to(domain / "images" / image)
    return domain


def roots(root: Path) -> VdsmRoots:
    return VdsmRoots.from_mount_root(root / "rhev/data-center/mnt")


def test_a_relocated_mount_root_carries_the_run_and_dev_roots(tmp_path: Path) -> None:
    found = roots(tmp_path)
    assert (found.run_root, found.dev_root) == (tmp_path / "run/vdsm/storage", tmp_path / "dev")
    plain = VdsmRoots.from_mount_root(Path("/srv/mounts"))
    assert (plain.run_root, plain.dev_root) == (Path("/run/vdsm/storage"), Path("/dev"))


def test_file_domain_by_the_storage_connection(tmp_path: Path) -> None:
    domain = make_file_domain(tmp_path, "nfs.example.com:_exports_he")
    source, conf = load(tmp_path, conf_text())
    volumes = resolve_volumes(conf, roots(tmp_path), source)
    image, volume = VOLS["metadata"]
    assert volumes.metadata.path == domain / "images" / image / volume
    assert volumes.metadata.rule == "mount of storage=nfs.example.com:/exports/he"
    assert volumes.conf is not None and volumes.conf.path == domain / "images" / VOLS["conf"][0] / VOLS["conf"][1]


def test_the_prepared_run_link_comes_first(tmp_path: Path) -> None:
    make_file_domain(tmp_path, "nfs.example.com:_exports_he", run_links=True)
    source, conf = load(tmp_path, conf_text())
    volumes = resolve_volumes(conf, roots(tmp_path), source)
    image, volume = VOLS["lockspace"]
    assert volumes.lockspace.path == tmp_path / "run/vdsm/storage" / SD / image / volume
    assert volumes.lockspace.rule == "vdsm run link (Image.prepare)"


def test_a_mount_under_another_spelling_is_found_by_listing(tmp_path: Path) -> None:
    # a 3.5-era mount of "server:/path/" kept a trailing "_"; the original's listing finds it
    domain = make_file_domain(tmp_path, "nfs.example.com:_exports_he_")
    make_file_domain(tmp_path / "other", "unrelated")  # another tree: never looked at
    (tmp_path / "rhev/data-center/mnt/blockSD").mkdir()
    source, conf = load(tmp_path, conf_text())
    volume = resolve_volume(conf, "metadata", roots(tmp_path), source)
    assert volume.path == domain / "images" / VOLS["metadata"][0] / VOLS["metadata"][1]
    assert volume.rule == f"domain directory found under {tmp_path / 'rhev/data-center/mnt'}"


def test_glusterfs_lives_under_glusterSD(tmp_path: Path) -> None:
    domain = make_file_domain(tmp_path, "gluster1.example.com:_engine", gluster=True)
    source, conf = load(tmp_path, conf_text("glusterfs", "gluster1.example.com:/engine"))
    assert resolve_volumes(conf, roots(tmp_path), source).metadata.path.is_relative_to(domain)


@pytest.mark.parametrize("domain_type", ["iscsi", "fc"])
def test_block_domain_rules_in_order(tmp_path: Path, domain_type: str) -> None:
    source, conf = load(tmp_path, conf_text(domain_type, ""))
    image, volume = VOLS["metadata"]
    lv = tmp_path / "dev" / SD / volume
    lv.parent.mkdir(parents=True)
    lv.write_bytes(b"")
    found = resolve_volume(conf, "metadata", roots(tmp_path), source)
    assert (found.path, found.rule) == (lv, f"logical volume {SD}/{volume}")
    linked = tmp_path / "rhev/data-center/mnt/blockSD" / SD / "images" / image
    linked.mkdir(parents=True)
    (linked / volume).symlink_to(lv)
    found = resolve_volume(conf, "metadata", roots(tmp_path), source)
    assert (found.path, found.rule) == (linked / volume, "block domain image link")
    run = tmp_path / "run/vdsm/storage" / SD / image
    run.mkdir(parents=True)
    (run / volume).symlink_to(lv)
    found = resolve_volume(conf, "metadata", roots(tmp_path), source)
    assert (found.path, found.rule) == (run / volume, "vdsm run link (Image.prepare)")


def test_a_missing_volume_names_the_key_the_uuids_and_every_path_tried(tmp_path: Path) -> None:
    domain = make_file_domain(tmp_path, "nfs.example.com:_exports_he")
    image, volume = VOLS["lockspace"]
    (domain / "images" / image / volume).unlink()
    source, conf = load(tmp_path, conf_text())
    with pytest.raises(VolumeNotFound) as caught:
        resolve_volumes(conf, roots(tmp_path), source)
    text = str(caught.value)
    assert text.startswith(f"{source}: key 'lockspace_volume_UUID' = '{volume}': the lockspace volume")
    assert f"(image {image}, volume {volume}) of storage domain {SD}" in text
    assert str(tmp_path / "run/vdsm/storage" / SD / image / volume) in text
    assert str(domain / "images" / image / volume) in text


def test_he_ha_path_keys_override_the_layout(tmp_path: Path) -> None:
    source, conf = load(tmp_path, conf_text(extra="metadata_path=/srv/md\nlockspace_path=/srv/ls\n"))
    make_file_domain(tmp_path, "nfs.example.com:_exports_he")
    volumes = resolve_volumes(conf, roots(tmp_path), source)
    assert (volumes.metadata.path, volumes.metadata.rule) == (Path("/srv/md"), "hosted-engine.conf metadata_path")
    assert volumes.lockspace.path == Path("/srv/ls")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace(f"metadata_image_UUID={VOLS['metadata'][0]}", "metadata_image_UUID=None"),
            "key 'metadata_image_UUID': required to find the metadata volume",
        ),
        (lambda t: t.replace(f"sdUUID={SD}", "sdUUID="), "key 'sdUUID': required to find the metadata volume"),
        (lambda t: t.replace("domainType=nfs", "domainType=cephfs"), "key 'domainType' = 'cephfs': not a storage"),
        (
            lambda t: t.replace("storage=nfs.example.com:/exports/he", "storage=[zz]:/x"),
            "key 'storage' = '\\[zz\\]:/x': not a storage connection",
        ),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, edit: object, message: str) -> None:
    source, conf = load(tmp_path, edit(conf_text()))  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        resolve_volumes(conf, roots(tmp_path), source)


def test_no_conf_volume_keys_means_no_conf_volume(tmp_path: Path) -> None:
    text = "\n".join(line for line in conf_text().splitlines() if not line.startswith("conf_")) + "\n"
    make_file_domain(tmp_path, "nfs.example.com:_exports_he")
    source, conf = load(tmp_path, text)
    assert resolve_volumes(conf, roots(tmp_path), source).conf is None


def test_storage_paths_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    domain = make_file_domain(tmp_path, "nfs.example.com:_exports_he")
    source, _ = load(tmp_path, conf_text())
    mount_root = str(tmp_path / "rhev/data-center/mnt")
    assert main(["storage-paths", "--hosted-engine-conf", str(source), "--mount-root", mount_root]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"metadata", "lockspace", "conf"}
    image, volume = VOLS["conf"]
    assert printed["conf"] == {
        "path": str(domain / "images" / image / volume),
        "rule": "mount of storage=nfs.example.com:/exports/he",
    }
    (domain / "images" / image / volume).unlink()
    assert main(["storage-paths", "--hosted-engine-conf", str(source), "--mount-root", mount_root]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "key 'conf_volume_UUID'" in captured.err
