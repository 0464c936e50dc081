"""The engine VM's definition (vm.conf) from the best source available, and the files it is written to.

The original agent wrote ``/var/run/ovirt-hosted-engine-ha/vm.conf`` (hosted-engine.conf
``conf``, on tmpfs) from OVF_STORE, falling back to the configuration volume's ``vm.conf``
member (spec ovirt-host-integration.md §3.6). After a reboot that file is gone. he-ha looks
at its sources in order and takes the first that can start the VM:

0. ``ovf-store``: ``<vmid>.ovf`` in the OVF_STORE volumes of the hosted-engine storage domain,
   converted as the original converts it (he_ha/ovirt/ovf.py, ovf_store.py): the engine's own
   definition, where edits made in the engine arrive. Only when hosted-engine.conf names the
   domain (``sdUUID``, ``domainType``). A conversion he-ha refuses to start from (no engine
   XML, or one the safety rule rejects) is a partial definition (identity and memory) whose
   note is the refusal; a store that cannot be read, or an OVF that does not convert, is a
   note too: the next sources then give the last good definition (he-ha wrote it to them);
1. ``conf``: the vm.conf at the ``conf`` path: left by the original agent (taken over at
   first start) or written earlier this boot;
2. ``last-good``: the copy he-ha keeps on persistent local storage (``<state dir>/vm.conf``),
   rewritten whenever a startable definition is obtained;
3. ``conf-volume``: the configuration volume's ``vm.conf`` member. On 4.4+ deployments it is
   the legacy ``devices={...}`` format without ``xmlBase64``: it gives the VM id and memory,
   not a startable definition, unless it carries ``xmlBase64`` (he-ha's ``--init-storage``).

``DefinitionPlan.for_host`` builds that sequence. An explicit ``--vm-conf PATH`` replaces the
sequence with that one file (``explicit``) and nothing is written. A source with bad content
(unparsable, no ``vmId``, a UUID other than hosted-engine.conf's ``vmid``) is skipped with a
``SourceNote`` naming the file and the problem; nothing here raises for a source's content.
A source ahead of the one taken that failed for any reason but being absent is a problem
(``Resolution.problem``): e.g. the engine's edits do not arrive while OVF_STORE fails.

A source's content is a vm.conf (``key=value`` lines; ``xmlBase64`` carries the libvirt
domain XML) or a plain domain XML file (``he_ha.vm.load_domain_spec`` accepts both). The
definition keeps its ``key=value`` lines as found (legacy ``devices=`` lines repeat), and
``write_vm_conf`` writes them atomically under the original's three-line header.

Blocking file I/O throughout (OVF_STORE and the configuration volume are on shared
storage): the supervisor calls ``DefinitionPlan.resolve`` and ``write_vm_conf`` off the event
loop, with a deadline (he_ha/supervisor/execute.py, host_plan.py; ``call_with_deadline``).
"""

from __future__ import annotations

import base64
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from he_ha.atomicfile import write_atomically
from he_ha.config import ConfigError, HostedEngineConf, VmConf
from he_ha.ovirt.layout import VdsmRoots
from he_ha.ovirt.ovf import parse_vm_conf
from he_ha.ovirt.ovf_store import OvfStoreError, find_domain_stores, read_vm_conversion
from he_ha.vm import DomainId, DomainSpec, DomainXmlError, domain_spec_from_vm_conf, parse_domain_xml

T = TypeVar("T")

DEFAULT_VM_NAME = "HostedEngine"  # deploy's vmName; the name when only hosted-engine.conf's vmid is known
HEADER_FIRST = "# Editing the hosted engine VM is only possible via the manager UI/API"
CONF_MEMBER = "vm.conf"
VM_CONF_MODE = 0o644

# Source names: the `source` of a definition, the metric label, what status shows.
OVF_STORE_SOURCE = "ovf-store"
CONF = "conf"
LAST_GOOD = "last-good"
CONF_VOLUME = "conf-volume"
EXPLICIT = "explicit"

# libvirt's <memory unit=...> units, in bytes
_UNITS = {
    "b": 1,
    "bytes": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}


class DefinitionError(Exception):
    """A source's content cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class VmDefinition:
    """One source's view of the engine VM: always its identity, the domain XML when it has one."""

    source: str  # OVF_STORE_SOURCE, CONF, LAST_GOOD, CONF_VOLUME, EXPLICIT
    origin: str  # the file (or volume) it was read from, for messages
    lines: tuple[str, ...]  # the key=value lines, in order, duplicates kept, comments dropped
    vm_id: str  # canonical UUID
    name: str
    memory_mib: int | None
    spec: DomainSpec | None  # None: no domain XML he-ha starts from; identity and memory only
    refusal: str | None = None  # why a definition without ``spec`` cannot start the VM (None: no domain XML)
    remarks: tuple[str, ...] = ()  # worth a log line, not a problem (e.g. an OVF_STORE skipped for the other)

    @property
    def identity(self) -> DomainId:
        return DomainId(self.name, self.vm_id)

    @property
    def startable(self) -> bool:
        return self.spec is not None

    @property
    def body(self) -> str:
        """The vm.conf lines without the header, as ``he-ha vm-conf`` prints them."""
        return "".join(line + "\n" for line in self.lines)

    def values(self) -> dict[str, Any]:
        """The lines as vm.conf values (``he_ha.ovirt.ovf.parse_vm_conf``), for ``describe_changes``."""
        return parse_vm_conf(self.body)

    def text(self, generated_at: str | None = None) -> str:
        """The vm.conf file: the original's header, then the key=value lines."""
        stamp = generated_at if generated_at is not None else time.asctime()
        return "\n".join([HEADER_FIRST, f"# This file was generated at {stamp}", "", *self.lines]) + "\n"


MISSING = "missing"  # nothing there: normal after a reboot
PARTIAL = "partial"  # a definition without domain XML: identity and memory only
BAD = "bad"  # content that cannot be used (or cannot be read)


@dataclass(frozen=True)
class SourceNote:
    """Why a source was not used (``kind``: MISSING, PARTIAL or BAD)."""

    source: str
    origin: str
    problem: str
    kind: str = BAD

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}"


class DefinitionSource(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def origin(self) -> str: ...

    def read(self, expected: Expected) -> VmDefinition | None:
        """The definition, None if the source has nothing; DefinitionError if its content is bad."""
        ...


@dataclass(frozen=True)
class Expected:
    """What every source must agree with: hosted-engine.conf's ``vmid`` (and, once running,
    the identity he-ha started with)."""

    vm_id: str | None  # canonical UUID, or None when nothing is known yet
    where: str  # e.g. "vmid in /etc/ovirt-hosted-engine/hosted-engine.conf"
    name: str | None = None  # a running supervisor's VM name: another name needs a restart


# --- reading one source ------------------------------------------------------------------------


def _canonical_uuid(text: str, what: str) -> str:
    try:
        return str(uuidlib.UUID(text.strip()))
    except ValueError:
        raise DefinitionError(f"{what} is not a UUID: {text!r}") from None


def _vm_conf_lines(text: str, origin: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """vm.conf's key=value lines as written (comments and blank lines dropped) and its values
    (the last one of a repeated key; double quotes around a value removed, as the original)."""
    lines: list[str] = []
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = (part.strip() for part in stripped.partition("="))
        if not sep or not key:
            raise DefinitionError(f"{origin}: line {number} is not 'key=value': {raw[:80]!r}")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        lines.append(stripped)
        values[key] = value
    if not lines:
        raise DefinitionError(f"{origin}: empty (no key=value line)")
    return tuple(lines), values


def _validation_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    return f"key {key!r}: {first['msg']}"


def _xml_memory_mib(xml: str, origin: str) -> int | None:
    element = ET.fromstring(xml).find("memory")
    if element is None or not (element.text or "").strip().isdigit():
        return None
    unit = element.get("unit", "KiB").lower()
    if unit not in _UNITS:
        raise DefinitionError(f"{origin}: unknown <memory unit={unit!r}>")
    return int((element.text or "").strip()) * _UNITS[unit] // 1024**2


def _from_xml(text: str, source: str, origin: str, expected: Expected) -> VmDefinition:
    try:
        spec = parse_domain_xml(text, origin)
    except DomainXmlError as exc:
        raise DefinitionError(str(exc)) from None
    memory = _xml_memory_mib(spec.xml, origin)
    if spec.id.uuid is None:  # the engine VM is found by UUID: take hosted-engine.conf's
        if expected.vm_id is None:
            raise DefinitionError(f"{origin}: the domain XML has no <uuid>, and there is no {expected.where}")
        root = ET.fromstring(spec.xml)
        ET.SubElement(root, "uuid").text = expected.vm_id
        spec = DomainSpec(ET.tostring(root, encoding="unicode"), DomainId(spec.id.name, expected.vm_id), origin)
    vm_id = spec.id.uuid or ""
    encoded = base64.b64encode(spec.xml.encode("utf-8")).decode("ascii")
    lines = [
        f"vmId={vm_id}",
        *([f"memSize={memory}"] if memory is not None else []),
        f"vmName={spec.id.name}",
        f"xmlBase64={encoded}",
    ]
    return VmDefinition(source, origin, tuple(lines), vm_id, spec.id.name, memory, spec)


def _from_vm_conf(text: str, source: str, origin: str) -> VmDefinition:
    lines, values = _vm_conf_lines(text, origin)
    try:
        conf = VmConf.model_validate(values)
    except ValidationError as exc:
        raise DefinitionError(f"{origin}: {_validation_problem(exc)}") from None
    vm_id = _canonical_uuid(conf.vm_id, f"{origin}: vmId")
    spec: DomainSpec | None = None
    if conf.xml_base64 is not None:
        try:
            spec = domain_spec_from_vm_conf(conf, origin)
        except DomainXmlError as exc:
            raise DefinitionError(str(exc)) from None
    name = spec.id.name if spec is not None else (conf.vm_name or DEFAULT_VM_NAME)
    return VmDefinition(source, origin, lines, vm_id, name, conf.mem_size_mib, spec)


def parse_definition(text: str, *, source: str, origin: str, expected: Expected) -> VmDefinition:
    """A vm.conf or a plain domain XML, by content; checked against ``expected``."""
    if text.lstrip().startswith("<"):
        definition = _from_xml(text, source, origin, expected)
    else:
        definition = _from_vm_conf(text, source, origin)
    if expected.vm_id is not None and definition.vm_id != expected.vm_id:
        raise DefinitionError(f"{origin}: describes the VM {definition.vm_id}, not {expected.vm_id} ({expected.where})")
    if expected.name is not None and definition.name != expected.name:
        raise DefinitionError(
            f"{origin}: names the VM {definition.name!r}, not {expected.name!r} as when "
            "he-ha started; restart he-ha to use it"
        )
    return definition


def _read_text(path: Path) -> str | None:
    """The file's text; None if it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror}") from None


@dataclass(frozen=True)
class VmConfFile:
    """A vm.conf (or plain domain XML) file: the ``conf`` path, the last-good copy, ``--vm-conf``."""

    name: str
    path: Path

    @property
    def origin(self) -> str:
        return str(self.path)

    def read(self, expected: Expected) -> VmDefinition | None:
        text = _read_text(self.path)
        if text is None:
            return None
        return parse_definition(text, source=self.name, origin=self.origin, expected=expected)


VolumeReader = Callable[[Path], dict[str, str]]


def _default_volume_reader(path: Path) -> dict[str, str]:
    try:  # imported here: the archive code is its own module (he_ha/ovirt/conf_volume.py)
        from he_ha.ovirt.conf_archive import ConfArchiveError
        from he_ha.ovirt.conf_volume import read_conf_volume
    except ImportError as exc:
        raise DefinitionError(f"{path}: the configuration volume cannot be read by this he-ha ({exc})") from None
    try:
        return read_conf_volume(path)
    except ConfArchiveError as exc:
        raise DefinitionError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class ConfVolumeVmConf:
    """The configuration volume's ``vm.conf`` member (the 20,480-byte tar, spec §2.1)."""

    path: Path
    reader: VolumeReader | None = None  # None: he_ha.ovirt.conf_volume.read_conf_volume
    name: str = CONF_VOLUME

    @property
    def origin(self) -> str:
        return f"{self.path} (configuration volume, member {CONF_MEMBER})"

    def read(self, expected: Expected) -> VmDefinition | None:
        reader = self.reader or _default_volume_reader
        try:
            members = reader(self.path)
        except OSError as exc:
            raise DefinitionError(f"{self.path}: cannot read the configuration volume: {exc.strerror or exc}") from None
        text = members.get(CONF_MEMBER)
        if text is None:
            raise DefinitionError(
                f"{self.path}: the configuration volume has no {CONF_MEMBER} member "
                f"(members: {', '.join(sorted(members)) or 'none'})"
            )
        return parse_definition(text, source=self.name, origin=self.origin, expected=expected)


@dataclass(frozen=True)
class OvfStoreVmConf:
    """``<vmid>.ovf`` of the hosted-engine storage domain's OVF_STORE volumes, converted
    (spec §3.3-§3.5). The store is chosen as he_ha.ovirt.ovf_store chooses it (Updated and
    newest first, the other on failure). A domain without OVF_STORE volumes yet (before the
    engine first writes them) is ``missing``; one whose stores cannot be read, or whose OVF
    does not convert, raises DefinitionError naming the stores and why; a conversion he-ha
    will not start from is a definition without ``spec`` whose ``refusal`` says why. Block
    domains: the LVM tags are read as he_ha.ovirt.ovf_store's ``find_domain_stores`` reads them
    (``lvs``; the side file under a relocated root)."""

    conf: HostedEngineConf
    conf_path: Path  # hosted-engine.conf, for messages
    roots: VdsmRoots
    name: str = OVF_STORE_SOURCE

    @property
    def origin(self) -> str:
        return f"the OVF_STORE of storage domain {self.conf.sd_uuid}"

    def read(self, expected: Expected) -> VmDefinition | None:
        if expected.vm_id is None:
            raise DefinitionError(f"{self.origin}: which VM's OVF to read is unknown (no {expected.where})")
        try:
            scan = find_domain_stores(self.conf, self.roots, self.conf_path)
            if not scan.stores and not scan.skipped:
                return None
            found = read_vm_conversion(scan, expected.vm_id)
        except (OvfStoreError, ConfigError) as exc:
            raise DefinitionError(f"{self.origin}: {exc}") from None
        conversion, store = found.value, found.store
        origin = f"{store.label}, {store.state}"
        remarks = (
            *(f"skipped: {failure}" for failure in found.failures),
            *(f"{origin}: {note}" for note in conversion.notes),
        )
        if conversion.refusal is None:
            definition = parse_definition(conversion.text, source=self.name, origin=origin, expected=expected)
            return replace(definition, remarks=remarks)
        # Never started from, even when xmlBase64 is there (he-ha's own check: another <uuid>):
        # identity and memory from the other keys; the lines stay those the original writes.
        legacy = "".join(
            line for line in conversion.text.splitlines(keepends=True) if not line.startswith("xmlBase64=")
        )
        definition = parse_definition(legacy, source=self.name, origin=origin, expected=expected)
        return replace(
            definition,
            lines=body_lines(conversion.text),
            spec=None,
            refusal=f"refused: {conversion.refusal}",
            remarks=remarks,
        )


def ovf_store_source(conf: HostedEngineConf, conf_path: Path, roots: VdsmRoots) -> OvfStoreVmConf | None:
    """The OVF_STORE source of a host whose hosted-engine.conf names the storage domain
    (``sdUUID``, ``domainType``); None otherwise. Nothing is read here: a block domain's LVM
    tags are read with each read of the store, so tags that cannot be read are that read's
    note (``lvs`` failing, or no side file ``<R>/lvm/<SD>.json`` under a relocated root)."""
    if not conf.sd_uuid or not conf.domain_type:
        return None
    return OvfStoreVmConf(conf, conf_path, roots)


# --- choosing --------------------------------------------------------------------------------------


NO_XML = "no xmlBase64 (the legacy device-list format): it gives the VM id and memory, but cannot start the VM"


@dataclass(frozen=True)
class Resolution:
    """The outcome of looking at every source in order."""

    definition: VmDefinition | None  # the first startable one
    partial: VmDefinition | None  # the first one without domain XML (identity and memory), if any
    notes: tuple[SourceNote, ...]  # the sources not used, and why (up to the one taken)

    @property
    def best(self) -> VmDefinition | None:
        return self.definition or self.partial

    def problem(self) -> str | None:
        """Why no startable definition was found, naming each source; or, when one was, why a
        source ahead of it failed (not merely absent: e.g. OVF_STORE unreadable or refused,
        so the engine's edits do not arrive). None when all is well."""
        if self.definition is not None:
            ahead = [str(note) for note in self.notes if note.kind != MISSING]
            return "; ".join(ahead) or None
        if not self.notes:
            return "no VM definition source is configured"
        return "no usable VM definition: " + "; ".join(str(note) for note in self.notes)


def resolve(sources: Sequence[DefinitionSource], expected: Expected) -> Resolution:
    """Look at the sources in order: the first startable definition wins. Never raises for a
    source's content: a bad source becomes a note and the next one is tried."""
    notes: list[SourceNote] = []
    partial: VmDefinition | None = None
    for source in sources:
        try:
            definition = source.read(expected)
        except DefinitionError as exc:
            notes.append(SourceNote(source.name, source.origin, str(exc)))
            continue
        except Exception as exc:  # a reader's own error must not stop the other sources
            notes.append(SourceNote(source.name, source.origin, f"{source.origin}: {type(exc).__name__}: {exc}"))
            continue
        if definition is None:
            notes.append(SourceNote(source.name, source.origin, f"{source.origin}: missing", MISSING))
        elif definition.startable:
            return Resolution(definition, partial, tuple(notes))
        else:
            why = definition.refusal or NO_XML
            notes.append(SourceNote(source.name, definition.origin, f"{definition.origin}: {why}", PARTIAL))
            partial = partial or definition
    return Resolution(None, partial, tuple(notes))


@dataclass(frozen=True)
class DefinitionPlan:
    """The sources of one host, in order, and where a definition is written."""

    sources: tuple[DefinitionSource, ...]
    output: Path | None  # hosted-engine.conf ``conf``: every definition in use (None: --vm-conf given)
    last_good: Path | None  # <state dir>/vm.conf: every startable definition
    expected: Expected

    @classmethod
    def for_host(
        cls,
        *,
        conf: Path,
        state_dir: Path,
        conf_volume: Path | None,
        explicit: Path | None,
        expected: Expected,
        volume_reader: VolumeReader | None = None,
        ovf_store: DefinitionSource | None = None,
    ) -> DefinitionPlan:
        """``ovf_store``: the engine's OVF_STORE (``ovf_store_source``), first when given."""
        if explicit is not None:  # --vm-conf: that exact file, read only
            return cls((VmConfFile(EXPLICIT, explicit),), None, None, expected)
        last_good = state_dir / "vm.conf"
        sources: list[DefinitionSource] = [] if ovf_store is None else [ovf_store]
        sources += [VmConfFile(CONF, conf), VmConfFile(LAST_GOOD, last_good)]
        if conf_volume is not None:
            sources.append(ConfVolumeVmConf(conf_volume, volume_reader))
        return cls(tuple(sources), conf, last_good, expected)

    def resolve(self, expected: Expected | None = None) -> Resolution:
        return resolve(self.sources, expected or self.expected)

    def resolve_local(self, expected: Expected | None = None, *, why: str) -> Resolution:
        """The local files only (the conf path, the last-good copy), the shared sources noted
        with ``why``: when they did not answer in time."""
        local = [source for source in self.sources if isinstance(source, VmConfFile)]
        found = resolve(local, expected or self.expected)
        skipped = tuple(
            SourceNote(source.name, source.origin, f"{source.origin}: {why}")
            for source in self.sources
            if not isinstance(source, VmConfFile)
        )
        return Resolution(found.definition, found.partial, skipped + found.notes)

    def write(self, definition: VmDefinition) -> tuple[list[Path], list[str]]:
        """Write ``definition`` where it belongs, each file only if its content changes:
        (files written, problems). A write failure is a problem text, never an exception."""
        targets = [self.output] if self.output is not None else []
        if definition.startable and self.last_good is not None:
            targets.append(self.last_good)
        written: list[Path] = []
        problems: list[str] = []
        for path in targets:
            try:
                if write_vm_conf(path, definition):
                    written.append(path)
            except OSError as exc:
                problems.append(f"cannot write {path}: {exc.strerror or exc}")
        return written, problems


def body_lines(text: str) -> tuple[str, ...]:
    """A vm.conf's content without its header: the non-blank, non-comment lines, stripped."""
    return tuple(s for s in (raw.strip() for raw in text.splitlines()) if s and not s.startswith("#"))


def write_vm_conf(path: Path, definition: VmDefinition) -> bool:
    """Replace ``path`` atomically (fsync, mode 0644, creating its directory) with the
    definition under the original's header, unless it already holds the same lines (the
    header's time aside). True if written. Raises OSError."""
    try:
        if body_lines(path.read_text(encoding="utf-8")) == definition.lines:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, definition.text(), mode=VM_CONF_MODE)
    return True


def call_with_deadline(call: Callable[[], T], timeout: float, name: str) -> T:
    """Run a blocking call (shared storage) on a daemon thread of its own; TimeoutError when it
    takes longer. The thread is left behind: a read of hung NFS cannot be interrupted, and a
    daemon thread does not keep the process from exiting. For synchronous callers (start-up,
    the CLI); the running daemon uses he_ha.offloop's lanes."""
    outcome: list[tuple[bool, object]] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"{name}: no answer within {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]
