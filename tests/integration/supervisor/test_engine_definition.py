"""The engine's own VM definition on real ``he-ha run`` processes (real sanlock daemon, a private
libvirtd serving the test driver, the deployed NFS layout of he_ha/devcluster): an OVF_STORE
volume in the hosted-engine storage domain holds the engine's OVF (the shared 4.2 sample, its
engine XML kept with every placeholder and its oVirt metadata). The daemon takes its
definition from the store (status: ``ovf-store``), writes vm.conf from it, and a start hands
libvirt the resolved XML (no placeholder left, the disk at the real volume, the hook's
lifecycle actions, the ``vdsm-ovirtmgmt`` network present); an OVF edited in the store (more
memory) is what the next start uses; a malformed OVF keeps the last good definition and
status says why; a placeholder this host cannot resolve fails the start naming it, before
anything reaches libvirt. ``he-ha vm-conf`` and ``he-ha vm-conf --resolved`` ask the daemon."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
import pytest

from he_ha.devcluster.cluster import ENGINE_UUID, Cluster, Host, state_of
from he_ha.devcluster.deployed import DeployedHostView
from he_ha.ovirt.ovf import convert_ovf
from he_ha.ovirt.vm_definition import HEADER_FIRST, body_lines
from tests.integration.ovirt_store.engine_store import FileDomain
from tests.support.elements import must_find
from tests.support.ovf_samples import OVF_42

pytestmark = pytest.mark.root

# The sample's ids (spec §3.7): its VM, storage domain, and the HE disk's image and volume
SAMPLE_VM = "eccb9cb6-affd-4806-8200-708370581227"
SAMPLE_SD = "ce880525-a44b-4248-8b63-d9e11b2f123a"
SAMPLE_IMAGE = "69a2b8c2-8d1c-4014-8f75-a85c16bc5b71"
SAMPLE_VOLUME = "3ab9fff0-9aa1-4c2e-ad67-5e25d05cb86e"
HOST_UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"  # this host's /etc/vdsm/vdsm.id (HOST-SERIAL:)


def engine_ovf(cluster: Cluster, memory_mib: int) -> bytes:
    """The 4.2 sample as the engine would write it for this cluster's VM: its ids, ``memory_mib``
    (the memory item and the engine XML's memory, current memory and NUMA cell), and the
    domain type 'test' so that libvirt's test driver runs it. Nothing else of the engine XML
    is changed: the test driver takes all of its devices, so nothing needs stripping."""
    d, vm = cluster.deployment, cluster.deployment.disk("vm")
    text = OVF_42.read_text()
    for old, new in (
        (SAMPLE_VM, ENGINE_UUID),
        (SAMPLE_SD, d.sd_uuid),
        (SAMPLE_IMAGE, vm.image),
        (SAMPLE_VOLUME, vm.volume),
    ):
        text = text.replace(old, new)
    text = re.sub(r"\b16777216\b", str(memory_mib * 1024), text)  # KiB in the engine XML
    text = re.sub(r"\b16384\b", str(memory_mib), text)  # MiB in the OVF
    assert text.count('&lt;domain type="kvm"') == 1
    return text.replace('&lt;domain type="kvm"', '&lt;domain type="test"').encode()


def store_in(cluster: Cluster) -> FileDomain:
    """The cluster's storage domain as engine_store.py writes into it (same NFS mount name)."""
    domain = FileDomain(cluster.vdsm_root, ENGINE_UUID, sd=cluster.deployment.sd_uuid)
    assert domain.domain_dir == DeployedHostView(cluster.vdsm_root, cluster.deployment).domain_dir
    return domain


def host_root(base: Path, serial: str | None = HOST_UUID) -> Path:
    """A ``--host-root``: VDSM's host id file (the HOST-SERIAL: value), or nothing at all."""
    root = base / ("facts" if serial else "no-facts")
    (root / "etc/vdsm").mkdir(parents=True, exist_ok=True)
    if serial:
        (root / "etc/vdsm/vdsm.id").write_text(serial + "\n")
    return root


def running_xml(host: Host) -> ET.Element:
    vm = host.vm()
    assert vm is not None, "the engine VM does not run"
    return ET.fromstring(vm.XMLDesc(0))


def vm_conf_cli(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "he_ha.main", "vm-conf", "--admin-socket", str(host.admin_socket), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def restart_vm(host: Host) -> dict[str, Any]:
    """In global maintenance: power off, then start through the admin API (a start refreshes
    the definition first). Returns the start's answer."""
    code, answer = host.admin.post("/v1/vm/poweroff")
    assert code == 200 and answer["ok"], answer
    host.wait_for_vm(False)
    code, answer = host.admin.post("/v1/vm/start")
    return {"code": code, **answer}


def test_the_engine_definition_comes_from_ovf_store_and_starts_resolved(
    make_cluster: Callable[..., Cluster],
    tmp_path: Path,
) -> None:
    cluster = make_cluster(1, libvirtd=True)
    host = cluster.hosts[0]
    domain = store_in(cluster)
    older, newer = domain.new_ovf_store(), domain.new_ovf_store()
    domain.engine_update(older, engine_ovf(cluster, 48), time.time() - 3600)  # the backup copy, an hour older
    domain.engine_update(newer, engine_ovf(cluster, 64), time.time())
    supervisor = host.start_supervisor("--host-root", str(host_root(tmp_path)))
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")

    # The definition is the engine's, from the newest store; vm.conf is written from it.
    definition = host.admin.get("/v1/status")["vm_definition"]
    assert definition["source"] == "ovf-store" and definition["usable"] and definition["problem"] is None
    assert newer.volume in definition["path"]
    converted = convert_ovf(engine_ovf(cluster, 64)).text
    written = host.vm_conf.read_text()
    assert written.splitlines()[0] == HEADER_FIRST and f"vmId={ENGINE_UUID}" in written.splitlines()
    assert body_lines(written) == body_lines(converted)
    assert body_lines((host.state_dir / "vm.conf").read_text()) == body_lines(converted)

    # What libvirt got: every placeholder resolved, the disk at the volume, the hook applied.
    xml = running_xml(host)
    text = ET.tostring(xml, encoding="unicode")
    for placeholder in (
        "LEASE-PATH:",
        "LEASE-OFFSET:",
        "OS-NAME:",
        "OS-VERSION:",
        "HOST-SERIAL:",
        "/rhev/data-center/00",
    ):
        assert placeholder not in text, placeholder
    vm_disk = DeployedHostView(cluster.vdsm_root, cluster.deployment).volume("vm")
    (disk,) = [d for d in xml.iterfind("devices/disk") if d.get("device") == "disk"]
    assert must_find(disk, "source").get("file") == str(vm_disk) and must_find(disk, "driver").get("type") == "raw"
    assert must_find(xml, "sysinfo/system/entry[@name='serial']").text == HOST_UUID
    assert must_find(xml, "sysinfo/system/entry[@name='product']").text == "unknown"  # no release file under the root
    assert must_find(xml, "memory").text == str(64 * 1024)
    assert [xml.findtext(tag) for tag in ("on_poweroff", "on_reboot", "on_crash")] == ["destroy"] * 3
    assert xml.find("devices/channel/target[@name='org.ovirt.hosted-engine-setup.0']") is not None
    # The engine's disk lease is resolved but not handed to libvirt (he-ha's own lease protects the VM).
    assert xml.find("devices/lease") is None
    network = libvirt.open(host.libvirt_uri).networkLookupByName("vdsm-ovirtmgmt")
    assert network.isActive() and not network.isPersistent()  # created by he-ha, transient
    log = supervisor.log_path.read_text()
    assert '"engine XML resolved"' in log and "HOST-SERIAL:" in log

    # he-ha vm-conf: what the daemon uses, and what it would hand libvirt.
    shown = vm_conf_cli(host)
    assert shown.returncode == 0, shown.stderr
    assert body_lines(shown.stdout) == body_lines(converted) and "source ovf-store:" in shown.stderr
    resolved = vm_conf_cli(host, "--resolved")
    assert resolved.returncode == 0, resolved.stderr
    preview = ET.fromstring(resolved.stdout)
    assert must_find(preview, "devices/disk[@device='disk']/source").get("file") == str(vm_disk)
    assert "LEASE-PATH:" not in resolved.stdout and preview.find("devices/lease") is None
    lease_file = vm_disk.with_name(f"{vm_disk.name}.lease")
    assert f"the engine's disk lease {cluster.deployment.disk('vm').volume}" in resolved.stderr
    assert f"{lease_file}:0" in resolved.stderr and "resolved: sysinfo serial" in resolved.stderr

    # The engine edits the VM (more memory): the next start uses it, and the change is logged.
    code, answer = host.admin.post("/v1/maintenance", {"mode": "global"})
    assert code == 200, answer
    domain.engine_update(newer, engine_ovf(cluster, 128), time.time() + 60)
    answer = restart_vm(host)
    assert answer["code"] == 200 and answer["ok"], answer
    host.wait_for_vm(True)
    assert must_find(running_xml(host), "memory").text == str(128 * 1024)
    assert "memSize=128" in body_lines(host.vm_conf.read_text())
    assert "memory 64 -> 128 MiB" in supervisor.log_path.read_text()

    # A malformed OVF in the store: the last good definition stays, and status says why.
    domain.engine_update(newer, b"<ovf:Envelope this is not XML", time.time() + 120)
    domain.engine_update(older, b"neither is this", time.time() + 120)
    answer = restart_vm(host)
    assert answer["code"] == 200 and answer["ok"], answer
    host.wait_for_vm(True)
    assert must_find(running_xml(host), "memory").text == str(128 * 1024)
    definition = host.admin.get("/v1/status")["vm_definition"]
    assert definition["usable"] and definition["source"] == "conf"
    problem = definition["problem"]
    assert problem.startswith("ovf-store: ") and newer.volume in problem and older.volume in problem, problem
    assert "starts use the last good definition" in problem
    assert supervisor.process.poll() is None
    assert "he_ha_vm_definition_problem 1" in host.admin.get("/metrics")
    shown = vm_conf_cli(host)
    assert shown.returncode == 0 and "problem: ovf-store: " in shown.stderr, shown.stderr


def test_a_placeholder_this_host_cannot_resolve_fails_the_start_naming_it(
    make_cluster: Callable[..., Cluster],
    tmp_path: Path,
) -> None:
    cluster = make_cluster(1, libvirtd=True)
    host = cluster.hosts[0]
    domain = store_in(cluster)
    domain.engine_update(domain.new_ovf_store(), engine_ovf(cluster, 64), time.time())
    host.start_supervisor("--host-root", str(host_root(tmp_path, serial=None)), "--timing", "retry_window=5")

    _, failed = host.wait_for_decision(lambda e: "HOST-SERIAL:" in str(e))
    assert "this host's host UUID is unknown" in str(failed)
    assert host.vm() is None  # nothing reached libvirt
    status = host.admin.get("/v1/status")
    assert status["vm_definition"]["source"] == "ovf-store" and status["lease_owner"] in (None, 0)
    resolved = vm_conf_cli(host, "--resolved")
    assert resolved.returncode == 1 and resolved.stdout == "" and "HOST-SERIAL:" in resolved.stderr, resolved
