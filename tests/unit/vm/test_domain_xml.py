"""Domain XML sources (vm.conf xmlBase64, plain XML) and the <lease> transform."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from he_ha.config import VmConf
from he_ha.vm import (
    DomainId,
    DomainXmlError,
    LeaseSpec,
    domain_spec_from_vm_conf,
    inject_lease,
    leases_in,
    load_domain_spec,
    parse_domain_xml,
)
from tests.integration.vm.helpers import ENGINE_NAME, ENGINE_UUID, domain_xml, write_vm_conf
from tests.support.elements import must_find

VDSM_LEASE = (
    "<lease><lockspace>5e8f9a5c-sd-uuid</lockspace><key>8f2ddd55-lease</key>"
    "<target path='/rhev/data-center/mnt/x/dom_md/xleases' offset='3145728'/></lease>"
)
OVIRT_XML = (
    "<domain type='kvm' xmlns:ovirt-tune='http://ovirt.org/vm/tune/1.0'>"
    f"<name>{ENGINE_NAME}</name><uuid>{ENGINE_UUID}</uuid>"
    "<metadata><ovirt-tune:qos/></metadata>"
    f"<devices><disk type='file' device='disk'/>{VDSM_LEASE}<interface type='bridge'/></devices>"
    "</domain>"
)
OUR_LEASE = LeaseSpec("hosted-engine", "engine-vm", Path("/srv/he/vm.lease"), 1048576)


def _conf(xml: str | None, vm_id: str = ENGINE_UUID) -> VmConf:
    values = {"vmId": vm_id, "memSize": "1024"}
    if xml is not None:
        values["xmlBase64"] = base64.b64encode(xml.encode()).decode()
    return VmConf.model_validate(values)


def test_identity_comes_from_the_xml() -> None:
    spec = parse_domain_xml(domain_xml(), "test")
    assert spec.id == DomainId(ENGINE_NAME, ENGINE_UUID)
    assert parse_domain_xml(domain_xml(uuid=None), "test").id == DomainId(ENGINE_NAME)


def test_uuid_spelling_is_canonical() -> None:
    assert DomainId(ENGINE_NAME, ENGINE_UUID.upper()) == DomainId(ENGINE_NAME, ENGINE_UUID)
    assert DomainId(ENGINE_NAME, ENGINE_UUID).matches("whatever", ENGINE_UUID.upper())
    assert DomainId(ENGINE_NAME).matches(ENGINE_NAME, ENGINE_UUID)
    assert not DomainId(ENGINE_NAME).matches("other", ENGINE_UUID)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<domain><name>x</name", "not well-formed"),
        ("<node><name>x</name></node>", "root element is <node>"),
        ("<domain type='kvm'><uuid>" + ENGINE_UUID + "</uuid></domain>", "no <name>"),
        ("<domain><name>x</name><uuid>not-a-uuid</uuid></domain>", "not a UUID: 'not-a-uuid'"),
    ],
)
def test_bad_xml_is_named(xml: str, message: str) -> None:
    with pytest.raises(DomainXmlError, match=message) as caught:
        parse_domain_xml(xml, "engine.xml")
    assert str(caught.value).startswith("engine.xml")


def test_vm_conf_file_with_xml_base64(tmp_path: Path) -> None:
    spec = load_domain_spec(write_vm_conf(tmp_path / "vm.conf", OVIRT_XML))
    assert spec.id == DomainId(ENGINE_NAME, ENGINE_UUID)
    assert spec.xml == OVIRT_XML  # passed through untouched when nothing needs changing
    assert spec.source == str(tmp_path / "vm.conf")


def test_plain_xml_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.xml"
    path.write_text("\n  " + OVIRT_XML)
    assert load_domain_spec(path).id.uuid == ENGINE_UUID


def test_unreadable_or_broken_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DomainXmlError, match="cannot read"):
        load_domain_spec(tmp_path / "missing.conf")
    broken = tmp_path / "vm.conf"
    broken.write_text("vmId=\nmemSize=1024\n")
    with pytest.raises(DomainXmlError, match="vmId"):
        load_domain_spec(broken)


def test_vm_conf_without_xml_is_refused() -> None:
    with pytest.raises(DomainXmlError, match="no xmlBase64 key"):
        domain_spec_from_vm_conf(_conf(None))


def test_vm_conf_whose_xml_names_another_uuid_is_refused() -> None:
    other = "0b3e6bb0-7b8a-4a4e-8e36-0e0e0e0e0e0e"
    with pytest.raises(DomainXmlError, match=f"differs from vmId {other}"):
        domain_spec_from_vm_conf(_conf(domain_xml(), vm_id=other))


def test_vm_conf_xml_without_uuid_gets_the_vm_id() -> None:
    spec = domain_spec_from_vm_conf(_conf(domain_xml(uuid=None)))
    assert spec.id.uuid == ENGINE_UUID
    assert parse_domain_xml(spec.xml, "again").id == spec.id


def test_inject_lease_replaces_vdsms_lease_and_keeps_the_rest() -> None:
    spec = parse_domain_xml(OVIRT_XML, "vm.conf")
    assert [lease.key for lease in leases_in(spec)] == ["8f2ddd55-lease"]

    injected = inject_lease(spec, OUR_LEASE)

    assert leases_in(injected) == [OUR_LEASE]
    assert injected.id == spec.id
    root = ET.fromstring(injected.xml)
    assert [child.tag for child in must_find(root, "devices")] == ["disk", "interface", "lease"]
    assert root.find("metadata/{http://ovirt.org/vm/tune/1.0}qos") is not None  # namespace kept
    assert root.get("type") == "kvm"


def test_inject_lease_adds_devices_when_missing() -> None:
    spec = parse_domain_xml(f"<domain><name>{ENGINE_NAME}</name></domain>", "x")
    assert leases_in(inject_lease(spec, OUR_LEASE)) == [OUR_LEASE]


def test_inject_lease_is_idempotent() -> None:
    once = inject_lease(parse_domain_xml(OVIRT_XML, "x"), OUR_LEASE)
    assert leases_in(inject_lease(once, OUR_LEASE)) == [OUR_LEASE]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lockspace": ""}, "lockspace"),
        ({"key": "k" * 49}, "key must be 1..48 bytes"),
        ({"path": Path("relative/vm.lease")}, "absolute"),
        ({"offset": -512}, "multiple of 512"),
        ({"offset": 1000}, "multiple of 512"),
    ],
)
def test_lease_spec_validation(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "lockspace": "hosted-engine",
        "key": "engine-vm",
        "path": Path("/srv/vm.lease"),
        "offset": 0,
    }
    values.update(kwargs)
    with pytest.raises(DomainXmlError, match=message):
        LeaseSpec(**values)  # type: ignore[arg-type]


def test_lease_without_target_is_named() -> None:
    spec = parse_domain_xml("<domain><name>x</name><devices><lease><key>k</key></lease></devices></domain>", "x")
    with pytest.raises(DomainXmlError, match="without <target"):
        leases_in(spec)
