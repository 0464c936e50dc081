"""The engine's OVF of the hosted-engine VM, converted into vm.conf as the original agent does.

The engine writes the VM's OVF into the OVF_STORE volumes of the hosted-engine storage domain
(spec ovirt-host-integration.md §3.1-§3.4); the original agent's ``ovf2VmParams`` turns it into
vm.conf (§3.5). This module does the same, key for key and value for value:

- ``parse_ovf`` reads the XML of either era: 3.6 (old-style ``Section xsi:type=...`` sections,
  no ``EngineXml``) and 4.2+ (``EngineXml``, the libvirt domain XML, inside ``Content``), with
  the OVF namespace taken from the root's ``ovf:version`` attribute, so both spellings of the
  namespace URI (with and without the trailing slash) work. Nothing global is changed.
- ``convert_ovf``/``ovf_to_vm_conf`` produce the values in the original's key order:
  ``xmlBase64`` (only when the original's safety rule accepts the engine XML), ``vmId``,
  ``vmName``, ``display``, ``cpuType``, ``emulatedMachine``, ``smp``, ``maxVCpus``,
  ``memSize``, ``spiceSecureChannels`` and one ``devices`` entry per device.
- ``render_vm_conf`` writes them as vm.conf text (without the three-line header, which the
  writer of the file adds); ``parse_vm_conf`` reads such text back; ``describe_changes`` says
  what differs between two definitions (memory, CPUs, disks, NICs) in one log line.

he-ha starts the VM only from a domain XML. A conversion without ``xmlBase64`` (no
``EngineXml``, or one the safety rule rejects) still carries every legacy key the original
writes, but is marked not startable (``OvfConversion.refusal`` says why), so nobody starts a
different VM from the legacy ``devices=`` parameters by accident. he-ha also refuses an
accepted engine XML whose ``<uuid>`` is not the OVF's VM id (the original did not check).

Every problem with the document (not XML, a missing mandatory element, a bad number) raises
``OvfError`` naming what is wrong; nothing else escapes ``convert_ovf``. Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OVF_NS_STEM = "http://schemas.dmtf.org/ovf/envelope/1"  # with or without the trailing slash (§3.4)
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
OVIRT_VM_NS = "http://ovirt.org/vm/1.0"
XML_NS = "http://www.w3.org/XML/1998/namespace"

BLANK_UUID = "00000000-0000-0000-0000-000000000000"
SPICE_SECURE_CHANNELS = "smain,sdisplay,sinputs,scursor,splayback,srecord,ssmartcard,susbredir"
CDROM_DEVICE_ID = "8c3179ac-b322-4f5c-9449-c52e3665e0ae"  # the original's constant cdrom deviceId
CDROM_ADDRESS = "{ controller:0, target:0,unit:0, bus:1, type:drive}"  # as the original has it; spaces go at rendering
CONSOLE_ALIAS_MAX = 24  # rhbz 1560666: a longer pty console alias is cut to this many characters
XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"  # what lxml writes in front of xmlBase64's XML

# vm.conf's scalar keys in the order the original writes them (§3.5); `devices` lines follow.
SCALAR_KEYS = (
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
)
DEVICES = "devices"

# Content/DefaultDisplayType ordinal -> vm.conf display; 3 (bochs) and 4 (none) have no display key.
DISPLAY_TYPES: dict[int, str | None] = {0: "vnc", 1: "qxl", 2: "vnc", 3: None, 4: None}
# rasd:ResourceSubType of a NIC -> nicModel
NIC_MODELS = {0: "rtl8139_pv", 1: "rtl8139", 2: "e1000", 3: "pv", 4: "spaprVlan", 5: "pciPassthrough"}
MEMORY_RESOURCE_TYPE = "4"
DEFAULT_CONSOLE = {"type": "console", "device": "console"}
DEFAULT_RNG = {"type": "rng", "device": "virtio", "model": "virtio"}
DEFAULT_RNG_SPEC_PARAMS = {"source": "urandom"}  # the rng device's specParams, after DEFAULT_RNG's keys

_INTEGER = re.compile(r"\s*[0-9]+\s*")


class OvfError(Exception):
    """The OVF cannot be converted; the message names the element or value at fault."""


# --- parsing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OvfDocument:
    """A parsed engine OVF: the root ``ovf:Envelope``, its OVF namespace and ``Content``."""

    root: ET.Element
    namespace: str  # the OVF namespace URI this document uses
    version: str  # ovf:version, the engine version that wrote it (e.g. 3.6.0.0, 4.1.0.0)
    content: ET.Element

    def ovf(self, name: str) -> str:
        """The qualified name of ``ovf:<name>`` in this document."""
        return f"{{{self.namespace}}}{name}"


def parse_ovf(data: bytes | str) -> OvfDocument:
    """Parse an engine OVF; OvfError when it is not XML or not an engine OVF envelope."""
    root = _parse_xml(data, "the OVF")
    namespace = version = None
    for name, value in root.attrib.items():
        if name.startswith("{" + OVF_NS_STEM) and name.endswith("}version"):
            namespace, version = name[1 : name.index("}")], value
            break
    if namespace is None or version is None:
        raise OvfError(
            f"the OVF's root element <{_local(root.tag)}> has no ovf:version attribute "
            f"(namespace {OVF_NS_STEM}[/]): not an engine OVF"
        )
    if root.tag != f"{{{namespace}}}Envelope":
        raise OvfError(f"the OVF's root element is <{_local(root.tag)}>, not ovf:Envelope")
    content = root.find("Content")
    if content is None:
        raise OvfError("the OVF has no Content element (the virtual system)")
    return OvfDocument(root, namespace, version, content)


def _parse_xml(data: bytes | str, what: str) -> ET.Element:
    if not data.strip():
        raise OvfError(f"{what} is empty")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise OvfError(f"{what} is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the XML declaration
        raise OvfError(f"{what} cannot be decoded: {exc}") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: ET.Element | None) -> str | None:
    """An element's text with surrounding white space removed; None when missing or blank."""
    if element is None or element.text is None:
        return None
    text = element.text.strip()
    return text or None


def _xsi_type(element: ET.Element) -> str:
    return element.get(f"{{{XSI_NS}}}type", "").rsplit(":", 1)[-1]


# --- the engine XML and the safety rule -------------------------------------------------------


@dataclass(frozen=True)
class EngineXml:
    """``EngineXml`` as the original's rule sees it."""

    xml: str  # re-serialised (declaration, console alias cut): what xmlBase64 encodes
    safe: bool  # the original's rule: a devices/lease, and the first disk's ovirt-vm:shared is exclusive
    unsafe_reason: str | None
    uuid: str | None  # the domain's <uuid>
    name: str | None  # the domain's <name>
    root_tag: str
    truncated_alias: tuple[str, str] | None  # (was, now) when the console alias was cut

    @property
    def base64(self) -> str:
        return base64.b64encode(self.xml.encode("utf-8")).decode("ascii")


def check_engine_xml(text: str) -> EngineXml:
    """Apply the console-alias truncation and the original's safety rule (§3.5) to an
    ``EngineXml`` text; OvfError when it is not XML."""
    root, prefixes = _parse_keeping_prefixes(text)
    devices = root.find("devices")
    truncated = None
    if devices is not None:
        for console in devices.findall("console"):
            if console.get("type") != "pty":
                continue
            for alias in console.findall("alias"):
                name = alias.get("name")
                if name is not None and len(name) > CONSOLE_ALIAS_MAX:
                    alias.set("name", name[:CONSOLE_ALIAS_MAX])
                    truncated = truncated or (name, name[:CONSOLE_ALIAS_MAX])
    problems = []
    if devices is None or devices.find("lease") is None:
        problems.append("it has no <lease> under <devices>")
    shared = _first_disk_shared(root)
    if shared is None:
        problems.append("no disk device in its ovirt-vm metadata has ovirt-vm:shared")
    elif shared != "exclusive":
        problems.append(f"the first disk's ovirt-vm:shared is {shared!r}, not 'exclusive'")
    return EngineXml(
        xml=XML_DECLARATION + _serialise(root, prefixes),
        safe=not problems,
        unsafe_reason="; ".join(problems) or None,
        uuid=_text(root.find("uuid")),
        name=_text(root.find("name")),
        root_tag=root.tag,
        truncated_alias=truncated,
    )


def _first_disk_shared(root: ET.Element) -> str | None:
    """Text of the first ``ovirt-vm:device[@devtype='disk']/ovirt-vm:shared`` in document order
    ('' when that element is empty); None when there is none."""
    for device in root.iter(f"{{{OVIRT_VM_NS}}}device"):
        if device.get("devtype") != "disk":
            continue
        shared = device.find(f"{{{OVIRT_VM_NS}}}shared")
        if shared is not None:
            return shared.text or ""
    return None


def _parse_keeping_prefixes(text: str) -> tuple[ET.Element, dict[str, str]]:
    """Parse XML text; also return the prefix each namespace URI was first declared with."""
    if not text.strip():
        raise OvfError("EngineXml is empty")
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "start-ns"))
    prefixes: dict[str, str] = {}
    root: ET.Element | None = None
    try:
        parser.feed(text)
        parser.close()
        for entry in parser.read_events():
            # Only the two requested events arrive: ("start-ns", (prefix, uri)) and
            # ("start", element); the checks narrow the typeshed union of all event shapes.
            if len(entry) != 2:
                continue
            event, item = entry
            if event == "start-ns" and isinstance(item, tuple):
                prefix, uri = item
                if prefix:
                    prefixes.setdefault(uri, prefix)
            elif root is None and isinstance(item, ET.Element):
                root = item
    except ET.ParseError as exc:
        raise OvfError(f"EngineXml is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        raise OvfError(f"EngineXml cannot be decoded: {exc}") from None
    if root is None:
        raise OvfError("EngineXml holds no element")
    return root, prefixes


def _serialise(root: ET.Element, declared: Mapping[str, str]) -> str:
    """The element as XML text, namespace prefixes as the source declared them (all
    declarations on the root); comments and processing instructions were dropped at parsing."""
    prefixes: dict[str, str] = {XML_NS: "xml"}
    taken = {"xml"}
    order: list[str] = []

    def prefix_of(uri: str) -> str:
        if uri not in prefixes:
            wanted = declared.get(uri)
            if not wanted or wanted in taken:
                wanted = next(f"ns{n}" for n in range(len(taken) + 1) if f"ns{n}" not in taken)
            prefixes[uri] = wanted
            taken.add(wanted)
            order.append(uri)
        return prefixes[uri]

    def qualified(name: str) -> str:
        if name.startswith("{"):
            uri, local = name[1:].split("}", 1)
            return f"{prefix_of(uri)}:{local}"
        return name

    parts: list[str] = []
    # (element, closing?) pairs on a stack: no recursion, whatever the depth.
    stack: list[tuple[ET.Element, bool]] = [(root, False)]
    root_open_at = 0
    while stack:
        element, closing = stack.pop()
        if closing:
            parts.append(f"</{qualified(element.tag)}>")
            if element is not root and element.tail:
                parts.append(_escape_text(element.tail))
            continue
        tag = qualified(element.tag)
        attributes = "".join(
            f' {qualified(name)}="{_escape_attribute(value)}"' for name, value in element.attrib.items()
        )
        if element is root:
            root_open_at = len(parts)
        if len(element) == 0 and not element.text:
            parts.append(f"<{tag}{attributes}/>")
            if element is not root and element.tail:
                parts.append(_escape_text(element.tail))
            continue
        parts.append(f"<{tag}{attributes}>")
        if element.text:
            parts.append(_escape_text(element.text))
        stack.append((element, True))
        stack.extend((child, False) for child in reversed(element))
    declarations = "".join(f' xmlns:{prefixes[uri]}="{_escape_attribute(uri)}"' for uri in order)
    opening = parts[root_open_at]
    cut = len(opening) - (2 if opening.endswith("/>") else 1)
    parts[root_open_at] = opening[:cut] + declarations + opening[cut:]
    return "".join(parts)


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _escape_attribute(text: str) -> str:
    return _escape_text(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


# --- conversion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OvfConversion:
    """vm.conf values converted from one OVF, and whether he-ha may start the VM from them."""

    values: dict[str, Any]  # SCALAR_KEYS in order (None dropped), then DEVICES: list of dicts
    vm_id: str
    vm_name: str
    ovf_version: str
    engine_xml: str | None  # the domain XML xmlBase64 carries; None: no xmlBase64
    refusal: str | None  # why he-ha will not start the VM from this definition; None: it may
    notes: tuple[str, ...] = ()  # what the conversion changed or dropped, for the log

    @property
    def startable(self) -> bool:
        return self.refusal is None

    @property
    def text(self) -> str:
        """The vm.conf body (no header), as written to disk."""
        return render_vm_conf(self.values)


def convert_ovf(data: bytes | str, *, expected_vm_id: str | None = None) -> OvfConversion:
    """Parse and convert an engine OVF. ``expected_vm_id`` (hosted-engine.conf ``vmid``):
    an OVF for another VM is an OvfError. Raises OvfError and nothing else."""
    try:
        return ovf_to_vm_conf(parse_ovf(data), expected_vm_id=expected_vm_id)
    except OvfError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        # A shape of document nothing above anticipated: still the document's fault, still named.
        raise OvfError(f"cannot convert the OVF: {type(exc).__name__}: {exc}") from exc


def ovf_to_vm_conf(doc: OvfDocument, *, expected_vm_id: str | None = None) -> OvfConversion:
    """The original's conversion (§3.5) of a parsed OVF."""
    content, notes = doc.content, []
    vm_id = _vm_id(doc)
    if expected_vm_id is not None and not _same_uuid(vm_id, expected_vm_id):
        raise OvfError(f"the OVF describes VM {vm_id}, not {expected_vm_id}")
    name = _text(content.find("Name"))
    if name is None:
        raise OvfError("the OVF has no Content/Name (the VM name)")

    engine = None
    engine_element = next(doc.root.iter("EngineXml"), None)
    if engine_element is not None:
        engine = check_engine_xml(engine_element.text or "")
        if engine.truncated_alias:
            was, now = engine.truncated_alias
            notes.append(
                f"engine XML: pty console alias {was!r} cut to {now!r} ({CONSOLE_ALIAS_MAX} characters, rhbz 1560666)"
            )

    values: dict[str, Any] = {}
    if engine is not None and engine.safe:
        values["xmlBase64"] = engine.base64
    values["vmId"] = vm_id
    values["vmName"] = name
    values["display"] = _display(content)
    values["cpuType"] = _text(content.find("CustomCpuName"))
    values["emulatedMachine"] = _text(content.find("CustomEmulatedMachine"))
    values["smp"] = str(_first_int(content, "num_of_sockets") * _first_int(content, "cpu_per_socket"))
    if _first(content, "max_num_of_vcpus") is not None:
        values["maxVCpus"] = str(_first_int(content, "max_num_of_vcpus"))
    values["memSize"] = _memory(content)
    values["spiceSecureChannels"] = SPICE_SECURE_CHANNELS
    values = {key: value for key, value in values.items() if value is not None}
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise OvfError(f"the value of {key} contains a line break")
    values[DEVICES] = _devices(doc, notes)

    return OvfConversion(
        values=values,
        vm_id=vm_id,
        vm_name=name,
        ovf_version=doc.version,
        engine_xml=engine.xml if engine is not None and engine.safe else None,
        refusal=_refusal(engine, vm_id),
        notes=tuple(notes),
    )


def _refusal(engine: EngineXml | None, vm_id: str) -> str | None:
    legacy = (
        "the original would fall back to VDSM's legacy devices= parameters, and he-ha starts the VM only "
        "from the engine's domain XML"
    )
    if engine is None:
        return f"the OVF has no EngineXml (written by an engine before 4.2): {legacy}"
    if not engine.safe:
        return f"the engine XML fails the original's safety rule ({engine.unsafe_reason}): {legacy}"
    if _local(engine.root_tag) != "domain" or engine.root_tag.startswith("{"):
        return f"the engine XML's root element is <{_local(engine.root_tag)}>, not a libvirt <domain>"
    if engine.uuid is None:
        return "the engine XML has no <uuid>"
    if not _same_uuid(engine.uuid, vm_id):
        return f"the engine XML is for domain uuid {engine.uuid} ({engine.name}), not for the OVF's VM {vm_id}"
    return None


def _same_uuid(a: str, b: str) -> bool:
    try:
        return uuidlib.UUID(a) == uuidlib.UUID(b)
    except ValueError:
        return a == b


def _vm_id(doc: OvfDocument) -> str:
    for section in doc.content:
        if (
            section.tag == "Section" and _xsi_type(section) == "OperatingSystemSection_Type"
        ) or section.tag == "OperatingSystemSection":
            vm_id = section.get(doc.ovf("id"))
            if not vm_id:
                raise OvfError("the OVF's OperatingSystemSection_Type section has no ovf:id (the VM id)")
            try:
                uuidlib.UUID(vm_id)
            except ValueError:
                raise OvfError(
                    f"the OVF's VM id (OperatingSystemSection_Type ovf:id) {vm_id!r} is not a UUID"
                ) from None
            return vm_id
    raise OvfError("the OVF has no OperatingSystemSection_Type section under Content (its ovf:id is the VM id)")


def _display(content: ET.Element) -> str | None:
    text = _text(content.find("DefaultDisplayType"))
    if text is None:
        raise OvfError("the OVF has no Content/DefaultDisplayType")
    return DISPLAY_TYPES.get(_integer(text, "Content/DefaultDisplayType"))


def _first(content: ET.Element, rasd_name: str) -> ET.Element | None:
    return next(content.iter(f"{{{RASD_NS}}}{rasd_name}"), None)


def _first_int(content: ET.Element, rasd_name: str) -> int:
    element = _first(content, rasd_name)
    if element is None:
        raise OvfError(f"the OVF has no rasd:{rasd_name} (CPU item)")
    return _integer(element.text, f"rasd:{rasd_name}")


def _integer(text: str | None, what: str) -> int:
    if text is None or not _INTEGER.fullmatch(text):
        raise OvfError(f"{what} is {text!r}, not a whole number")
    return int(text)


def _memory(content: ET.Element) -> str:
    for item in content.iter("Item"):
        if _text(item.find(f"{{{RASD_NS}}}ResourceType")) == MEMORY_RESOURCE_TYPE:
            quantity = _text(item.find(f"{{{RASD_NS}}}VirtualQuantity"))
            if _integer(quantity, "the memory item's rasd:VirtualQuantity") <= 0:
                raise OvfError(f"the memory item's rasd:VirtualQuantity is {quantity}, not a size in MiB")
            return str(quantity)
    raise OvfError("the OVF has no memory item (rasd:ResourceType 4)")


# --- devices ----------------------------------------------------------------------------------


def _devices(doc: OvfDocument, notes: list[str]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = []
    seen_cdrom = seen_console = seen_rng = False
    disks = [
        disk for section in doc.root if section.tag in ("Section", "DiskSection") for disk in section.findall("Disk")
    ]
    for item in doc.content.iter("Item"):
        kind = item.find("Type")
        if kind is None:
            continue
        kind_text, device = _text(kind), _text(item.find("Device"))
        if kind_text == "disk" and device == "disk":
            found = _disk_entries(doc, item, disks)
            if not found:
                notes.append(f"disk item {_rasd(item, 'InstanceId')} has no Disk in the DiskSection: no devices entry")
            devices.extend(found)
        elif kind_text == "disk" and device == "cdrom":
            if not seen_cdrom:
                devices.append(_cdrom(item))
                seen_cdrom = True
        elif kind_text == "interface":
            nic = _interface(item, notes)
            if nic is not None:
                devices.append(nic)
        elif kind_text == "controller":
            entry = _generic(item)
            if entry["device"] == "virtio-scsi":
                entry["device"], entry["model"] = "scsi", "virtio-scsi"
            devices.append(entry)
        elif kind_text == "console":
            devices.append(_generic(item))
            seen_console = True
        elif kind_text == "video":
            devices.append({**_generic(item), "alias": "video0"})
        elif kind_text == "rng":
            devices.append({**_generic(item), "alias": _text(item.find("Alias")), "model": device})
            seen_rng = True
        elif kind_text == "graphics":
            devices.append(_generic(item))
        # channel, sound, balloon, ...: the original ignores them
    if not seen_console:
        devices.append(dict(DEFAULT_CONSOLE))
    if not seen_rng:
        devices.append({**DEFAULT_RNG, "specParams": dict(DEFAULT_RNG_SPEC_PARAMS)})
    for entry in devices:
        if any(char in render_device(entry) for char in "\r\n"):
            raise OvfError(f"a {entry.get('type')} device ({entry.get('deviceId')}) has a value with a line break")
    return devices


def _rasd(item: ET.Element, name: str) -> str | None:
    return _text(item.find(f"{{{RASD_NS}}}{name}"))


def _address(item: ET.Element) -> str | None:
    address = _rasd(item, "Address")
    return address.replace("=", ":") if address is not None else None


def _spec_params(item: ET.Element) -> dict[str, str]:
    params = item.find("SpecParams")
    if params is None:
        return {}
    return {child.tag: text for child in params if (text := _text(child)) is not None}


def _generic(item: ET.Element) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": _text(item.find("Type")),
        "device": _text(item.find("Device")),
        "deviceId": _rasd(item, "InstanceId"),
        "address": _address(item),
    }
    params = _spec_params(item)
    if params:
        entry["specParams"] = params
    return entry


def _disk_entries(doc: OvfDocument, item: ET.Element, disks: Sequence[ET.Element]) -> list[dict[str, Any]]:
    instance = _rasd(item, "InstanceId")
    entries, index = [], 0  # the original restarts the index for every disk item
    for disk in disks:
        if disk.get(doc.ovf("diskId")) != instance:
            continue
        file_ref = disk.get(doc.ovf("fileRef")) or ""
        image, slash, volume = file_ref.partition("/")
        if not (image and slash and volume) or "/" in volume:
            raise OvfError(f"disk {instance}: ovf:fileRef is {file_ref!r}, not <image>/<volume>")
        boot = _integer(_text(item.find("BootOrder")), f"disk {instance}: BootOrder")
        entries.append(
            {
                "index": str(index),
                "type": "disk",
                "device": "disk",
                "iface": _lower(disk.get(doc.ovf("disk-interface"))),
                "format": _lower(disk.get(doc.ovf("volume-format"))),
                "poolID": BLANK_UUID,
                "domainID": _rasd(item, "StorageId"),
                "imageID": image,
                "volumeID": volume,
                "deviceId": image,
                "readonly": _text(item.find("IsReadOnly")),
                "address": _address(item),
                "bootOrder": str(boot + 1),
                "propagateErrors": "off",
                "shared": "exclusive",
            }
        )
        index += 2 if index == 1 else 1  # index 2 is the CD-ROM's
    return entries


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _cdrom(item: ET.Element) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": "2", "iface": "ide", "address": CDROM_ADDRESS}
    params = _spec_params(item)
    if params:
        entry["specParams"] = params
    entry.update(readonly="true", deviceId=CDROM_DEVICE_ID, path="", device="cdrom", shared="false", type="disk")
    return entry


def _interface(item: ET.Element, notes: list[str]) -> dict[str, Any] | None:
    mac = _rasd(item, "MACAddress")
    if mac is None or mac == "None":
        notes.append(f"NIC item {_rasd(item, 'InstanceId')} has no MAC address: dropped, as the original does")
        return None
    subtype = _rasd(item, "ResourceSubType")
    model = NIC_MODELS.get(_integer(subtype, "a NIC's rasd:ResourceSubType")) if subtype is not None else None
    if model is None:
        notes.append(f"NIC {mac}: rasd:ResourceSubType {subtype!r} is no NIC model the original knows: nicModel None")
    return {
        **_generic(item),
        "nicModel": model,
        "macAddr": mac,
        "network": _rasd(item, "Connection"),
        "linkActive": _rasd(item, "Linked"),
    }


# --- vm.conf text -----------------------------------------------------------------------------


def render_device(device: Mapping[str, Any]) -> str:
    """One device as the original renders it: Python's dict text without quotes and spaces."""
    return str(dict(device)).replace("'", "").replace(" ", "")


def render_vm_conf(values: Mapping[str, Any]) -> str:
    """vm.conf text: the scalar keys in the original's order (others after them, as given),
    then one ``devices=`` line per device. None values are left out."""
    lines = [f"{key}={values[key]}" for key in SCALAR_KEYS if values.get(key) is not None]
    lines += [
        f"{key}={value}"
        for key, value in values.items()
        if key not in SCALAR_KEYS and key != DEVICES and value is not None
    ]
    for device in values.get(DEVICES) or ():
        lines.append(f"{DEVICES}={device if isinstance(device, str) else render_device(device)}")
    return "".join(line + "\n" for line in lines)


def parse_vm_conf(text: str) -> dict[str, Any]:
    """vm.conf text (any writer's) as values: ``devices`` lines become dicts where they parse
    (unparsable ones stay strings); comments and blank lines are skipped; a repeated scalar
    key keeps its last value."""
    values: dict[str, Any] = {}
    devices: list[Any] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key == DEVICES:
            devices.append(_parse_device(value.strip()))
        else:
            values[key] = value
    if devices:
        values[DEVICES] = devices
    return values


def _parse_device(text: str) -> dict[str, Any] | str:
    try:
        parsed, end = _parse_braces(text, 0)
    except (ValueError, IndexError):
        return text
    return parsed if end == len(text) else text


def _parse_braces(text: str, at: int) -> tuple[dict[str, Any], int]:
    """``{key:value,key:{...}}`` from ``at``; returns the dict and the index after ``}``."""
    if text[at] != "{":
        raise ValueError("not a dict")
    result: dict[str, Any] = {}
    at += 1
    while True:
        if text[at] == "}":
            return result, at + 1
        colon = text.index(":", at)
        key = text[at:colon]
        at = colon + 1
        value: Any
        if text[at] == "{":
            value, at = _parse_braces(text, at)
        else:
            end = at
            while text[end] not in ",}":
                end += 1
            value, at = text[at:end], end
            value = None if value == "None" else value
        result[key] = value
        if text[at] == ",":
            at += 1


# --- what changed -----------------------------------------------------------------------------


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What differs between two definitions' values (``OvfConversion.values`` or
    ``parse_vm_conf``), in one line for the log: memory, CPUs, disks, NICs, then other keys;
    ``"no change"`` when they are the same."""
    changes: list[str] = []
    if old.get("memSize") != new.get("memSize"):
        changes.append(f"memory {old.get('memSize')} -> {new.get('memSize')} MiB")
    if old.get("smp") != new.get("smp"):
        changes.append(f"CPUs {old.get('smp')} -> {new.get('smp')}")
    if old.get("maxVCpus") != new.get("maxVCpus"):
        changes.append(f"max vCPUs {old.get('maxVCpus')} -> {new.get('maxVCpus')}")
    changes += _set_changes("disk", _disks(old), _disks(new))
    changes += _set_changes("NIC", _nics(old), _nics(new))
    summarised = {"memSize", "smp", "maxVCpus", "xmlBase64", DEVICES}
    for key in dict.fromkeys([*SCALAR_KEYS, *old, *new]):
        if key not in summarised and old.get(key) != new.get(key):
            changes.append(f"{key} {old.get(key)} -> {new.get(key)}")
    if _device_lines(old) != _device_lines(new) and not any(c.startswith(("disk ", "NIC ")) for c in changes):
        changes.append("other devices changed")
    old_xml, new_xml = _decoded(old.get("xmlBase64")), _decoded(new.get("xmlBase64"))
    if old_xml != new_xml:
        if old_xml is None:
            changes.append("domain XML added")
        elif new_xml is None:
            changes.append("domain XML removed")
        elif not changes:
            changes.append("domain XML changed")
    return "; ".join(changes) or "no change"


def _decoded(value: Any) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return str(value)


def _devices_of(values: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for device in values.get(DEVICES) or ():
        if isinstance(device, Mapping):
            yield device


def _device_lines(values: Mapping[str, Any]) -> list[str]:
    return sorted(device if isinstance(device, str) else render_device(device) for device in values.get(DEVICES) or ())


def _disks(values: Mapping[str, Any]) -> dict[str, str]:
    return {
        f"{d.get('imageID')}/{d.get('volumeID')}": f"{d.get('iface')},{d.get('format')}"
        for d in _devices_of(values)
        if d.get("type") == "disk" and d.get("device") == "disk"
    }


def _nics(values: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(d.get("macAddr")): f"{d.get('nicModel')} on {d.get('network')}, link {d.get('linkActive')}"
        for d in _devices_of(values)
        if d.get("type") == "interface"
    }


def _set_changes(what: str, old: Mapping[str, str], new: Mapping[str, str]) -> Iterable[str]:
    for key in sorted(set(new) - set(old)):
        yield f"{what} {key} added ({new[key]})"
    for key in sorted(set(old) - set(new)):
        yield f"{what} {key} removed"
    for key in sorted(set(old) & set(new)):
        if old[key] != new[key]:
            yield f"{what} {key} {old[key]} -> {new[key]}"
