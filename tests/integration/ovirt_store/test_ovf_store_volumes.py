"""OVF_STORE volumes written the way the engine writes them, on a file-domain tree as VDSM
mounts it (engine_store.py), read by he-ha: the store chosen as the spec recommends (§8: the
updated one with the newest update time, the other on failure), every failure naming the
volume, and ``he-ha vm-conf`` run as its own process on the samples and on the store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from he_ha.config import load_hosted_engine_conf
from he_ha.devcluster.deployed import ovf_store_tar
from he_ha.ovirt.domain_meta import metadata_slot_offset
from he_ha.ovirt.layout import VdsmRoots
from he_ha.ovirt.ovf import convert_ovf
from he_ha.ovirt.ovf_store import (
    OvfStoreError,
    StoreScan,
    file_domain_dir,
    find_domain_stores,
    find_file_stores,
    read_vm_conversion,
)
from tests.integration.ovirt_store.engine_store import (
    MIB,
    OVF_STORE_SIZE,
    FileDomain,
    description,
    java_date,
    meta_text,
)
from tests.support.ovf_samples import OVF_SAMPLES

SAMPLES = OVF_SAMPLES
OVF_42 = SAMPLES / "ovf_test_v4.2.xml"
VM_ID = "eccb9cb6-affd-4806-8200-708370581227"  # the 4.2 sample's VM
NOW = time.time()


def ovf(memory: int = 16384) -> bytes:
    text = OVF_42.read_text()
    return text.replace(
        "<rasd:VirtualQuantity>16384</rasd:VirtualQuantity>", f"<rasd:VirtualQuantity>{memory}</rasd:VirtualQuantity>"
    ).encode()


def vm_conf(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "he_ha.main", "vm-conf", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def from_store(domain: FileDomain) -> subprocess.CompletedProcess[str]:
    return vm_conf(
        "--from-store", "--hosted-engine-conf", str(domain.conf_path), "--mount-root", str(domain.mount_root)
    )


@pytest.fixture
def domain(tmp_path: Path) -> FileDomain:
    return FileDomain(tmp_path, VM_ID).create()


def scan(domain: FileDomain) -> StoreScan:
    conf = load_hosted_engine_conf(domain.conf_path)
    return find_domain_stores(conf, VdsmRoots.from_mount_root(domain.mount_root), domain.conf_path)


def test_domain_directory_is_found_through_the_layout(domain: FileDomain) -> None:
    conf = load_hosted_engine_conf(domain.conf_path)
    assert file_domain_dir(conf, VdsmRoots.from_mount_root(domain.mount_root), domain.conf_path) == domain.domain_dir


def test_the_volume_is_as_the_engine_leaves_it(domain: FileDomain) -> None:
    store = domain.new_ovf_store()
    written = domain.engine_update(store, ovf(), NOW)
    path = domain.volume_path(store)
    assert path.stat().st_size == OVF_STORE_SIZE and path.stat().st_blocks * 512 < 4 * MIB  # sparse
    meta = domain.read_meta(store)
    assert meta["DISKTYPE"] == "OVFS" and json.loads(meta["DESCRIPTION"])["Size"] == len(written)
    # the original's extraction, dd | tar, reads the same archive he-ha reads
    if shutil.which("tar") and shutil.which("dd"):
        out = subprocess.run(
            f"dd if='{path}' bs=4k status=none | tar -xOf - {VM_ID}.ovf",
            shell=True,
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert out.stdout == ovf()


def test_the_updated_store_is_chosen_over_one_caught_mid_upload(domain: FileDomain) -> None:
    good = domain.new_ovf_store(image="00000000-aaaa-4aaa-8aaa-000000000001")
    uploading = domain.new_ovf_store(image="ffffffff-aaaa-4aaa-8aaa-000000000002")  # found last: the original's pick
    domain.engine_update(good, ovf(), NOW - 3600)
    domain.engine_update(uploading, ovf(20480), NOW - 7200)
    domain.engine_update(uploading, ovf(32768), NOW, finish=False, partial=b"\x8b\x1f garbage " * 5000)
    assert json.loads(domain.read_meta(uploading)["DESCRIPTION"])["Updated"] is False

    stores = scan(domain)
    assert {s.volume for s in stores.stores} == {good.volume, uploading.volume}  # HE disks are not stores
    found = read_vm_conversion(stores, VM_ID)
    assert found.store.volume == good.volume and found.failures == ()
    assert found.value.values["memSize"] == "16384" and found.value.startable

    result = from_store(domain)
    assert result.returncode == 0, result.stderr
    assert result.stdout == convert_ovf(ovf()).text
    assert f"from OVF_STORE volume {good.volume}" in result.stderr
    assert f"updated {java_date(NOW - 3600)}" in result.stderr


def test_the_newest_updated_store_wins(domain: FileDomain) -> None:
    older, newer = domain.new_ovf_store(), domain.new_ovf_store()
    domain.engine_update(older, ovf(16384), NOW - 3600)
    domain.engine_update(newer, ovf(20480), NOW)
    found = read_vm_conversion(scan(domain), VM_ID)
    assert found.store.volume == newer.volume and found.value.values["memSize"] == "20480"


def test_the_other_store_when_the_newest_is_damaged(domain: FileDomain) -> None:
    older, newer = domain.new_ovf_store(), domain.new_ovf_store()
    domain.engine_update(older, ovf(16384), NOW - 3600)
    domain.engine_update(newer, ovf(20480), NOW)
    with domain.volume_path(newer).open("r+b") as f:
        f.write(b"\0" * 100 + b"damaged")  # the first header's name and checksum no longer agree
    found = read_vm_conversion(scan(domain), VM_ID)
    assert found.store.volume == older.volume and found.value.values["memSize"] == "16384"
    assert len(found.failures) == 1
    assert f"OVF_STORE volume {newer.volume}" in found.failures[0] and "bad checksum" in found.failures[0]

    result = from_store(domain)
    assert result.returncode == 0, result.stderr
    assert "memSize=16384\n" in result.stdout
    assert f"skipped: OVF_STORE volume {newer.volume}" in result.stderr


def test_a_malformed_ovf_in_the_newest_store_falls_back(domain: FileDomain) -> None:
    older, newer = domain.new_ovf_store(), domain.new_ovf_store()
    domain.engine_update(older, ovf(), NOW - 3600)
    domain.engine_update(newer, ovf()[:3000], NOW)  # cut: not XML
    found = read_vm_conversion(scan(domain), VM_ID)
    assert found.store.volume == older.volume
    assert "not well-formed XML" in found.failures[0] and newer.volume in found.failures[0]


def test_both_stores_bad_is_one_clear_error(domain: FileDomain) -> None:
    uploading, wrong = domain.new_ovf_store(), domain.new_ovf_store()
    domain.engine_update(uploading, ovf(), NOW, finish=False, partial=b"\xff" * 70000)
    other_vm = str(uuid.uuid4())
    data = ovf_store_tar(other_vm, b"<x/>", domain.sd, java_date(NOW))  # an archive without our VM
    with domain.volume_path(wrong).open("r+b") as f:
        f.write(data)
    domain.set_meta(wrong, description(domain.sd, updated=True, when=java_date(NOW), size=len(data)))

    with pytest.raises(OvfStoreError) as caught:
        read_vm_conversion(scan(domain), VM_ID)
    message = str(caught.value)
    assert f"no usable {VM_ID}.ovf in the 2 OVF_STORE volume(s)" in message
    assert f"OVF_STORE volume {wrong.volume}" in message and f"the archive has no member {VM_ID}.ovf" in message
    assert f"OVF_STORE volume {uploading.volume}" in message and "being updated (Updated false" in message

    result = from_store(domain)
    assert result.returncode == 1 and result.stdout == ""
    assert wrong.volume in result.stderr and uploading.volume in result.stderr


def test_no_store_and_deleted_images(domain: FileDomain) -> None:
    with pytest.raises(OvfStoreError, match=r'no OVF_STORE volume on .*"Disk Description":"OVF_STORE"'):
        read_vm_conversion(scan(domain), VM_ID)
    store = domain.new_ovf_store()
    domain.engine_update(store, ovf(), NOW)
    images = domain.domain_dir / "images"
    (images / store.image).rename(images / f"_remove_me_{store.image}")  # VDSM deleting the image
    assert find_file_stores(domain.domain_dir).stores == ()


def test_a_never_updated_store_is_used_only_as_the_last_resort(domain: FileDomain) -> None:
    store = domain.new_ovf_store()
    domain.engine_update(store, ovf(), NOW - 60)
    domain.engine_update(store, ovf(20480), NOW, finish=False, partial=b"")  # Updated:false, old archive intact
    found = read_vm_conversion(scan(domain), VM_ID)
    assert found.store.volume == store.volume and not found.store.updated
    assert found.value.values["memSize"] == "16384"


# --- the command on the samples ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "code", "first", "reason"),
    [
        ("ovf_test.xml", 3, "vmId=50e59bbd-f829-4761-ba1b-6db1a6acc3b8", "no EngineXml"),
        ("ovf_test_max_vcpu.xml", 3, "vmId=50e59bbd-f829-4761-ba1b-6db1a6acc3b8", "no EngineXml"),
        ("ovf_test_v4.2.xml", 0, "xmlBase64=PD94bWwgdmVyc2lvbj0nMS4wJyBlbmNvZGluZz0nVVRGLTgnPz4K", None),
        ("ovf_test_v4.2_unsafe.xml", 3, "vmId=b4491372-8f8a-4e08-8524-f8fb986a548a", "no <lease> under <devices>"),
    ],
)
def test_vm_conf_from_ovf_on_each_sample(sample: str, code: int, first: str, reason: str | None) -> None:
    result = vm_conf("--from-ovf", str(SAMPLES / sample))
    assert result.returncode == code, result.stderr
    assert result.stdout.splitlines()[0].startswith(first)
    assert result.stdout == convert_ovf((SAMPLES / sample).read_bytes()).text
    if reason:
        assert "refused: he-ha will not start VM" in result.stderr and reason in result.stderr
    else:
        assert "refused" not in result.stderr


def test_vm_conf_from_ovf_names_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ovf"
    bad.write_text(OVF_42.read_text().replace("<rasd:num_of_sockets>12<", "<rasd:num_of_sockets>x<"))
    result = vm_conf("--from-ovf", str(bad))
    assert result.returncode == 1 and result.stdout == ""
    assert f"{bad}: rasd:num_of_sockets is 'x', not a whole number" in result.stderr
    missing = vm_conf("--from-ovf", str(tmp_path / "missing.ovf"))
    assert missing.returncode == 1 and "No such file" in missing.stderr
    no_daemon = vm_conf("--admin-socket", str(tmp_path / "admin.sock"))  # the form asking the daemon
    assert no_daemon.returncode == 1 and "does not answer" in no_daemon.stderr


# --- a block domain ----------------------------------------------------------------------------


def test_vm_conf_from_store_on_a_block_domain(tmp_path: Path) -> None:
    sd, image, volume = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    lvs = tmp_path / "dev" / sd
    lvs.mkdir(parents=True)
    data = ovf_store_tar(VM_ID, ovf(), sd, java_date(NOW))
    with (lvs / volume).open("wb") as f:
        f.truncate(OVF_STORE_SIZE)
        f.write(data)
    with (lvs / "metadata").open("wb") as f:
        f.truncate(128 * MIB)
        f.seek(metadata_slot_offset(5, 5))
        desc = description(sd, updated=True, when=java_date(NOW), size=len(data))
        f.write(meta_text(sd, image, desc, "OVFS", OVF_STORE_SIZE).encode().ljust(512, b"\0"))
    (tmp_path / "lvm").mkdir()
    (tmp_path / "lvm" / f"{sd}.json").write_text(
        json.dumps(
            {
                "vg": {"name": sd, "tags": ["RHAT_storage_domain", "MDT_VERSION=5", f"MDT_SDUUID={sd}"]},
                "lvs": {"metadata": {"tags": []}, volume: {"tags": [f"IU_{image}", "MD_5", "PU_" + "0" * 8]}},
            }
        )
    )
    conf = tmp_path / "hosted-engine.conf"
    conf.write_text(f"vmid={VM_ID}\nhost_id=1\ndomainType=iscsi\nstorage=192.0.2.10\nsdUUID={sd}\ngateway=192.0.2.1\n")
    mount_root = tmp_path / "rhev/data-center/mnt"
    result = vm_conf("--from-store", "--hosted-engine-conf", str(conf), "--mount-root", str(mount_root))
    assert result.returncode == 0, result.stderr
    assert result.stdout == convert_ovf(ovf()).text
    assert f"from OVF_STORE volume {volume} (image {image}, {lvs / volume})" in result.stderr

    (tmp_path / "lvm" / f"{sd}.json").unlink()
    result = vm_conf("--from-store", "--hosted-engine-conf", str(conf), "--mount-root", str(mount_root))
    assert result.returncode == 1 and f"cannot read the LV tags file {tmp_path / 'lvm' / sd}.json" in result.stderr
