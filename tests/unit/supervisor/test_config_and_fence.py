"""``he-ha run`` options, the start-up configuration checks, and the fence command against
libvirt's (in-process) test driver."""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from he_ha.config import ConfigError, ConfigPaths
from he_ha.fsm import TimingError
from he_ha.supervisor.cli import add_arguments, settings_from
from he_ha.supervisor.fence import FenceFileError, FenceTarget, destroy, read_fence_file, write_fence_file
from he_ha.supervisor.host_plan import load_plan
from he_ha.supervisor.settings import SupervisorSettings, default_holder_kind, lock_manager
from he_ha.vm import DomainId

UUID = "5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_become_settings() -> None:
    settings = settings_from(
        parse(
            "--tick-period",
            "2",
            "--timing",
            "liveness=6",
            "--timing",
            "max_retries=5",
            "--run-dir",
            "/tmp/x",
            "--libvirt-uri",
            "test:///default",
        )
    )
    assert settings.tick_period == 2.0 and settings.timing.liveness == 6.0 and settings.timing.max_retries == 5
    assert settings.admin_socket_path == Path("/tmp/x/admin.sock")
    assert settings.keeper_file == Path("/tmp/x/lease-keeper.json")
    assert settings.holder_kind == "worker"  # in-process hypervisor: the lease dies with us
    assert SupervisorSettings(libvirt_uri="qemu:///system", qemu_conf=Path("/nonexistent")).holder_kind == "keeper"
    assert settings_from(parse("--lease-holder", "qemu")).holder_kind == "qemu"


QEMU_CONF_OVIRT = """# qemu.conf as vdsm-tool configure leaves it (excerpt)
#lock_manager = "lockd"
## beginning of configuration section by vdsm-4.50
dynamic_ownership=1
lock_manager="sanlock"
user="qemu"
## end of configuration section by vdsm
"""


@pytest.mark.parametrize(
    ("text", "uri", "expected"),
    [
        (QEMU_CONF_OVIRT, "qemu:///system", "qemu"),  # an oVirt host: live migration works
        (QEMU_CONF_OVIRT, "qemu+unix:///system", "qemu"),
        (QEMU_CONF_OVIRT, "qemu+tcp://elsewhere/system", "keeper"),  # another host's libvirtd: not this file
        (QEMU_CONF_OVIRT, "test:///default", "worker"),
        ('#lock_manager = "sanlock"\n', "qemu:///system", "keeper"),  # commented out
        ('lock_manager = "lockd"\n', "qemu:///system", "keeper"),
        ('lock_manager = "sanlock"\nlock_manager = "lockd"\n', "qemu:///system", "keeper"),  # the last one wins
        ("", "qemu:///system", "keeper"),
    ],
)
def test_the_default_lease_holder_follows_libvirts_lock_manager(
    tmp_path: Path, text: str, uri: str, expected: str
) -> None:
    conf = tmp_path / "qemu.conf"
    conf.write_text(text, encoding="utf-8")
    assert default_holder_kind(uri, conf) == expected
    assert settings_from(parse("--libvirt-uri", uri, "--qemu-conf", str(conf))).holder == expected
    assert (
        settings_from(parse("--libvirt-uri", uri, "--qemu-conf", str(conf), "--lease-holder", "keeper")).holder
        == "keeper"
    )


def test_an_unreadable_qemu_conf_means_the_keeper(tmp_path: Path) -> None:
    assert default_holder_kind("qemu:///system", tmp_path / "missing.conf") == "keeper"
    assert default_holder_kind("qemu:///system", tmp_path) == "keeper"  # a directory
    assert lock_manager('  lock_manager = "sanlock"  # set by vdsm\n') == "sanlock"


def test_the_broker_socket_is_at_the_originals_path_unless_moved_or_turned_off() -> None:
    assert settings_from(parse()).broker_socket == Path("/var/run/ovirt-hosted-engine-ha/broker.socket")
    assert settings_from(parse("--broker-socket", "/tmp/h1/broker.socket")).broker_socket == Path(
        "/tmp/h1/broker.socket"
    )
    assert settings_from(parse("--broker-socket", "")).broker_socket is None


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("bogus=1", "unknown timing key 'bogus'"),
        ("liveness", "expected KEY=SECONDS"),
        ("liveness=soon", "is not a number"),
        ("history=10", "must exceed liveness"),
        ("failback=maybe", "'maybe' is not true or false"),
    ],
)
def test_bad_timing_options_are_named(option: str, message: str) -> None:
    with pytest.raises(TimingError, match=message):
        settings_from(parse("--timing", option))


def test_failback_is_a_switch() -> None:
    """Issue 14: off by default; --timing failback=true (the original's true/false words)."""
    assert settings_from(parse()).timing.failback is False
    timing = settings_from(parse("--timing", "failback=True", "--timing", "failback_dwell=600")).timing
    assert timing.failback is True and timing.failback_dwell == 600.0
    assert settings_from(parse("--timing", "failback=no")).timing.failback is False


def write_host(tmp_path: Path, *, engine: str, vm_conf: str | None = None) -> SupervisorSettings:
    conf = tmp_path / "hosted-engine.conf"
    conf.write_text(engine)
    vm = tmp_path / "vm.conf"
    xml = f"<domain type='test'><name>HostedEngine</name><uuid>{UUID}</uuid><memory unit='GiB'>4</memory></domain>"
    vm.write_text(
        vm_conf
        if vm_conf is not None
        else f"vmId={UUID}\nmemSize=4096\nxmlBase64={base64.b64encode(xml.encode()).decode()}\n"
    )
    return SupervisorSettings(
        paths=ConfigPaths(
            hosted_engine_conf=conf,
            agent_conf=tmp_path / "agent.conf",
            broker_conf=tmp_path / "broker.conf",
            ha_conf=tmp_path / "ha.conf",
        ),
        vm_conf=vm,
        hostname="h1",
    )


GOOD = f"host_id=3\nvmid={UUID}\nnetwork_test=none\nbridge=lo\nmetadata_path=/m\nlockspace_path=/l\n"


def test_a_good_configuration(tmp_path: Path) -> None:
    plan = load_plan(write_host(tmp_path, engine=GOOD))
    assert (plan.host_id, plan.hostname, plan.resource, plan.vm_memory_mib) == (3, "h1", UUID, 4096)
    assert (plan.metadata_path, plan.lockspace_path) == (Path("/m"), Path("/l"))
    assert plan.priority == 0  # issue 14: he_ha_priority absent
    assert load_plan(write_host(tmp_path, engine=GOOD + "he_ha_priority=-5\n")).priority == -5


def test_memory_from_a_plain_domain_xml(tmp_path: Path) -> None:
    xml = f"<domain type='test'><name>HostedEngine</name><uuid>{UUID}</uuid><memory unit='GiB'>4</memory></domain>"
    assert load_plan(write_host(tmp_path, engine=GOOD, vm_conf=xml)).vm_memory_mib == 4096


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        (
            GOOD.replace("metadata_path=/m\n", ""),
            r"key 'metadata_image_UUID': required to find the metadata volume \(or he-ha's metadata_path\)",
        ),
        (
            GOOD.replace("lockspace_path=/l\n", ""),
            r"key 'lockspace_image_UUID': required to find the lockspace volume \(or he-ha's lockspace_path\)",
        ),
        (GOOD + "configured=False\n", "not configured"),
        (GOOD.replace(UUID, "not-a-uuid"), "key 'vmid' = 'not-a-uuid': not a UUID"),
        (GOOD.replace("host_id=3", "host_id=0"), "key 'host_id' = '0'"),
        (GOOD + "he_ha_priority=top\n", "key 'he_ha_priority' = 'top': .*from -1000 to 1000"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, engine: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_plan(write_host(tmp_path, engine=engine))


def test_a_vm_conf_without_xml_is_not_startable_but_not_fatal(tmp_path: Path) -> None:
    # A vm.conf is not a configuration error any more (tests/unit/supervisor/test_vm_definition*.py).
    plan = load_plan(write_host(tmp_path, engine=GOOD, vm_conf=f"vmId={UUID}\nmemSize=1\n"))
    assert plan.first.definition is None and plan.identity == DomainId("HostedEngine", UUID)
    assert str(tmp_path / "vm.conf") in (plan.first.problem() or "") and "xmlBase64" in (plan.first.problem() or "")


def test_fence_file_round_trip_and_refusal(tmp_path: Path) -> None:
    target = FenceTarget("qemu:///system", DomainId("HostedEngine", UUID))
    write_fence_file(tmp_path / "fence.json", target)
    assert read_fence_file(tmp_path / "fence.json") == target
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(FenceFileError, match="not a fence file"):
        read_fence_file(tmp_path / "bad.json")


def test_fence_destroys_a_running_domain_and_accepts_a_missing_one() -> None:
    # test:///default is an in-process hypervisor whose domain "test" is running.
    assert destroy(FenceTarget("test:///default", DomainId("test"))) == "destroyed"
    assert destroy(FenceTarget("test:///default", DomainId("absent", UUID))) == "no such domain"


def test_fence_command_leaves_the_keeper_alone_when_the_vm_cannot_be_reached(tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"
    unreachable = FenceTarget("test+unix:///default?socket=/nonexistent/sock", DomainId("HostedEngine", UUID))
    write_fence_file(fence, unreachable)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        result = subprocess.run(
            [sys.executable, "-m", "he_ha.main", "fence", str(fence), str(bystander.pid)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert bystander.poll() is None  # not ended: the VM may still run, so the lease must stay
        assert "VM NOT destroyed" in (tmp_path / "fence.log").read_text()
    finally:
        bystander.kill()
        bystander.wait()


def test_fence_command_ends_only_a_real_keeper(tmp_path: Path) -> None:
    fence = tmp_path / "fence.json"
    write_fence_file(fence, FenceTarget("test:///default", DomainId("absent", UUID)))
    result = subprocess.run(
        [sys.executable, "-m", "he_ha.main", "fence", str(fence), str(os.getpid())],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0  # we are no keeper: not signalled (we are still here)
    assert f"lease keeper {os.getpid()} was not running" in (tmp_path / "fence.log").read_text()
