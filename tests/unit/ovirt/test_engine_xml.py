"""The engine's domain XML made startable as VDSM and the hosted-engine hook would (spec
ovirt-host-integration.md §4), with the real engine XML of ovf_test_v4.2.xml resolved against
file- and block-domain trees laid out as VDSM leaves them (§1.4, §1.6, §1.7, §1.12)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from he_ha.ovirt.domain_meta import load_block_tags
from he_ha.ovirt.engine_xml import (
    EngineXmlError,
    HostFacts,
    PlaceholderError,
    PreparedVolume,
    ResolveContext,
    UnresolvedVolume,
    VolumeLookupError,
    _lease_spec,
    block_volume_lookup,
    file_volume_lookup,
    read_host_facts,
    resolve_engine_xml,
    vdsm_network_xml,
)
from he_ha.ovirt.layout import VdsmRoots
from he_ha.vm import DomainXmlError, LeaseSpec
from tests.support.elements import must_find
from tests.support.ovf_samples import OVF_42

OVF = OVF_42
NS = "{http://ovirt.org/vm/1.0}"
BLANK = "00000000-0000-0000-0000-000000000000"
MIB = 1024 * 1024
HOST = HostFacts("RHEL", "4.20.0-1.el9", "4c4c4544-0051-3010-8052-b4c04f4b4e32")
MOUNT = "nfs.example.com:_exports_he"
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+:")


def engine_xml() -> str:
    (element,) = [e for e in ET.parse(OVF).getroot().iter() if e.tag.rsplit("}", 1)[-1] == "EngineXml"]
    assert element.text is not None
    return element.text


def disk_ids(xml: str) -> tuple[str, str, str]:
    root = ET.fromstring(xml)
    (device,) = [d for d in root.iter(f"{NS}device") if d.get("devtype") == "disk"]
    domain, image, volume = (device.findtext(f"{NS}{key}") for key in ("domainID", "imageID", "volumeID"))
    assert domain is not None and image is not None and volume is not None
    return domain, image, volume


SD, IMG, VOL = disk_ids(engine_xml())


def meta_text(fmt: str = "RAW", legality: str = "LEGAL") -> str:
    values = {
        "CAP": str(64 * MIB),
        "CTIME": "1712345678",
        "DISKTYPE": "HEVD",
        "DOMAIN": SD,
        "FORMAT": fmt,
        "GEN": "0",
        "IMAGE": IMG,
        "LEGALITY": legality,
        "PUUID": BLANK,
        "SEQ": "0",
        "TYPE": "SPARSE",
        "VOLTYPE": "LEAF",
        "DESCRIPTION": '{"DiskAlias":"he_virtio_disk","DiskDescription":"Hosted-Engine disk"}',
    }
    return "".join(f"{key}={values[key]}\n" for key in sorted(values)) + "EOF\n"


def sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        file.truncate(size)
    return path


def file_tree(root: Path, fmt: str = "RAW", lease: bool = True) -> Path:
    """R/rhev/data-center/mnt/<mount>/<SD>/images/<IMG>/<VOL> with .meta and .lease (§1.4)."""
    image = root / "rhev/data-center/mnt" / MOUNT / SD / "images" / IMG
    sparse(image / VOL, 64 * MIB)
    (image / f"{VOL}.meta").write_text(meta_text(fmt))
    if lease:
        sparse(image / f"{VOL}.lease", MIB)
    (root / "rhev/data-center/mnt" / MOUNT / SD / "dom_md").mkdir(parents=True)
    return image / VOL


def block_tree(root: Path, slot: int = 5, alignment: int | None = MIB, fmt: str = "RAW", leases: bool = True) -> Path:
    """R/dev/<SD>/{<VOL>,leases,metadata}, version-5 metadata slot, tags in R/lvm/<SD>.json (§1.7, §1.12)."""
    vg = root / "dev" / SD
    sparse(vg / VOL, 128 * MIB)
    if leases:
        sparse(vg / "leases", 2048 * MIB)
    sparse(vg / "metadata", 128 * MIB)
    with (vg / "metadata").open("r+b") as file:
        file.seek(MIB + slot * 8192)
        file.write(meta_text(fmt).encode().ljust(512, b"\0"))
    vg_tags = ["RHAT_storage_domain", "MDT_VERSION=5", f"MDT_SDUUID={SD}", "MDT_DESCRIPTION=hosted&95&storage"]
    if alignment is not None:
        vg_tags.append(f"MDT_ALIGNMENT={alignment}")
    side = root / "lvm" / f"{SD}.json"
    side.parent.mkdir(parents=True)
    side.write_text(
        json.dumps(
            {
                "vg": {"name": SD, "tags": vg_tags},
                "lvs": {VOL: {"tags": [f"IU_{IMG}", f"MD_{slot}", f"PU_{BLANK}"]}, "leases": {"tags": []}},
            }
        )
    )
    return side


def roots(root: Path) -> VdsmRoots:
    return VdsmRoots.from_mount_root(root / "rhev/data-center/mnt")


def file_context(root: Path, host: HostFacts = HOST) -> ResolveContext:
    return ResolveContext(host, SD, file_volume_lookup(roots(root), "nfs", "nfs.example.com:/exports/he"))


def block_context(root: Path) -> ResolveContext:
    return ResolveContext(HOST, SD, block_volume_lookup(roots(root), SD, load_block_tags(root / "lvm" / f"{SD}.json")))


def no_placeholders(xml: str) -> None:
    for element in ET.fromstring(xml).iter():
        for value in [element.text or "", *element.attrib.values()]:
            assert not PLACEHOLDER.match(value.strip()), (element.tag, value)
    for token in ("OS-NAME:", "OS-VERSION:", "HOST-SERIAL:", "LEASE-PATH:", "LEASE-OFFSET:"):
        assert token not in xml


def the_disk(root: ET.Element) -> ET.Element:
    (disk,) = [d for d in root.iterfind("devices/disk") if d.get("device") == "disk"]
    return disk


def sysinfo(root: ET.Element) -> dict[str | None, str | None]:
    return {entry.get("name"): entry.text for entry in root.iterfind("sysinfo/system/entry")}


def hook_applied(root: ET.Element) -> None:
    for tag in ("on_poweroff", "on_reboot", "on_crash"):
        assert [e.text for e in root.findall(tag)] == ["destroy"], tag
    channels = [
        c
        for c in root.iterfind("devices/channel")
        if must_find(c, "target").get("name") == "org.ovirt.hosted-engine-setup.0"
    ]
    assert len(channels) == 1
    uuid = root.findtext("uuid")
    assert must_find(channels[0], "source").attrib == {
        "mode": "bind",
        "path": f"/var/lib/libvirt/qemu/channels/{uuid}.org.ovirt.hosted-engine-setup.0",
    }


def test_the_sample_has_what_the_spec_says() -> None:
    xml = engine_xml()
    assert (SD, IMG, VOL) == (
        "ce880525-a44b-4248-8b63-d9e11b2f123a",
        "69a2b8c2-8d1c-4014-8f75-a85c16bc5b71",
        "3ab9fff0-9aa1-4c2e-ad67-5e25d05cb86e",
    )
    assert f"LEASE-PATH:{VOL}:{SD}" in xml and f"LEASE-OFFSET:{VOL}:{SD}" in xml
    assert f"/rhev/data-center/{BLANK}/{SD}/images/{IMG}/{VOL}" in xml


def test_file_domain(tmp_path: Path) -> None:
    volume = file_tree(tmp_path)
    result = resolve_engine_xml(engine_xml(), file_context(tmp_path))
    no_placeholders(result.xml)
    root = ET.fromstring(result.xml)
    assert sysinfo(root) == {
        "manufacturer": "oVirt",
        "product": "RHEL",
        "version": "4.20.0-1.el9",
        "serial": HOST.serial,
        "uuid": "eccb9cb6-affd-4806-8200-708370581227",
    }
    disk = the_disk(root)
    assert disk.get("type") == "file"
    assert must_find(disk, "source").get("file") == str(volume) and "dev" not in must_find(disk, "source").attrib
    assert must_find(disk, "driver").attrib == {
        "name": "qemu",
        "io": "threads",
        "type": "raw",
        "error_policy": "stop",
        "cache": "none",
    }
    assert must_find(disk, "source/seclabel").attrib == {"type": "none", "relabel": "no", "model": "dac"}
    cdrom = next(d for d in root.iterfind("devices/disk") if d.get("device") == "cdrom")
    assert must_find(cdrom, "source").attrib == {"file": "", "startupPolicy": "optional"}  # a plain path: untouched
    (lease,) = root.iterfind("devices/lease")
    assert (lease.findtext("key"), lease.findtext("lockspace")) == (VOL, SD)
    assert must_find(lease, "target").attrib == {"path": f"{volume}.lease", "offset": "0"}
    assert result.lease == LeaseSpec(SD, VOL, Path(f"{volume}.lease"), 0)
    assert result.leases == result.volume_leases == (result.lease,)
    hook_applied(root)
    assert result.networks == {"vdsm-ovirtmgmt"} and result.bridges == {"ovirtmgmt"}
    assert must_find(root, "devices/graphics/listen").get("network") == "vdsm-ovirtmgmt"  # names left as written
    assert [(v.path, v.disk_type, v.format) for v in result.volumes] == [(volume, "file", "RAW")]
    assert any(
        line.startswith("disk vda: type=file file=/rhev/data-center/") and str(volume) in line
        for line in result.changes
    )
    assert "sysinfo serial: 'HOST-SERIAL:' -> '4c4c4544-0051-3010-8052-b4c04f4b4e32'" in result.changes
    assert root.find(f"metadata/{NS}vm") is not None and "ns0:" not in result.xml  # prefixes kept


@pytest.mark.parametrize(
    ("alignment", "slot", "offset"),
    [
        (MIB, 5, 110100480),  # the spec's example (§1.7)
        (None, 5, 110100480),  # no ALIGNMENT tag (domain version < 5): 1 MiB
        (2 * MIB, 1, 101 * 2 * MIB),
    ],
)
def test_block_domain(tmp_path: Path, alignment: int | None, slot: int, offset: int) -> None:
    block_tree(tmp_path, slot=slot, alignment=alignment)
    result = resolve_engine_xml(engine_xml(), block_context(tmp_path))
    no_placeholders(result.xml)
    root = ET.fromstring(result.xml)
    disk = the_disk(root)
    lv = tmp_path / "dev" / SD / VOL
    assert disk.get("type") == "block"
    assert must_find(disk, "source").get("dev") == str(lv) and "file" not in must_find(disk, "source").attrib
    assert must_find(disk, "driver").get("type") == "raw"
    assert must_find(root, "devices/lease/target").attrib == {
        "path": str(tmp_path / "dev" / SD / "leases"),
        "offset": str(offset),
    }
    assert result.lease == LeaseSpec(SD, VOL, tmp_path / "dev" / SD / "leases", offset)
    assert sysinfo(root)["product"] == "RHEL"
    hook_applied(root)


@pytest.mark.parametrize("layout", ["file", "block"])
def test_cow_volume_is_qcow2(tmp_path: Path, layout: str) -> None:
    if layout == "file":
        file_tree(tmp_path, fmt="COW")
        context = file_context(tmp_path)
    else:
        block_tree(tmp_path, fmt="COW")
        context = block_context(tmp_path)
    root = ET.fromstring(resolve_engine_xml(engine_xml(), context).xml)
    assert must_find(the_disk(root), "driver").get("type") == "qcow2"


def test_on_reboot_removed_then_destroy_added(tmp_path: Path) -> None:
    file_tree(tmp_path)
    xml = engine_xml().replace("</devices>", "</devices><on_reboot>restart</on_reboot><on_crash>restart</on_crash>")
    result = resolve_engine_xml(xml, file_context(tmp_path))
    hook_applied(ET.fromstring(result.xml))
    assert "removed <on_reboot>restart</on_reboot>" in result.changes
    assert "replaced <on_crash>restart</on_crash>" in result.changes


def test_disk_found_by_path_without_metadata(tmp_path: Path) -> None:
    volume = file_tree(tmp_path)
    xml = re.sub(r'<ovirt-vm:device devtype="disk".*?</ovirt-vm:device>', "", engine_xml())
    assert "ovirt-vm:domainID" not in xml
    result = resolve_engine_xml(xml, file_context(tmp_path))
    assert must_find(the_disk(ET.fromstring(result.xml)), "source").get("file") == str(volume)
    assert result.lease is not None and result.lease.path == Path(f"{volume}.lease")


def test_resolving_twice_changes_nothing_more(tmp_path: Path) -> None:
    file_tree(tmp_path)
    once = resolve_engine_xml(engine_xml(), file_context(tmp_path))
    twice = resolve_engine_xml(once.xml, file_context(tmp_path))
    assert twice.xml == once.xml and twice.lease == once.lease


PLAIN = """<domain type="kvm">
  <name>plain</name><uuid>11111111-2222-4333-8444-555555555555</uuid><memory unit="KiB">1048576</memory>
  <!-- a comment -->
  <sysinfo type="smbios"><system><entry name="product">oVirt Node</entry><entry name="serial">abc</entry></system></sysinfo>
  <os><type arch="x86_64">hvm</type></os>
  <devices>
    <disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="/var/lib/images/plain.qcow2"/>
      <target dev="vda" bus="virtio"/></disk>
    <interface type="network"><source network="vdsm-display"/><mac address="AA:BB:CC:DD:EE:FF"/></interface>
    <lease><key>vm-lease</key><lockspace>LOCKSPACE</lockspace><target path="/srv/xleases" offset="3145728"/></lease>
  </devices>
  <description>PROD-ENGINE: free text is not a placeholder</description>
</domain>"""


def canonical(element: ET.Element) -> str:
    return ET.canonicalize(ET.tostring(element, encoding="unicode"), strip_text=True)


def test_xml_without_placeholders_passes_through(tmp_path: Path) -> None:
    xml = PLAIN.replace("LOCKSPACE", SD)
    result = resolve_engine_xml(xml, file_context(tmp_path))
    root = ET.fromstring(result.xml)
    hook_applied(root)
    for tag in ("on_poweroff", "on_reboot", "on_crash"):
        root.remove(must_find(root, tag))
    devices = must_find(root, "devices")
    devices.remove(devices.findall("channel")[-1])
    assert canonical(root) == canonical(ET.fromstring(xml))
    assert result.volumes == () and result.volume_leases == () and result.lease is None
    assert result.leases == (LeaseSpec(SD, "vm-lease", Path("/srv/xleases"), 3145728),)
    assert result.networks == {"vdsm-display"}
    without_hook = resolve_engine_xml(
        xml, ResolveContext(HOST, SD, file_volume_lookup(roots(tmp_path)), hosted_engine_hook=False)
    )
    assert canonical(ET.fromstring(without_hook.xml)) == canonical(ET.fromstring(xml))
    assert "<!-- a comment -->" in without_hook.xml


@pytest.mark.parametrize(
    ("old", "new", "token", "where"),
    [
        ("<model>Broadwell</model>", "<model>CPU-MODEL:</model>", "CPU-MODEL:", "domain/cpu/model"),
        (
            '<entry name="manufacturer">oVirt</entry>',
            '<entry name="manufacturer">HOST-VENDOR:x</entry>',
            "HOST-VENDOR:x",
            "domain/sysinfo/system/entry[@name='manufacturer']",
        ),
        ('keymap="en-us"', 'keymap="KEY-MAP:"', "KEY-MAP:", "domain/devices/graphics/@keymap"),
        # a known placeholder where VDSM does not replace it
        (
            '<entry name="serial">HOST-SERIAL:</entry>',
            '<entry name="serial">OS-NAME:</entry>',
            "OS-NAME:",
            "domain/sysinfo/system/entry[@name='serial']",
        ),
    ],
)
def test_unknown_or_misplaced_placeholder_is_refused(
    tmp_path: Path, old: str, new: str, token: str, where: str
) -> None:
    file_tree(tmp_path)
    xml = engine_xml()
    assert old in xml
    with pytest.raises(PlaceholderError) as caught:
        resolve_engine_xml(xml.replace(old, new), file_context(tmp_path))
    assert caught.value.placeholder == token and caught.value.where == where
    assert token in str(caught.value) and where in str(caught.value)
    assert isinstance(caught.value, DomainXmlError)


def test_unresolvable_disk_names_the_volume_and_the_paths(tmp_path: Path) -> None:
    (tmp_path / "rhev/data-center/mnt" / MOUNT / SD / "images").mkdir(parents=True)
    with pytest.raises(UnresolvedVolume) as caught:
        resolve_engine_xml(engine_xml(), file_context(tmp_path))
    error = caught.value
    assert isinstance(error, PlaceholderError)
    assert (error.sd, error.image, error.volume) == (SD, IMG, VOL)
    expected = tmp_path / "rhev/data-center/mnt" / MOUNT / SD / "images" / IMG / VOL
    assert error.tried == (expected,)
    for text in (SD, IMG, VOL, str(expected), "disk vda", f"/rhev/data-center/{BLANK}/{SD}"):
        assert text in str(error)


def test_unresolvable_block_volume(tmp_path: Path) -> None:
    block_tree(tmp_path)
    (tmp_path / "dev" / SD / VOL).unlink()  # the LV is not active
    with pytest.raises(UnresolvedVolume, match="not active") as caught:
        resolve_engine_xml(engine_xml(), block_context(tmp_path))
    assert caught.value.tried == (tmp_path / "dev" / SD / VOL,)


def test_missing_lease_file(tmp_path: Path) -> None:
    volume = file_tree(tmp_path, lease=False)
    with pytest.raises(PlaceholderError) as caught:
        resolve_engine_xml(engine_xml(), file_context(tmp_path))
    assert caught.value.placeholder == f"LEASE-PATH:{VOL}:{SD}"
    assert f"no lease file {volume}.lease" in str(caught.value)


def test_missing_leases_lv(tmp_path: Path) -> None:
    block_tree(tmp_path, leases=False)
    with pytest.raises(PlaceholderError, match="no leases LV") as caught:
        resolve_engine_xml(engine_xml(), block_context(tmp_path))
    assert caught.value.placeholder == f"LEASE-PATH:{VOL}:{SD}"


def test_lease_of_a_volume_no_disk_has(tmp_path: Path) -> None:
    file_tree(tmp_path)
    other = "5d0b7a1e-0000-4000-8000-000000000001"
    xml = engine_xml().replace(f"<key>{VOL}</key>", f"<key>{other}</key>").replace(f"{VOL}:{SD}", f"{other}:{SD}")
    with pytest.raises(PlaceholderError, match=f"no disk of the domain is volume {other}") as caught:
        resolve_engine_xml(xml, file_context(tmp_path))
    assert caught.value.placeholder == f"LEASE-PATH:{other}:{SD}"


def test_lease_placeholder_naming_other_ids(tmp_path: Path) -> None:
    file_tree(tmp_path)
    xml = engine_xml().replace(f'path="LEASE-PATH:{VOL}:{SD}"', f'path="LEASE-PATH:{VOL}:{BLANK}"')
    with pytest.raises(PlaceholderError, match=f"names {VOL}:{BLANK}, not the lease's {VOL}:{SD}"):
        resolve_engine_xml(xml, file_context(tmp_path))


def test_unknown_host_fact(tmp_path: Path) -> None:
    file_tree(tmp_path)
    with pytest.raises(PlaceholderError, match="host UUID is unknown") as caught:
        resolve_engine_xml(engine_xml(), file_context(tmp_path, HostFacts("RHEL", "9-1", None)))
    assert caught.value.placeholder == "HOST-SERIAL:"


def test_lease_outside_the_hosted_engine_lockspace(tmp_path: Path) -> None:
    with pytest.raises(EngineXmlError, match=f"lockspace other-sd; he-ha joins only .*{SD}"):
        resolve_engine_xml(PLAIN.replace("LOCKSPACE", "other-sd"), file_context(tmp_path))


def test_not_a_domain() -> None:
    def no_volume(*ids: str) -> PreparedVolume:
        raise AssertionError(f"volume {ids} looked up for XML that is no domain")

    context = ResolveContext(HOST, SD, no_volume)
    with pytest.raises(EngineXmlError, match="not well-formed"):
        resolve_engine_xml("<domain>", context)
    with pytest.raises(EngineXmlError, match="expected <domain>"):
        resolve_engine_xml("<network/>", context)


def test_lease_without_target_is_named_not_an_attribute_error() -> None:
    """resolve_engine_xml gives every <lease> a <target> before reading it; read without one,
    the lease is refused by name instead of failing on a missing element."""
    lease = ET.fromstring(f"<lease><lockspace>{SD}</lockspace><key>{VOL}</key></lease>")
    with pytest.raises(EngineXmlError, match=f"engine XML: lease {VOL} has no <target>"):
        _lease_spec(lease, "engine XML")


def test_block_lookup_checks_the_tags(tmp_path: Path) -> None:
    side = block_tree(tmp_path)
    lookup = block_volume_lookup(roots(tmp_path), SD, load_block_tags(side))
    info = lookup(SD, IMG, VOL)
    assert (info.disk_type, info.format, info.lease_offset) == ("block", "RAW", 105 * MIB)
    assert load_block_tags(side).metadata()["DESCRIPTION"] == "hosted_storage"  # &95& unescaped
    with pytest.raises(VolumeLookupError, match=r"image tags are \['" + IMG):
        lookup(SD, "7e57a11e-0000-4000-8000-000000000002", VOL)
    with pytest.raises(VolumeLookupError, match="only storage domain"):
        lookup(BLANK, IMG, VOL)
    data = json.loads(side.read_text())
    data["lvs"][VOL]["tags"] = [f"IU_{IMG}"]
    side.write_text(json.dumps(data))
    with pytest.raises(VolumeLookupError, match="no single MD_<slot> tag"):
        block_volume_lookup(roots(tmp_path), SD, load_block_tags(side))(SD, IMG, VOL)


def test_file_lookup_refuses_illegal_and_unknown_formats(tmp_path: Path) -> None:
    volume = file_tree(tmp_path)
    lookup = file_volume_lookup(roots(tmp_path))  # no storage: found by listing the mount root
    assert lookup(SD, IMG, VOL).path == volume
    volume.with_name(f"{VOL}.meta").write_text(meta_text(legality="ILLEGAL"))
    with pytest.raises(VolumeLookupError, match="LEGALITY=ILLEGAL"):
        lookup(SD, IMG, VOL)
    volume.with_name(f"{VOL}.meta").write_text(meta_text(fmt="QCOW"))
    with pytest.raises(VolumeLookupError, match="FORMAT='QCOW'"):
        lookup(SD, IMG, VOL)
    volume.with_name(f"{VOL}.meta").unlink()
    with pytest.raises(VolumeLookupError, match="metadata cannot be read"):
        lookup(SD, IMG, VOL)


def test_volume_info_checks_its_values() -> None:
    with pytest.raises(ValueError):
        PreparedVolume(SD, IMG, VOL, Path("/v"), "file", "QCOW2")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_host_facts_rhel_with_vdsm_id(tmp_path: Path) -> None:
    write(tmp_path / "etc/redhat-release", "CentOS Stream release 9\n")
    write(tmp_path / "etc/vdsm/vdsm.id", "a1b2c3d4-0000-4000-8000-00000000000a\nsecond line\n")
    write(tmp_path / "sys/class/dmi/id/product_uuid", "4C4C4544-0051-3010-8052-B4C04F4B4E32\n")
    asked: list[str] = []

    def rpm_query(path: str) -> tuple[str, str]:
        asked.append(path)
        return "9.0", "21.el9"

    facts = read_host_facts(tmp_path, rpm_query=rpm_query)
    assert facts == HostFacts("RHEL", "9.0-21.el9", "a1b2c3d4-0000-4000-8000-00000000000a")
    assert asked == ["/etc/redhat-release"]


def test_host_facts_node_and_dmi(tmp_path: Path) -> None:
    write(tmp_path / "etc/redhat-release", "CentOS Stream release 8\n")
    write(tmp_path / "etc/ovirt-node-ng-release", "oVirt Node 4.5.5\n")
    write(tmp_path / "etc/os-release", 'NAME="oVirt Node"\nVERSION_ID="4.5.5"\n')
    write(tmp_path / "sys/class/dmi/id/product_uuid", "4C4C4544-0051-3010-8052-B4C04F4B4E32\n")
    facts = read_host_facts(tmp_path, rpm_query=lambda path: ("8", "1.el8"))
    assert facts == HostFacts("oVirt Node", "4.5.5-1.el8", "4c4c4544-0051-3010-8052-b4c04f4b4e32")


def test_host_facts_debian_ppc_and_unknown(tmp_path: Path) -> None:
    write(tmp_path / "etc/debian_version", "12.5\n")
    write(tmp_path / "proc/device-tree/system-id", "IBM,0212345AB\0")
    assert read_host_facts(tmp_path, arch="ppc64le", rpm_query=lambda path: None) == HostFacts(
        "Debian", "12.5-", "IBM0212345AB"
    )
    assert read_host_facts(tmp_path / "empty", rpm_query=lambda path: None) == HostFacts("unknown", "-", None)


def test_vdsm_network_xml() -> None:
    assert vdsm_network_xml("vdsm-ovirtmgmt") == (
        '<network><name>vdsm-ovirtmgmt</name><forward mode="bridge" /><bridge name="ovirtmgmt" /></network>'
    )
    assert vdsm_network_xml("vdsm-eth1", bridged=False) == (
        '<network><name>vdsm-eth1</name><forward mode="passthrough"><interface dev="eth1" /></forward></network>'
    )
    with pytest.raises(ValueError):
        vdsm_network_xml("ovirtmgmt")
