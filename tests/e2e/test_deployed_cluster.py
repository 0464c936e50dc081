"""Three ``he-ha run`` processes on hosts laid out as ``hosted-engine --deploy`` and VDSM leave
them (he_ha/devcluster/cluster.py, deployed.py): hosted-engine.conf with the original's keys
only, the volumes found by VDSM's layout, a configuration archive on the conf volume. The
safety watch (tests/e2e/safety.py) runs all test long: never two copies of the engine VM,
never one without its lease."""

from __future__ import annotations

import concurrent.futures
import re
import tarfile
import time
from collections.abc import Callable

import pytest

from he_ha.config import parse_flat_file
from he_ha.devcluster.cluster import IO_TIMEOUT, WAIT, Host, rule_of, state_of
from he_ha.devcluster.demo_shim import ShimRun, hosted_engine
from he_ha.devcluster.deployed import ARCHIVE_BYTES, VM_CONF_HEADER
from he_ha.lease import host_dead_seconds
from tests.e2e.world import World

pytestmark = [pytest.mark.slow, pytest.mark.root]

HE_HA_KEYS = ("metadata_path", "lockspace_path", "vm_lease_path", "vm_lease_offset")
RUN_LINK = "vdsm run link (Image.prepare)"


def _elected(world: World, started: float) -> Host:
    """Exactly one host runs the engine (EngineUp); every other one knows it runs elsewhere."""
    run = world.wait_for_new_run(started)
    engine = world.host(run)
    engine.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    for host in world.hosts:
        if host is not engine:
            host.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere")
    assert [r.host for r in world.runs_since(started)] == [engine.name]
    return engine


def _shim(host: Host, *args: str) -> ShimRun:
    done = hosted_engine(host, *args)
    assert done.ok, f"{done.command} on {host.name}: exit {done.code}\n{done.stdout}{done.stderr}"
    return done


def test_deployed_hosts_elect_one_engine_and_fail_over_on_a_host_crash(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    for host in world.hosts:
        keys = parse_flat_file(host.hosted_engine_conf)
        assert not [key for key in HE_HA_KEYS if key in keys], f"{host.name}: he-ha key in {host.hosted_engine_conf}"
        paths = host.storage_paths()
        assert {role: found["rule"] for role, found in paths.items()} == dict.fromkeys(paths, RUN_LINK)
        print(f"{host.name}: he-ha storage-paths: {paths}")
    started = time.monotonic()
    for host in world.hosts:  # all at once: they elect one among themselves
        host.start_supervisor()
    engine = _elected(world, started)
    survivors = [h for h in world.hosts if h is not engine]

    crashed_at = time.monotonic()
    engine.crash()
    again = world.wait_for_new_run(crashed_at, host_dead_seconds(IO_TIMEOUT) + WAIT)
    failover = again.first - crashed_at
    print(
        f"failover on the deployed-layout cluster: {engine.name} crashed -> VM running on {again.host} "
        f"after {failover:.1f} s (sanlock host-dead time {host_dead_seconds(IO_TIMEOUT)} s)"
    )
    assert again.host in [h.name for h in survivors]
    world.host(again).wait_for_decision(lambda e: state_of(e) == "EngineUp", after=len(world.host(again).decisions()))
    world.assert_supervisors_alive(survivors)
    world.finish()


def test_a_host_rebooted_with_an_empty_run_directory_regenerates_vm_conf_and_rejoins(
    make_world: Callable[..., World],
) -> None:
    world = make_world(3)
    first = world.engine_on_first()
    idle = [h for h in world.hosts if h.name != first.host][-1]
    engine = world.host(first)

    idle.crash()
    idle.reboot(wipe_run_dir=True)  # its run/ is a tmpfs: the original's vm.conf and he-ha's run directory are gone
    rebooted = len(idle.decisions())
    # The original's vm.conf was not there at start: he-ha writes it again from its sources.
    deadline = time.monotonic() + WAIT
    supervisor = idle.supervisors[-1]
    while not idle.vm_conf.exists():
        assert supervisor.process.poll() is None, f"exit {supervisor.process.returncode}\n{supervisor.log_tail()}"
        assert time.monotonic() < deadline, f"{idle.vm_conf} not regenerated\n{supervisor.log_tail()}"
        time.sleep(0.2)
    text = idle.vm_conf.read_text()
    assert text.splitlines()[0] == VM_CONF_HEADER, text
    assert re.search(r"^vmId=5b1f0c3e-8a2d-4c6e-9f10-2a3b4c5d6e7f$", text, re.MULTILINE), text
    idle.wait_for_decision(lambda e: rule_of(e) == "down.engine-elsewhere", after=rebooted)
    slot = world.slot(idle)
    assert slot is not None and not slot.stopped and slot.score > 0, slot
    (view,) = [v for v in engine.admin.get("/v1/status")["hosts"] if v["host_id"] == idle.host_id]
    assert view["live"] is True, view
    assert [r.host for r in world.runs_since(first.first)] == [first.host]  # the engine never moved
    world.assert_supervisors_alive(world.hosts)
    world.finish()


def _get(host: Host, key: str) -> str:
    out = _shim(host, "--get-shared-config", key, "--type=he_shared").stdout
    found = re.fullmatch(rf"\n{re.escape(key)} : (.*), type : he_shared\n\n", out)
    assert found, out
    return found.group(1)


def test_shared_config_set_on_one_host_is_read_on_the_others(make_world: Callable[..., World]) -> None:
    world = make_world(3)
    world.engine_on_first()
    first, second, third = world.hosts
    before = _get(first, "gateway")
    assert [_get(h, "gateway") for h in world.hosts] == [before] * 3

    _shim(first, "--set-shared-config", "gateway", "192.0.2.254", "--type=he_shared")
    assert [_get(h, "gateway") for h in world.hosts] == ["192.0.2.254"] * 3
    assert parse_flat_file(first.hosted_engine_conf)["gateway"] == before  # he_local is another file

    # Two hosts write at once: each update is either applied or refused, never lost.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda args: hosted_engine(args[0], "--set-shared-config", args[1], args[2], "--type=he_shared"),
                [(second, "mnt_options", "nosharecache"), (third, "tcp_t_address", "192.0.2.7")],
            )
        )
    for run, (key, value) in zip(runs, [("mnt_options", "nosharecache"), ("tcp_t_address", "192.0.2.7")], strict=True):
        if run.ok:
            assert _get(first, key) == value, (run, key)
        else:
            assert run.stderr.strip(), run  # refused with a reason
    assert any(run.ok for run in runs), runs
    assert _get(third, "gateway") == "192.0.2.254"

    # Still the archive deploy's readers expect: 20480 bytes, the five members
    volume = world.cluster.conf_file
    assert volume.stat().st_size >= ARCHIVE_BYTES
    with tarfile.open(fileobj=volume.open("rb")) as archive:
        assert sorted(archive.getnames()) == sorted(
            ["vm.conf", "broker.conf", "version", "fhanswers.conf", "hosted-engine.conf"]
        )
    world.assert_supervisors_alive(world.hosts)
    world.finish()
