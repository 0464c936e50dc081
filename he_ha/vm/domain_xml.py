"""The engine VM's libvirt domain XML: where it comes from and the ``<lease>`` transform.

Pure functions (no libvirt calls): read the XML from vm.conf's ``xmlBase64`` or a plain
file, find the domain's name and UUID, and inject a sanlock ``<lease>`` device for the tier
where libvirt's sanlock lock plugin makes QEMU itself hold the VM lease.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

from he_ha.config import ConfigError, VmConf, load_vm_conf
from he_ha.vm.errors import DomainXmlError

SANLOCK_NAME_MAX = 48  # SANLK_NAME_LEN: lockspace and resource names, in bytes
LEASE_OFFSET_ALIGN = 512  # sanlock leases start on a sector boundary


@dataclass(frozen=True)
class DomainId:
    """How the engine VM is found in libvirt: by UUID when known, else by name."""

    name: str
    uuid: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise DomainXmlError("domain name must not be empty")
        if self.uuid is not None:  # one spelling, so ids compare equal
            object.__setattr__(self, "uuid", _canonical_uuid(self.uuid, "domain UUID"))

    def matches(self, name: str, uuid: str) -> bool:
        return uuid.lower() == self.uuid.lower() if self.uuid else name == self.name

    def __str__(self) -> str:
        return f"{self.name} ({self.uuid})" if self.uuid else self.name


@dataclass(frozen=True)
class DomainSpec:
    """A domain XML ready for createXML, with the identity read from it."""

    xml: str
    id: DomainId
    source: str  # where the XML came from, for messages


@dataclass(frozen=True)
class LeaseSpec:
    """A sanlock resource lease, as libvirt's ``<lease>`` device names it."""

    lockspace: str
    key: str
    path: Path
    offset: int = 0

    def __post_init__(self) -> None:
        for field, value in (("lockspace", self.lockspace), ("key", self.key)):
            if not value or len(value.encode()) > SANLOCK_NAME_MAX:
                raise DomainXmlError(f"lease {field} must be 1..{SANLOCK_NAME_MAX} bytes, got {value!r}")
        if not self.path.is_absolute():
            raise DomainXmlError(f"lease target path must be absolute, got {str(self.path)!r}")
        if self.offset < 0 or self.offset % LEASE_OFFSET_ALIGN:
            raise DomainXmlError(f"lease offset must be a non-negative multiple of 512, got {self.offset}")


def parse_domain_xml(xml: str, source: str) -> DomainSpec:
    """Validate the parts he-ha relies on: a ``<domain>`` root, a name, a valid UUID if any."""
    root = _parse(xml, source)
    name = (root.findtext("name") or "").strip()
    if not name:
        raise DomainXmlError(f"{source}: domain XML has no <name>")
    uuid_text = (root.findtext("uuid") or "").strip() or None
    if uuid_text is not None:
        uuid_text = _canonical_uuid(uuid_text, f"{source}: <uuid>")
    return DomainSpec(xml, DomainId(name, uuid_text), source)


def domain_spec_from_vm_conf(conf: VmConf, source: str = "vm.conf") -> DomainSpec:
    """The XML in ``xmlBase64``; its UUID must be the vmId (added when the XML has none)."""
    xml = conf.domain_xml
    if xml is None:
        raise DomainXmlError(f"{source}: no xmlBase64 key; the legacy device-list vm.conf format is not supported")
    spec = parse_domain_xml(xml, source)
    vm_id = _canonical_uuid(conf.vm_id, f"{source}: vmId")
    if spec.id.uuid is None:
        root = _parse(xml, source)
        ET.SubElement(root, "uuid").text = vm_id
        return DomainSpec(ET.tostring(root, encoding="unicode"), DomainId(spec.id.name, vm_id), source)
    if spec.id.uuid != vm_id:
        raise DomainXmlError(f"{source}: the XML's <uuid> {spec.id.uuid} differs from vmId {vm_id}")
    return spec


def load_domain_spec(path: Path) -> DomainSpec:
    """A vm.conf (``key=value`` with ``xmlBase64``) or a plain domain XML file, by content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DomainXmlError(f"{path}: cannot read: {exc}") from None
    if text.lstrip().startswith("<"):
        return parse_domain_xml(text, str(path))
    try:
        conf = load_vm_conf(path)
    except ConfigError as exc:
        raise DomainXmlError(str(exc)) from None
    return domain_spec_from_vm_conf(conf, str(path))


def inject_lease(spec: DomainSpec, lease: LeaseSpec) -> DomainSpec:
    """Replace every ``<lease>`` device with ours.

    vm.conf from an OVF carries VDSM's lease (the storage domain's xleases volume under a
    VDSM path) which he-ha does not manage; a second lease would also have to be acquired,
    so the old ones are dropped rather than kept beside ours.
    """
    root = _parse(spec.xml, spec.source)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    for old in devices.findall("lease"):
        devices.remove(old)
    element = ET.SubElement(devices, "lease")
    ET.SubElement(element, "lockspace").text = lease.lockspace
    ET.SubElement(element, "key").text = lease.key
    ET.SubElement(element, "target", path=str(lease.path), offset=str(lease.offset))
    return replace(spec, xml=ET.tostring(root, encoding="unicode"))


def leases_in(spec: DomainSpec) -> list[LeaseSpec]:
    """The ``<lease>`` devices of a domain XML (for checks and tests)."""
    root = _parse(spec.xml, spec.source)
    found = []
    for element in root.findall("devices/lease"):
        target = element.find("target")
        if target is None or "path" not in target.attrib:
            raise DomainXmlError(f"{spec.source}: <lease> without <target path=...>")
        found.append(
            LeaseSpec(
                lockspace=(element.findtext("lockspace") or "").strip(),
                key=(element.findtext("key") or "").strip(),
                path=Path(target.attrib["path"]),
                offset=_int(target.attrib.get("offset", "0"), f"{spec.source}: <lease> offset"),
            )
        )
    return found


def _parse(xml: str, source: str) -> ET.Element:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DomainXmlError(f"{source}: not well-formed XML: {exc}") from None
    if root.tag != "domain":
        raise DomainXmlError(f"{source}: root element is <{root.tag}>, expected <domain>")
    return root


def _canonical_uuid(text: str, what: str) -> str:
    try:
        return str(uuidlib.UUID(text.strip()))
    except ValueError:
        raise DomainXmlError(f"{what} is not a UUID: {text!r}") from None


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DomainXmlError(f"{what} is not an integer: {text!r}") from None
