"""The engine VM defined only by the engine's OVF inside an OVF_STORE volume (docs/realvm.md,
he_ha/devcluster/realvm/engine_ovf.py): no run-directory vm.conf, no last-good copy; the OVF's
``EngineXml`` is the tiny engine in the engine's form (ovirt-vm metadata, the HE disk by its
``/rhev/data-center/<pool>/<SD>/...`` path, its ``<lease>`` with LEASE-PATH/LEASE-OFFSET, sysinfo
OS-NAME/OS-VERSION/HOST-SERIAL). he-ha on host A converts it, resolves it and starts it with
QEMU holding both leases (he-ha's and the storage domain's ``<SD>:<VOL>``); host B is refused;
an OVF edited in the other store (more memory, Updated with a newer Last Updated) is what the
next start uses.

Shortened timings: the engine's disk lease and the domain lockspace ``<SD>`` are written with
io_timeout 1, like every lease of this tier (engine_lease.py: VDSM's is 10), so that a lease
left by a dead host is free after ~70 s instead of ~140 s; nothing here waits for it, but the
tier's hosts all share that setting.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from he_ha.devcluster.cluster import ENGINE_UUID, Host, rule_of, state_of
from he_ha.devcluster.realvm import LeaseHolding, RealVmCluster, lease_holdings
from he_ha.devcluster.realvm.engine_ovf import host_serial
from he_ha.devcluster.realvm.guest import MEMORY_MIB
from tests.integration.cli_commands.test_cli_against_daemons import hosted_engine
from tests.realvm.test_engine_lease import assert_refused_for_the_lease, engine_lease_free_for
from tests.support.ovf_samples import OVF_42

pytestmark = [pytest.mark.slow, pytest.mark.root]

TEMPLATE = OVF_42  # an OVF written by a 4.2 engine
MORE_MIB = 192


def running_xml(host: Host) -> ET.Element:
    vm = host.vm()
    assert vm is not None, f"{host.name} runs no engine VM"
    return ET.fromstring(vm.XMLDesc(0))


def memory_mib(domain: ET.Element) -> int:
    memory = domain.find("memory")
    assert memory is not None and memory.get("unit") == "KiB", ET.tostring(domain)
    return int(memory.text or "0") // 1024


def leases(domain: ET.Element) -> list[tuple[str | None, str | None]]:
    return [(lease.findtext("lockspace"), lease.findtext("key")) for lease in domain.findall("devices/lease")]


def vm_conf_cli(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "he_ha.main", "vm-conf", "--admin-socket", str(host.admin_socket), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_vm(host: Host) -> None:
    """``--vm-start`` on ``host`` succeeds at the first attempt: no tick during the launch takes
    the paused QEMU, not yet holding its leases, for a VM that lost them (observe.py)."""
    seen = len(host.decisions())
    done = hosted_engine(host, "--vm-start")
    assert done.returncode == 0, (done, [rule_of(e) for e in host.decisions()[-8:]])
    assert not safety_rules(host, seen), safety_rules(host, seen)


def safety_rules(host: Host, after: int = 0) -> list[str]:
    """The safety rules ``host`` fired, from decision ``after`` on. (A power-off is still
    followed by ``safety.lease-lost``: QEMU's exit frees the lease before the VM reading
    shows the VM gone; docs/realvm.md, Findings.)"""
    return [rule for rule in map(rule_of, host.decisions()[after:]) if rule.startswith("safety.")]


def test_the_engine_vm_from_ovf_store_starts_under_the_engine_lease_and_takes_an_edit_at_the_next_start(
    make_realvm: Callable[[int], RealVmCluster],
) -> None:
    cluster = make_realvm(2)
    cluster.use_engine_ovf(TEMPLATE.read_text(), memory_mib=MEMORY_MIB)
    a, b = cluster.hosts
    assert a.deployment is not None and cluster.cluster.layout is not None
    sd, vol = a.deployment.sd_uuid, a.deployment.disk("vm").volume
    ours = cluster.cluster.layout.lockspace.name
    for host in cluster.hosts:  # the OVF is the only definition
        assert not host.vm_conf.exists() and not (host.state_dir / "vm.conf").exists()

    watcher = cluster.watch_split_brain()
    started = time.monotonic()
    cluster.start_supervisor(a)
    launched_at = cluster.wait_running(a)
    up_at = cluster.wait_healthy(a)
    print(
        f"\nreal VM from OVF_STORE: supervisor start -> QEMU running {launched_at - started:.1f} s, "
        f"health page up {up_at - started:.1f} s"
    )
    a.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    print("A's rules to EngineUp:", " ".join(rule_of(e) for e in a.decisions()))
    assert not safety_rules(a)  # its own launch was never taken for a VM without its lease
    pid = cluster.qemu_pid(a)
    assert pid is not None
    # QEMU holds both leases: he-ha's and the HE disk's volume lease in the domain's lockspace <SD>
    assert sorted(lease_holdings(a), key=lambda h: h.lockspace != ours) == [
        LeaseHolding(ours, ENGINE_UUID, pid),
        LeaseHolding(sd, vol, pid),
    ]
    domain = running_xml(a)
    assert memory_mib(domain) == MEMORY_MIB
    assert leases(domain) == [(ours, ENGINE_UUID), (sd, vol)]
    # resolved: the sysinfo placeholders are this host's, the disk is the volume, no placeholder left
    entries = {entry.get("name"): entry.text for entry in domain.findall("sysinfo/system/entry")}
    assert entries["product"] == "Debian" and entries["version"] == "12.0-" and entries["serial"] == host_serial(1)
    text = ET.tostring(domain, encoding="unicode")
    for placeholder in (
        "LEASE-PATH:",
        "LEASE-OFFSET:",
        "OS-NAME:",
        "OS-VERSION:",
        "HOST-SERIAL:",
        "/rhev/data-center/0",
    ):
        assert placeholder not in text, placeholder
    assert domain.find("devices/disk/source").get("file") == str(a.view.volume("vm"))  # type: ignore[union-attr]
    # where the definition came from, and what --resolved shows: the very leases QEMU was given
    shown = vm_conf_cli(a)
    assert shown.returncode == 0 and "ovf-store" in shown.stdout + shown.stderr, shown
    resolved = vm_conf_cli(a, "--resolved")
    assert resolved.returncode == 0, resolved.stderr
    assert leases(ET.fromstring(resolved.stdout)) == [(ours, ENGINE_UUID), (sd, vol)]
    assert (a.state_dir / "vm.conf").exists()  # the converted definition kept as the last good one

    # host B: its he-ha refuses to start a second copy, for the lease (libvirt's lock failure)
    cluster.start_supervisor(b)
    b.wait_for_decision(lambda e: state_of(e) == "EngineDown")
    assert_refused_for_the_lease(b)
    assert cluster.qemu_pid(b) is None
    assert not engine_lease_free_for(cluster, b)

    # The engine edits the VM (more memory): it writes the OVF to the other store, newer.
    edited = time.time()
    cluster.update_engine_ovf(memory_mib=MORE_MIB, store=1, epoch=edited)
    # The running VM is not changed; the next start uses the edit. Stopped in global maintenance:
    done = hosted_engine(a, "--set-maintenance", "--mode=global")
    assert done.returncode == 0, done
    done = hosted_engine(a, "--vm-poweroff")
    assert done.returncode == 0, done
    deadline = time.monotonic() + 60
    while cluster.qemu_pid(a) is not None:
        assert time.monotonic() < deadline, "the engine VM did not power off"
        time.sleep(0.2)
    # A's supervisor has seen the VM gone (safety.lease-lost may come first: safety_rules' doc)
    a.wait_for_decision(
        lambda e: (
            str((e["observation"]["local"].get("engine_health") or {}).get("vm")).startswith("down")
            and not rule_of(e).startswith("safety.")
        ),
        after=len(a.decisions()),
    )
    restarted = time.monotonic()
    start_vm(a)
    cluster.wait_running(a, not_pid=pid)
    up_again = cluster.wait_healthy(a, not_pid=pid)
    print(f"real VM from OVF_STORE: --vm-start after the edit -> health page up {up_again - restarted:.1f} s")
    new_pid = cluster.qemu_pid(a)
    assert new_pid is not None and new_pid != pid
    assert memory_mib(running_xml(a)) == MORE_MIB
    assert sorted(lease_holdings(a), key=lambda h: h.lockspace != ours) == [
        LeaseHolding(ours, ENGINE_UUID, new_pid),
        LeaseHolding(sd, vol, new_pid),
    ]
    assert f"memSize={MORE_MIB}" in (a.state_dir / "vm.conf").read_text()
    assert cluster.running() == [a]
    done = hosted_engine(a, "--set-maintenance", "--mode=none")
    assert done.returncode == 0, done
    watcher.check()
