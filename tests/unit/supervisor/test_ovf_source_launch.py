"""The engine XML in the start path (he_ha/supervisor/engine_launch.py, ActionExecutor.start_vm):
a plain domain XML goes to libvirt unchanged; the engine's XML (from an OVF_STORE written as the
engine writes it) is resolved against the host's files, its disk lease resolved but kept out of
what libvirt gets; an unresolvable placeholder fails the start naming it before the lease is
touched; the ``vdsm-<net>`` networks are made present in libvirt (test driver)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from he_ha.config import load_hosted_engine_conf
from he_ha.devcluster.cluster import domain_xml
from he_ha.fsm import Outcome
from he_ha.ovirt.engine_xml import EngineXmlError, HostFacts, PlaceholderError, UnresolvedVolume, vdsm_network_xml
from he_ha.ovirt.layout import VdsmRoots
from he_ha.ovirt.vm_definition import OVF_STORE_SOURCE
from he_ha.supervisor.engine_launch import (
    EngineXmlPreparer,
    ensure_networks,
    is_engine_xml,
    prepare_launch_xml,
    without_leases,
)
from he_ha.supervisor.execute import ActionExecutor, SpecSource
from he_ha.vm import DomainSpec, LibvirtConnection, parse_domain_xml
from tests.integration.ovirt_store.engine_store import FileDomain, Volume
from tests.support.elements import must_find
from tests.unit.supervisor.test_ovf_source import IDENTITY, UUID, Host, sample

HOST = HostFacts("RHEL", "9.4-1.el9", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
SAMPLE_SD = "ce880525-a44b-4248-8b63-d9e11b2f123a"
SAMPLE_IMAGE = "69a2b8c2-8d1c-4014-8f75-a85c16bc5b71"
SAMPLE_VOLUME = "3ab9fff0-9aa1-4c2e-ad67-5e25d05cb86e"


def engine_host(tmp_path: Path) -> tuple[Host, Volume]:
    """A host whose OVF_STORE holds the 4.2 sample for this domain, with the HE disk's volume."""
    host = Host(tmp_path)
    disk = Volume()
    host.domain.add_volume(disk, '{"DiskAlias":"he_virtio_disk"}', "HEVD", 1024 * 1024)
    text = sample().decode()
    for old, new in ((SAMPLE_SD, host.domain.sd), (SAMPLE_IMAGE, disk.image), (SAMPLE_VOLUME, disk.volume)):
        text = text.replace(old, new)
    host.write_ovf(text.encode())
    return host, disk


def engine_spec(host: Host) -> DomainSpec:
    definition = host.plan().resolve().definition
    assert definition is not None and definition.source == OVF_STORE_SOURCE and definition.spec is not None
    return definition.spec


def test_only_the_engines_xml_is_resolved(tmp_path: Path) -> None:
    host, _ = engine_host(tmp_path)
    plain = parse_domain_xml(domain_xml(), "harness")
    assert not is_engine_xml(plain.xml)
    launch = prepare_launch_xml(plain, host.conf, host.roots, HOST)
    assert launch.spec is plain and launch.resolved is None and launch.engine_lease is None
    assert is_engine_xml(engine_spec(host).xml)


def test_the_engine_xml_is_resolved_and_its_lease_kept_for_later(tmp_path: Path) -> None:
    host, disk = engine_host(tmp_path)
    spec = engine_spec(host)
    launch = prepare_launch_xml(spec, host.conf, host.roots, HOST)
    root = ET.fromstring(launch.spec.xml)
    volume = host.domain.volume_path(disk)
    assert must_find(root, "devices/disk[@device='disk']/source").get("file") == str(volume)
    assert must_find(root, "sysinfo/system/entry[@name='serial']").text == HOST.serial
    assert root.find("devices/lease") is None  # not handed to libvirt (yet)
    assert launch.spec.id == spec.id and launch.spec.source == spec.source
    lease = launch.engine_lease
    assert lease is not None and (lease.lockspace, lease.key) == (host.domain.sd, disk.volume)
    assert lease.path == volume.with_name(f"{disk.volume}.lease") and lease.offset == 0
    assert launch.resolved is not None and ET.fromstring(launch.resolved.xml).find("devices/lease") is not None
    assert "vdsm-ovirtmgmt" in launch.resolved.networks


def test_an_unresolvable_placeholder_or_volume_is_refused_by_name(tmp_path: Path) -> None:
    host, disk = engine_host(tmp_path)
    spec = engine_spec(host)
    with pytest.raises(PlaceholderError, match=r"HOST-SERIAL:.*host UUID is unknown"):
        prepare_launch_xml(spec, host.conf, host.roots, HostFacts("RHEL", "9", None))
    host.domain.volume_path(disk).unlink()
    with pytest.raises(UnresolvedVolume, match=disk.volume):
        prepare_launch_xml(spec, host.conf, host.roots, HOST)
    with pytest.raises(EngineXmlError, match="no sdUUID"):
        prepare_launch_xml(spec, host.conf.model_copy(update={"sd_uuid": None}), host.roots, HOST)
    block = host.conf.model_copy(update={"domain_type": "iscsi"})
    tags = host.roots.dev_root.parent / "lvm" / f"{block.sd_uuid}.json"
    with pytest.raises(UnresolvedVolume, match=f"LVM tags, which cannot be read: cannot read the LV tags file {tags}"):
        prepare_launch_xml(spec, block, host.roots, HOST)


def test_without_leases_drops_only_the_lease_devices() -> None:
    xml = (
        "<domain><name>x</name><devices><disk/><lease><key>k</key><lockspace>l</lockspace>"
        "<target path='/p'/></lease></devices></domain>"
    )
    root = ET.fromstring(without_leases(xml))
    assert root.find("devices/lease") is None and root.find("devices/disk") is not None


def test_vdsm_networks_are_made_present(tmp_path: Path) -> None:
    node = tmp_path / "node.xml"
    node.write_text("<node></node>")
    conn = libvirt.open(f"test://{node}")  # a private test driver: its networks are this test's
    try:
        done = ensure_networks(conn, frozenset({"vdsm-ovirtmgmt"}), "engine XML")
        assert done == ["vdsm-ovirtmgmt: created (transient, bridged to ovirtmgmt); VDSM defines it on an oVirt host"]
        network = conn.networkLookupByName("vdsm-ovirtmgmt")
        assert network.isActive() and not network.isPersistent()
        assert "<bridge name='ovirtmgmt'/>" in network.XMLDesc(0)
        assert ensure_networks(conn, frozenset({"vdsm-ovirtmgmt"}), "engine XML") == []  # there already
        conn.networkDefineXML(vdsm_network_xml("vdsm-display"))  # defined (as VDSM does), not active
        assert ensure_networks(conn, frozenset({"vdsm-display", "vdsm-ovirtmgmt"}), "engine XML") == [
            "vdsm-display: started"
        ]
        with pytest.raises(EngineXmlError, match="needs libvirt network 'lab'"):
            ensure_networks(conn, frozenset({"lab"}), "engine XML")
    finally:
        conn.close()


class RecordingHolder:
    kind = "worker"

    def __init__(self) -> None:
        self.acquired = 0

    async def acquire(self, timeout: float) -> None:
        self.acquired += 1
        raise AssertionError("the lease must not be touched when the XML cannot be made startable")


async def test_a_start_with_an_unresolvable_placeholder_fails_before_the_lease(tmp_path: Path) -> None:
    host, _ = engine_host(tmp_path)
    plan = host.plan()
    specs = SpecSource(plan, IDENTITY, plan.resolve(), timeout=5)
    connection = LibvirtConnection("test:///default")
    engine_xml = EngineXmlPreparer(
        conf=host.conf, roots=host.roots, connection=connection, timeout=5, host=HostFacts(None, None, None)
    )
    holder = RecordingHolder()
    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    executor = ActionExecutor(vm=None, holder=holder, specs=specs, health=None, notifier=None,  # type: ignore[arg-type]
                              on_done=lambda done: None, migrate_uri="", io_timeout=1, engine_xml=engine_xml)
    # fmt: on
    result = await executor.start_vm()
    assert result.outcome is Outcome.FAILED and holder.acquired == 0
    assert "OS-NAME:" in result.reason and "cannot be resolved" in result.reason, result.reason
    with pytest.raises(PlaceholderError):
        await executor.preview_launch()
    engine_xml.close()
    specs.close()


async def test_the_host_facts_are_read_once_from_the_host_root(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "etc/vdsm").mkdir(parents=True)
    (root / "etc/vdsm/vdsm.id").write_text("my-host-id\n")
    (root / "etc/debian_version").write_text("12.11\n")
    domain = FileDomain(tmp_path / "R", UUID).create()
    preparer = EngineXmlPreparer(
        conf=load_hosted_engine_conf(domain.conf_path),
        roots=VdsmRoots.from_mount_root(domain.mount_root),
        connection=LibvirtConnection("test:///default"),
        timeout=5,
    )
    started = time.monotonic()
    facts = await preparer.read_host_facts(root)
    assert facts == HostFacts("Debian", "12.11-", "my-host-id") and preparer.host == facts
    assert time.monotonic() - started < 5
    preparer.close()
