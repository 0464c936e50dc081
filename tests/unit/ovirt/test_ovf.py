"""The OVF -> vm.conf conversion against the four OVFs real engines wrote (spec
ovirt-host-integration.md §3.5, §3.7): the keys and values the original writes, the xmlBase64
safety rule and the console-alias cut, the legacy-only definitions he-ha refuses to start
from, and every malformed document refused with an OvfError that names the problem."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from he_ha.ovirt.ovf import (
    CDROM_DEVICE_ID,
    SPICE_SECURE_CHANNELS,
    OvfError,
    check_engine_xml,
    convert_ovf,
    describe_changes,
    parse_ovf,
    parse_vm_conf,
    render_vm_conf,
)
from tests.support.ovf_samples import OVF_SAMPLES

SAMPLES = OVF_SAMPLES
OVF_36 = SAMPLES / "ovf_test.xml"
OVF_MAX_VCPU = SAMPLES / "ovf_test_max_vcpu.xml"
OVF_42 = SAMPLES / "ovf_test_v4.2.xml"
OVF_UNSAFE = SAMPLES / "ovf_test_v4.2_unsafe.xml"
BLANK = "00000000-0000-0000-0000-000000000000"


# ovf_test.xml converted by hand from the rules of §3.5: items in document order (channels and
# sound ignored, the USB item without Type skipped), addresses with '=' -> ':', BootOrder + 1,
# the fixed CD-ROM entry, the console default appended since the OVF has no console item.
EXPECTED_36 = f"""\
vmId=50e59bbd-f829-4761-ba1b-6db1a6acc3b8
vmName=HostedEngine
display=vnc
cpuType=SandyBridge
emulatedMachine=rhel6.5.0
smp=1
memSize=4096
spiceSecureChannels={SPICE_SECURE_CHANNELS}
devices={{index:0,type:disk,device:disk,iface:ide,format:raw,poolID:{BLANK},\
domainID:475e7578-33a2-474f-8647-aa46f01200f9,imageID:1b52d184-a370-48a7-8335-a4755b01ec0a,\
volumeID:05f1031c-6c9a-48c3-9a62-930984e52e11,deviceId:1b52d184-a370-48a7-8335-a4755b01ec0a,readonly:false,\
address:{{slot:0x06,bus:0x00,domain:0x0000,type:pci,function:0x0}},bootOrder:2,propagateErrors:off,shared:exclusive}}
devices={{type:graphics,device:spice,deviceId:546172ad-e415-400b-b079-91a033efd4b1,address:None}}
devices={{index:2,iface:ide,address:{{controller:0,target:0,unit:0,bus:1,type:drive}},readonly:true,\
deviceId:{CDROM_DEVICE_ID},path:,device:cdrom,shared:false,type:disk}}
devices={{type:controller,device:scsi,deviceId:243e6a18-ae41-47dc-af9e-29f2df1b3713,\
address:{{bus:0x00,slot:0x06,domain:0x0000,type:pci,function:0x0}},model:virtio-scsi}}
devices={{type:interface,device:bridge,deviceId:7442c4a6-c63d-4734-8a7e-3b2878efd7df,\
address:{{slot:0x03,bus:0x00,domain:0x0000,type:pci,function:0x0}},nicModel:pv,macAddr:00:16:3e:43:ed:b5,\
network:ovirtmgmt,linkActive:true}}
devices={{type:interface,device:bridge,deviceId:7442c4a6-c63d-4734-8a7e-3b2878efd7ef,\
address:{{slot:0x04,bus:0x00,domain:0x0000,type:pci,function:0x0}},nicModel:pv,macAddr:00:16:3e:43:ed:b6,\
network:dummynet,linkActive:false}}
devices={{type:controller,device:usb,deviceId:9ae636d9-f23f-4050-84c3-096c798b4851,\
address:{{slot:0x01,bus:0x00,domain:0x0000,type:pci,function:0x2}}}}
devices={{type:controller,device:ide,deviceId:90cf38c4-ae28-45be-a38f-42f19ac83929,\
address:{{slot:0x01,bus:0x00,domain:0x0000,type:pci,function:0x1}}}}
devices={{type:controller,device:virtio-serial,deviceId:e354e922-b612-49ca-9474-adacc2dc388e,\
address:{{slot:0x05,bus:0x00,domain:0x0000,type:pci,function:0x0}}}}
devices={{type:video,device:cirrus,deviceId:d3c45090-2863-4faa-a9c4-58fdd1d06f19,\
address:{{slot:0x02,bus:0x00,domain:0x0000,type:pci,function:0x0}},alias:video0}}
devices={{type:rng,device:virtio,deviceId:e61f8f3b-8bf1-4b5f-9e3a-22d4e60a11ca,\
address:{{slot:0x07,bus:0x00,domain:0x0000,type:pci,function:0x0}},specParams:{{source:urandom}},alias:rng0,\
model:virtio}}
devices={{type:console,device:console}}
"""


def lines(text: str) -> list[str]:
    return text.splitlines()


def scalars(text: str) -> dict[str, str]:
    return {key: value for key, _, value in (line.partition("=") for line in lines(text)) if key != "devices"}


def device_lines(text: str) -> list[str]:
    return [line for line in lines(text) if line.startswith("devices=")]


def canonical(element: ET.Element) -> tuple[object, ...]:
    """An element as data: tag, attributes, stripped text, children (for 'semantically unchanged')."""
    return (
        element.tag,
        sorted(element.attrib.items()),
        (element.text or "").strip(),
        [canonical(child) for child in element],
    )


def engine_xml_text(path: Path) -> str:
    text = ET.parse(path).getroot().find("Content/EngineXml").text  # type: ignore[union-attr]
    assert text
    return text


# --- the four samples -------------------------------------------------------------------------


def test_36_sample_converts_to_the_legacy_vm_conf_the_original_writes() -> None:
    conversion = convert_ovf(OVF_36.read_bytes())
    assert conversion.text == EXPECTED_36
    assert conversion.ovf_version == "3.6.0.0"
    assert "xmlBase64" not in conversion.values and "maxVCpus" not in conversion.values
    assert not conversion.startable and "no EngineXml" in (conversion.refusal or "")
    assert conversion.engine_xml is None


def test_max_vcpu_sample_adds_only_max_vcpus_after_smp() -> None:
    text = convert_ovf(OVF_MAX_VCPU.read_bytes()).text
    expected = EXPECTED_36.replace("smp=1\n", "smp=1\nmaxVCpus=16\n")
    assert text == expected


def test_42_sample_emits_xml_base64_and_the_keys_in_the_original_order() -> None:
    conversion = convert_ovf(OVF_42.read_bytes())
    text = conversion.text
    assert [line.split("=", 1)[0] for line in lines(text) if not line.startswith("devices=")] == [
        "xmlBase64",
        "vmId",
        "vmName",
        "display",
        "cpuType",
        "emulatedMachine",
        "smp",
        "maxVCpus",
        "memSize",
        "spiceSecureChannels",
    ]
    values = scalars(text)
    assert values["vmId"] == "eccb9cb6-affd-4806-8200-708370581227"
    assert values["vmName"] == "HostedEngine"
    assert values["display"] == "vnc"  # DefaultDisplayType 2
    assert values["cpuType"] == "Broadwell"
    assert values["emulatedMachine"] == "pc-i440fx-rhel7.3.0"
    assert values["smp"] == "12"  # 12 sockets x 1 core
    assert values["maxVCpus"] == "16"
    assert values["memSize"] == "16384"
    assert values["spiceSecureChannels"] == SPICE_SECURE_CHANNELS
    assert conversion.startable and conversion.refusal is None
    devices = device_lines(text)
    assert devices[0] == (
        f"devices={{index:0,type:disk,device:disk,iface:virtio,format:raw,poolID:{BLANK},"
        "domainID:ce880525-a44b-4248-8b63-d9e11b2f123a,imageID:69a2b8c2-8d1c-4014-8f75-a85c16bc5b71,"
        "volumeID:3ab9fff0-9aa1-4c2e-ad67-5e25d05cb86e,deviceId:69a2b8c2-8d1c-4014-8f75-a85c16bc5b71,readonly:false,"
        "address:{type:pci,slot:0x06,bus:0x00,domain:0x0000,function:0x0},bootOrder:1,propagateErrors:off,"
        "shared:exclusive}"
    )
    assert "devices={type:console,device:console,deviceId:c60aba6e-b6d8-448b-ab6e-8c7b5c29f351,address:None}" in devices
    assert devices[-1] == "devices={type:rng,device:virtio,model:virtio,specParams:{source:urandom}}"  # default
    assert (
        "devices={type:controller,device:scsi,deviceId:5fad56de-094c-4a08-8215-898df4d51b36,"
        "address:{type:pci,slot:0x04,bus:0x00,domain:0x0000,function:0x0},"
        "specParams:{index:0,model:virtio-scsi},model:virtio-scsi}"
    ) in devices


def test_42_sample_xml_base64_is_the_engine_xml_with_only_the_console_alias_cut() -> None:
    conversion = convert_ovf(OVF_42.read_bytes())
    decoded = base64.b64decode(conversion.values["xmlBase64"], validate=True).decode("utf-8")
    assert decoded == conversion.engine_xml
    assert decoded.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<domain ")
    assert 'xmlns:ovirt-vm="http://ovirt.org/vm/1.0"' in decoded  # the engine's prefixes kept
    got = ET.fromstring(decoded)
    want = ET.fromstring(engine_xml_text(OVF_42))
    alias = want.find("devices/console/alias")
    assert alias is not None and alias.get("name") == "ua-c60aba6e-b6d8-448b-ab6e-8c7b5c29f351"
    alias.set("name", "ua-c60aba6e-b6d8-448b-ab")
    assert canonical(got) == canonical(want)
    assert got.find("devices/console/alias").get("name") == "ua-c60aba6e-b6d8-448b-ab"  # type: ignore[union-attr]
    assert any("cut to 'ua-c60aba6e-b6d8-448b-ab'" in note for note in conversion.notes)
    # the placeholders VDSM fills in are carried unchanged (resolving them is another step)
    assert "LEASE-PATH:3ab9fff0-9aa1-4c2e-ad67-5e25d05cb86e" in decoded and "HOST-SERIAL:" in decoded


def test_unsafe_sample_is_legacy_only_and_refused_with_the_reason() -> None:
    conversion = convert_ovf(OVF_UNSAFE.read_bytes())
    values = scalars(conversion.text)
    assert "xmlBase64" not in values and conversion.engine_xml is None
    assert values["vmId"] == "b4491372-8f8a-4e08-8524-f8fb986a548a"
    assert values["display"] == "qxl"
    assert values["smp"] == "4"  # 1 socket x 4 cores
    assert values["maxVCpus"] == "64"
    assert values["cpuType"] == "Haswell-noTSX"
    assert values["memSize"] == "4096"
    assert not conversion.startable
    assert "safety rule" in conversion.refusal and "<lease>" in conversion.refusal  # type: ignore[operator]
    devices = device_lines(conversion.text)
    assert devices[0].startswith("devices={index:0,type:disk,device:disk,iface:virtio,format:cow,")
    assert (
        "devices={type:video,device:qxl,deviceId:8644313b-fb30-44f5-b01a-5e0555a5d9ac,address:None,"
        "specParams:{vgamem:16384,heads:1,vram:32768,ram:65536},alias:video0}"
    ) in devices
    assert devices[-1] == "devices={type:console,device:console}"  # no console item: the default
    assert not any("balloon" in line or "sound" in line or "channel" in line for line in devices)


def test_namespace_spelling_does_not_matter() -> None:
    assert parse_ovf(OVF_UNSAFE.read_bytes()).namespace == "http://schemas.dmtf.org/ovf/envelope/1"
    assert parse_ovf(OVF_42.read_bytes()).namespace == "http://schemas.dmtf.org/ovf/envelope/1/"
    slashless = OVF_36.read_text().replace("envelope/1/", "envelope/1")
    assert convert_ovf(slashless).text == EXPECTED_36


def test_rendered_text_reads_back() -> None:
    for sample in (OVF_36, OVF_42, OVF_UNSAFE):
        text = convert_ovf(sample.read_bytes()).text
        assert render_vm_conf(parse_vm_conf(text)) == text


# --- the engine XML rule ----------------------------------------------------------------------


def domain_xml(
    *,
    lease: bool = True,
    shared: list[str | None] | None = None,
    console_alias: str | None = None,
    console_type: str = "pty",
    uuid: str = "eccb9cb6-affd-4806-8200-708370581227",
) -> str:
    shared = ["exclusive"] if shared is None else shared
    devices = "".join(
        f'<ovirt-vm:device devtype="disk" name="vd{n}">'
        + (f"<ovirt-vm:shared>{value}</ovirt-vm:shared>" if value is not None else "")
        + "</ovirt-vm:device>"
        for n, value in enumerate(shared)
    )
    console = (
        f'<console type="{console_type}"><target type="virtio" port="0"/>'
        + (f'<alias name="{console_alias}"/>' if console_alias else "")
        + "</console>"
    )
    lease_xml = (
        '<lease><key>V</key><lockspace>S</lockspace><target offset="LEASE-OFFSET:V:S" path="LEASE-PATH:V:S"/></lease>'
        if lease
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><domain type="kvm" xmlns:ovirt-vm="http://ovirt.org/vm/1.0">'
        f"<name>HostedEngine</name><uuid>{uuid}</uuid><devices>{console}{lease_xml}</devices>"
        f"<metadata><ovirt-vm:vm>{devices}</ovirt-vm:vm></metadata></domain>"
    )


def with_engine_xml(xml: str, sample: Path = OVF_42) -> str:
    text = sample.read_text()
    start = text.index("<EngineXml>") + len("<EngineXml>")
    end = text.index("</EngineXml>")
    escaped = xml.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text[:start] + escaped + text[end:]


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        ("a" * 24, "a" * 24),
        ("a" * 25, "a" * 24),
        ("ua-c60aba6e-b6d8-448b-ab6e-8c7b5c29f351", "ua-c60aba6e-b6d8-448b-ab"),
        ("console0", "console0"),
    ],
)
def test_pty_console_alias_is_cut_to_24_characters(name: str, cut: str) -> None:
    checked = check_engine_xml(domain_xml(console_alias=name))
    assert ET.fromstring(checked.xml).find("devices/console/alias").get("name") == cut  # type: ignore[union-attr]
    assert (checked.truncated_alias is not None) == (name != cut)


def test_a_non_pty_console_alias_is_left_alone() -> None:
    checked = check_engine_xml(domain_xml(console_alias="b" * 40, console_type="unix"))
    assert ET.fromstring(checked.xml).find("devices/console/alias").get("name") == "b" * 40  # type: ignore[union-attr]
    assert checked.truncated_alias is None


@pytest.mark.parametrize(
    ("lease", "shared", "safe", "reason"),
    [
        (True, ["exclusive"], True, None),
        (False, ["exclusive"], False, "no <lease>"),
        (True, ["shared"], False, "'shared', not 'exclusive'"),
        (True, [], False, "ovirt-vm:shared"),
        (True, [None, "exclusive"], True, None),  # the first disk device that has ovirt-vm:shared decides
        (True, ["none", "exclusive"], False, "'none'"),
        (True, ["Exclusive"], False, "not 'exclusive'"),
    ],
)
def test_safety_rule(lease: bool, shared: list[str | None], safe: bool, reason: str | None) -> None:
    checked = check_engine_xml(domain_xml(lease=lease, shared=shared))
    assert checked.safe is safe
    if reason:
        assert reason in (checked.unsafe_reason or "")
    conversion = convert_ovf(with_engine_xml(domain_xml(lease=lease, shared=shared)))
    assert ("xmlBase64" in conversion.values) is safe
    assert conversion.startable is safe


def test_safe_engine_xml_for_another_vm_is_emitted_but_not_started() -> None:
    other = "b36a34f1-d1c2-4585-ae8f-33e05e4d3c19"
    conversion = convert_ovf(with_engine_xml(domain_xml(uuid=other)))
    assert "xmlBase64" in conversion.values  # what the original writes
    assert not conversion.startable and other in (conversion.refusal or "")


def test_serialisation_escapes_and_keeps_prefixes() -> None:
    xml = (
        '<domain xmlns:a="urn:a" xmlns:b="urn:b"><name>x &amp; &lt;y&gt;</name>'
        '<a:m b:k="1 &quot;2&quot; &amp; 3">t</a:m><e/><!-- dropped --><f>tail?</f>after</domain>'
    )
    checked = check_engine_xml(xml)
    assert '<a:m b:k="1 &quot;2&quot; &amp; 3">t</a:m>' in checked.xml
    assert "<name>x &amp; &lt;y&gt;</name>" in checked.xml
    assert canonical(ET.fromstring(checked.xml)) == canonical(ET.fromstring(xml))
    assert ET.fromstring(checked.xml).find("f").tail == "after"  # type: ignore[union-attr]


def test_deep_engine_xml_does_not_overflow_the_stack() -> None:
    depth = 5000
    checked = check_engine_xml("<domain>" + "<x>" * depth + "</x>" * depth + "</domain>")
    assert checked.xml.count("<x>") == depth - 1 and "<x/>" in checked.xml


# --- malformed documents ----------------------------------------------------------------------


def edit(sample: Path, change: str, by: str, count: int = 1) -> str:
    text = sample.read_text()
    assert change in text, change
    return text.replace(change, by, count)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("", "empty"),
        ("this is not XML", "not well-formed XML"),
        (OVF_42.read_text()[:5000] if OVF_42.exists() else "", "not well-formed XML"),
        ('<?xml version="1.0"?><Envelope/>', "no ovf:version"),
        ('<ovf:Foo xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/" ovf:version="4.1.0.0"/>', "not ovf:Envelope"),
        ('<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/" ovf:version="4.1.0.0"/>', "no Content"),
    ],
)
def test_not_an_ovf(document: str, message: str) -> None:
    with pytest.raises(OvfError, match=re.escape(message)):
        convert_ovf(document)


@pytest.mark.parametrize(
    ("sample", "change", "by", "message"),
    [
        (
            OVF_42,
            'xsi:type="ovf:OperatingSystemSection_Type"',
            'xsi:type="ovf:Other_Type"',
            "no OperatingSystemSection_Type section",
        ),
        (OVF_42, 'ovf:id="eccb9cb6-affd-4806-8200-708370581227"', 'ovf:id="not-a-uuid"', "'not-a-uuid' is not a UUID"),
        (OVF_42, "<Name>HostedEngine</Name>", "", "no Content/Name"),
        (
            OVF_42,
            "<rasd:num_of_sockets>12</rasd:num_of_sockets>",
            "<rasd:num_of_sockets>twelve</rasd:num_of_sockets>",
            "rasd:num_of_sockets is 'twelve', not a whole number",
        ),
        (OVF_42, "<rasd:cpu_per_socket>1</rasd:cpu_per_socket>", "", "no rasd:cpu_per_socket"),
        (
            OVF_42,
            "<rasd:max_num_of_vcpus>16</rasd:max_num_of_vcpus>",
            "<rasd:max_num_of_vcpus>-1</rasd:max_num_of_vcpus>",
            "rasd:max_num_of_vcpus is '-1'",
        ),
        (
            OVF_42,
            "<rasd:VirtualQuantity>16384</rasd:VirtualQuantity>",
            "<rasd:VirtualQuantity>16 GiB</rasd:VirtualQuantity>",
            "memory item's rasd:VirtualQuantity is '16 GiB'",
        ),
        (
            OVF_42,
            "<rasd:VirtualQuantity>16384</rasd:VirtualQuantity>",
            "<rasd:VirtualQuantity>0</rasd:VirtualQuantity>",
            "not a size in MiB",
        ),
        (
            OVF_42,
            "<rasd:ResourceType>4</rasd:ResourceType>",
            "<rasd:ResourceType>99</rasd:ResourceType>",
            "no memory item",
        ),
        (OVF_42, "<DefaultDisplayType>2</DefaultDisplayType>", "", "no Content/DefaultDisplayType"),
        (
            OVF_42,
            "<DefaultDisplayType>2</DefaultDisplayType>",
            "<DefaultDisplayType>vga</DefaultDisplayType>",
            "DefaultDisplayType is 'vga'",
        ),
        (OVF_42, "<EngineXml>&lt;?xml", "<EngineXml>&lt;&lt;?xml", "EngineXml is not well-formed XML"),
        (
            OVF_42,
            'ovf:fileRef="69a2b8c2-8d1c-4014-8f75-a85c16bc5b71/3ab9fff0',
            'ovf:fileRef="69a2b8c2-8d1c-4014-8f75-a85c16bc5b71-3ab9fff0',
            "not <image>/<volume>",
        ),
        (OVF_36, "<BootOrder>1</BootOrder>", "<BootOrder>first</BootOrder>", "BootOrder is 'first'"),
        (
            OVF_36,
            "<rasd:ResourceSubType>3</rasd:ResourceSubType>",
            "<rasd:ResourceSubType>pv</rasd:ResourceSubType>",
            "ResourceSubType is 'pv'",
        ),
        (OVF_36, "<Name>HostedEngine</Name>", "<Name>Hosted&#10;Engine</Name>", "vmName contains a line break"),
    ],
)
def test_malformed_ovf_names_the_problem(sample: Path, change: str, by: str, message: str) -> None:
    with pytest.raises(OvfError, match=re.escape(message)):
        convert_ovf(edit(sample, change, by))


def test_an_ovf_for_another_vm_is_refused_when_the_vm_is_known() -> None:
    with pytest.raises(OvfError, match="describes VM eccb9cb6-affd-4806-8200-708370581227, not "):
        convert_ovf(OVF_42.read_bytes(), expected_vm_id="5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f")
    assert convert_ovf(OVF_42.read_bytes(), expected_vm_id="ECCB9CB6-AFFD-4806-8200-708370581227").startable


@pytest.mark.parametrize(("ordinal", "display"), [("0", "vnc"), ("1", "qxl"), ("2", "vnc"), ("3", None), ("4", None)])
def test_display_types(ordinal: str, display: str | None) -> None:
    text = edit(
        OVF_42, "<DefaultDisplayType>2</DefaultDisplayType>", f"<DefaultDisplayType>{ordinal}</DefaultDisplayType>"
    )
    assert convert_ovf(text).values.get("display") == display


def test_nic_without_mac_is_dropped_with_a_note() -> None:
    conversion = convert_ovf(
        edit(OVF_36, "<rasd:MACAddress>00:16:3e:43:ed:b6</rasd:MACAddress>", "<rasd:MACAddress>None</rasd:MACAddress>")
    )
    assert "dummynet" not in conversion.text
    assert any("no MAC address" in note for note in conversion.notes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_damage_gives_a_conversion_or_an_ovf_error(data: st.DataObject) -> None:
    """Cut the document anywhere, or drop any one element: never another exception type."""
    sample = data.draw(st.sampled_from([OVF_36, OVF_42, OVF_UNSAFE]))
    raw = sample.read_bytes()
    if data.draw(st.booleans()):
        document = raw[: data.draw(st.integers(0, len(raw)))]
    else:
        root = ET.fromstring(raw)
        parents = [(parent, child) for parent in root.iter() for child in parent]
        parent, child = data.draw(st.sampled_from(parents))
        parent.remove(child)
        document = ET.tostring(root)
    try:
        convert_ovf(document)
    except OvfError as exc:
        assert str(exc)


# --- what changed -----------------------------------------------------------------------------


def test_describe_changes_names_memory_cpus_disks_and_nics() -> None:
    old = convert_ovf(OVF_36.read_bytes()).values
    assert describe_changes(old, old) == "no change"
    text = edit(
        OVF_36, "<rasd:VirtualQuantity>4096</rasd:VirtualQuantity>", "<rasd:VirtualQuantity>8192</rasd:VirtualQuantity>"
    )
    text = text.replace("<rasd:cpu_per_socket>1</rasd:cpu_per_socket>", "<rasd:cpu_per_socket>4</rasd:cpu_per_socket>")
    text = text.replace("00:16:3e:43:ed:b6", "00:16:3e:43:ed:b7")
    text = text.replace('ovf:volume-format="RAW"', 'ovf:volume-format="COW"')
    change = describe_changes(old, convert_ovf(text).values)
    assert "memory 4096 -> 8192 MiB" in change
    assert "CPUs 1 -> 4" in change
    assert "NIC 00:16:3e:43:ed:b7 added (pv on dummynet, link false)" in change
    assert "NIC 00:16:3e:43:ed:b6 removed" in change
    assert "disk 1b52d184-a370-48a7-8335-a4755b01ec0a/05f1031c-6c9a-48c3-9a62-930984e52e11 ide,raw -> ide,cow" in change


def test_describe_changes_across_a_written_file_and_the_domain_xml() -> None:
    legacy = parse_vm_conf(convert_ovf(OVF_UNSAFE.read_bytes()).text)
    current = convert_ovf(OVF_42.read_bytes()).values
    change = describe_changes(legacy, current)
    assert "memory 4096 -> 16384 MiB" in change and "domain XML added" in change
    assert "vmId b4491372-8f8a-4e08-8524-f8fb986a548a -> eccb9cb6-affd-4806-8200-708370581227" in change
    moved = dict(current, xmlBase64=base64.b64encode(b"<domain><name>other</name></domain>").decode())
    assert describe_changes(current, moved) == "domain XML changed"
