"""The engine's domain XML made ready for libvirt, at every start (spec ovirt-host-integration.md §4).

he-ha launches the engine VM through libvirt, so before each start it does what VDSM and the
hosted-engine hook do to the engine's XML (he_ha/ovirt/engine_xml.py: sysinfo placeholders,
disk sources, the disk lease's path and offset, ``<on_reboot>`` removed, the hook's destroy
actions and channel). Here that resolution is wired to the host:

- **Which XML is resolved.** An *engine XML*: one that carries oVirt's VM metadata namespace,
  a placeholder VDSM knows, or a VDSM volume path. Any other domain XML (a hand-written one,
  the test harness's plain test-driver domains) goes to libvirt exactly as before: a plain
  XML has nothing to resolve, and the hook's lifecycle actions are left to its author.
- **Where the values come from.** The host facts (``read_host_facts``) are read once at
  start-up; the volumes are looked up at each start from hosted-engine.conf (``sdUUID``,
  ``domainType``, ``storage``) under ``--mount-root`` (file domains), or by the domain's LVM
  tags (block domains: read with ``lvs``, or from the side file ``<R>/lvm/<SD>.json`` under a
  relocated root; he_ha/ovirt/lvm.py). The lookups read shared storage: they run on a lane of
  their own with a deadline.
- **Refusals.** An unresolvable or unknown placeholder, a volume that cannot be found, a
  lease outside the storage domain's lockspace: ``EngineXmlError`` naming it; the start fails
  before the lease is touched and nothing reaches libvirt.
- **Leases.** The engine's XML carries the HE disk's volume lease (lockspace = the storage
  domain). It is resolved (so ``ResolvedEngineXml.lease`` names the real path and offset) and
  taken out of ``LaunchXml.spec``; ``prepare`` hands it to the lease holder (``on_launch``,
  once per start), which decides: the QEMU holder joins the storage domain's lockspace and
  puts it back beside he-ha's own lease, so QEMU holds both (he_ha/supervisor/lease_holder.py);
  the keeper and worker holders leave it out, since with libvirt's sanlock lock manager
  (``lock_manager = "sanlock"``, as VDSM configures a host) a ``<lease>`` in a lockspace no one
  on this host has joined would make every start fail. ``LAUNCH_ENGINE_LEASE`` would hand the
  resolved XML to libvirt as it is, whatever the holder (off).
- **Networks.** ``vdsm-<net>`` libvirt networks the XML names (VNC's listen network) must
  exist. VDSM defines them (persistent, autostart) when it sets up a host's networks; on a
  host without VDSM he-ha creates a missing one as VDSM would define it (bridged to ``<net>``)
  but *transient*, so nothing of he-ha's outlives libvirtd; an inactive one is started.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import libvirt
import structlog

from he_ha.config import HostedEngineConf
from he_ha.offloop import Lane, LaneError
from he_ha.ovirt.domain_meta import DomainMetaError
from he_ha.ovirt.engine_xml import (
    KNOWN_PLACEHOLDERS,
    LIBVIRT_NET_PREFIX,
    OVIRT_VM_NS,
    EngineXmlError,
    HostFacts,
    PreparedVolume,
    ResolveContext,
    ResolvedEngineXml,
    VolumeLookup,
    VolumeLookupError,
    block_volume_lookup,
    file_volume_lookup,
    read_host_facts,
    resolve_engine_xml,
    vdsm_network_xml,
)
from he_ha.ovirt.layout import BLOCK_DOMAINS, VdsmRoots
from he_ha.ovirt.lvm import block_domain_tags
from he_ha.vm import DomainSpec, LeaseSpec, LibvirtConnection

log = structlog.get_logger(__name__)

LAUNCH_ENGINE_LEASE = False  # keep the engine's lease in the spec whatever the holder (the QEMU holder re-adds it)
# What makes a domain XML the engine's (and so subject to resolution)
ENGINE_MARKERS = (OVIRT_VM_NS, "/rhev/data-center/", "/run/vdsm/storage/", *sorted(KNOWN_PLACEHOLDERS))
UNKNOWN_HOST = HostFacts(None, None, None)


def is_engine_xml(xml: str) -> bool:
    """The XML is the engine's (oVirt metadata, a VDSM placeholder or volume path): it is resolved."""
    return any(marker in xml for marker in ENGINE_MARKERS)


def without_leases(xml: str) -> str:
    """The domain XML without its ``<lease>`` devices (the engine's disk lease: see the module doc)."""
    root = ET.fromstring(xml)
    devices = root.find("devices")
    if devices is not None:
        for lease in devices.findall("lease"):
            devices.remove(lease)
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class LaunchXml:
    """What a start hands the lease holder (then libvirt), and how it was made."""

    spec: DomainSpec
    resolved: ResolvedEngineXml | None  # None: a plain domain XML, passed as it is

    @property
    def engine_lease(self) -> LeaseSpec | None:
        """The engine's own disk lease (lockspace = the storage domain), resolved; None for a
        plain XML or an engine XML without one. Not in ``spec`` unless LAUNCH_ENGINE_LEASE: the
        lease holder adds it (the QEMU holder)."""
        return self.resolved.lease if self.resolved is not None else None


def volume_lookup(conf: HostedEngineConf, roots: VdsmRoots) -> VolumeLookup:
    """The volume lookup of hosted-engine.conf's storage domain. Blocking (block domains: reads
    the LVM tags). Tags that cannot be read make a lookup that refuses every volume, saying why
    (so the start fails naming the disk: UnresolvedVolume)."""
    domain_type = (conf.domain_type or "nfs").lower()
    if domain_type not in BLOCK_DOMAINS:
        return file_volume_lookup(roots, domain_type, conf.storage)
    sd = conf.sd_uuid or ""
    try:
        tags = block_domain_tags(roots, sd)
    except DomainMetaError as exc:
        reason = f"a block domain's volumes are found by their LVM tags, which cannot be read: {exc}"

        def unreadable(sd_: str, image: str, volume: str) -> PreparedVolume:
            raise VolumeLookupError(sd_, image, volume, reason)

        return unreadable
    return block_volume_lookup(roots, sd, tags)


def prepare_launch_xml(spec: DomainSpec, conf: HostedEngineConf, roots: VdsmRoots, host: HostFacts) -> LaunchXml:
    """The XML a start launches from ``spec`` (see the module doc). Blocking (volume lookups);
    EngineXmlError naming what cannot be resolved."""
    if not is_engine_xml(spec.xml):
        return LaunchXml(spec, None)
    if not conf.sd_uuid:
        raise EngineXmlError(
            f"{spec.source}: the engine XML names storage volumes, but hosted-engine.conf has no "
            "sdUUID: its disks and lease cannot be resolved"
        )
    resolved = resolve_engine_xml(
        spec.xml, ResolveContext(host, conf.sd_uuid, volume_lookup(conf, roots)), source=spec.source
    )
    xml = resolved.xml if LAUNCH_ENGINE_LEASE else without_leases(resolved.xml)
    return LaunchXml(replace(spec, xml=xml), resolved)


class EngineXmlPreparer:
    """Resolves the engine XML for a start (off the loop, with a deadline) and makes sure the
    libvirt networks it names exist."""

    def __init__(
        self,
        *,
        conf: HostedEngineConf,
        roots: VdsmRoots,
        connection: LibvirtConnection,
        timeout: float,
        host: HostFacts = UNKNOWN_HOST,
        on_launch: Callable[[LeaseSpec | None], None] | None = None,
    ) -> None:
        self.conf = conf
        self._on_launch = on_launch  # the lease holder's ``choose``: the engine lease of this start
        self.roots = roots
        self.host = host
        self._connection = connection
        self._timeout = timeout
        self._lane = Lane("engine-xml")
        self.last: LaunchXml | None = None  # the last XML prepared for a start

    async def read_host_facts(self, root: Path) -> HostFacts:
        """This host's sysinfo values, read once (start-up); unknown ones stay None (a
        placeholder needing one is then refused by name)."""
        try:
            self.host = await self._lane.run("host facts", lambda: read_host_facts(root), self._timeout)
        except LaneError as exc:
            log.warning("host facts for the engine XML not read", error=str(exc))
        else:
            log.info(
                "host facts for the engine XML",
                os_name=self.host.os_name,
                os_version=self.host.os_version,
                serial=self.host.serial,
                root=str(root),
            )
        return self.host

    async def resolve(self, spec: DomainSpec) -> LaunchXml:
        """``prepare_launch_xml`` under the deadline; EngineXmlError on a refusal or a timeout."""
        try:
            return await self._lane.run(
                "resolve", lambda: prepare_launch_xml(spec, self.conf, self.roots, self.host), self._timeout
            )
        except LaneError as exc:
            raise EngineXmlError(f"{spec.source}: the engine XML could not be resolved: {exc}") from None

    async def prepare(self, spec: DomainSpec) -> LaunchXml:
        """For a start: resolved, its changes logged, its networks present."""
        launch = await self.resolve(spec)
        if launch.resolved is not None:
            resolved = launch.resolved
            log.info(
                "engine XML resolved",
                source=spec.source,
                changes=list(resolved.changes),
                networks=sorted(resolved.networks),
                engine_lease=None if resolved.lease is None else str(resolved.lease.path),
                engine_lease_launched=LAUNCH_ENGINE_LEASE,
            )
            if resolved.networks:
                await self._ensure_networks(resolved.networks, spec.source)
        if self._on_launch is not None:
            self._on_launch(launch.engine_lease)
        self.last = launch
        return launch

    async def _ensure_networks(self, names: frozenset[str], source: str) -> None:
        done = await self._connection.call("ensure-networks", lambda conn: ensure_networks(conn, names, source))
        for line in done:
            log.warning("libvirt network for the engine VM", action=line)

    def close(self) -> None:
        self._lane.close()


def ensure_networks(conn: libvirt.virConnect, names: frozenset[str], source: str) -> list[str]:
    """Each named libvirt network active; a missing ``vdsm-<net>`` created transient, bridged to
    ``<net>`` (as VDSM defines it). Returns what was done. Blocking (libvirt calls);
    EngineXmlError for a missing network that is not VDSM's."""
    done = []
    for name in sorted(names):
        try:
            network = conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise
            network = None
        if network is None:
            if not name.startswith(LIBVIRT_NET_PREFIX) or name == LIBVIRT_NET_PREFIX:
                raise EngineXmlError(
                    f"{source}: the domain needs libvirt network {name!r}, which does not exist "
                    "(and is not a VDSM network he-ha could create)"
                )
            conn.networkCreateXML(vdsm_network_xml(name))
            done.append(
                f"{name}: created (transient, bridged to {name[len(LIBVIRT_NET_PREFIX) :]}); "
                "VDSM defines it on an oVirt host"
            )
        elif not network.isActive():
            network.create()
            done.append(f"{name}: started")
    return done
