"""A vm.conf that survives reboot, on real ``he-ha run`` processes (real sanlock daemon, libvirt's
test driver): with the run directory's vm.conf gone and a last-good copy kept, the daemon
starts, regenerates vm.conf (the original's header, ``vmId=``) and starts the VM; with no
usable source at all it keeps running, says why in status and metrics, refuses a start with
that reason, and starts the VM once a usable vm.conf appears at a source."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from he_ha.devcluster.cluster import ENGINE_UUID, Cluster, Host, state_of
from he_ha.ovirt.vm_definition import HEADER_FIRST, body_lines

pytestmark = pytest.mark.root

WAIT = 60.0


def hosted_engine_conf(host: Host) -> Path:
    command = host.command()
    return Path(command[command.index("--hosted-engine-conf") + 1])


def conf_path(host: Host) -> Path:
    """hosted-engine.conf's ``conf``: the vm.conf the original agent left (the harness writes one)."""
    for line in hosted_engine_conf(host).read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "conf":
            return Path(value.strip())
    raise AssertionError(f"{hosted_engine_conf(host)} has no conf key")


def reboot_files(host: Host) -> tuple[Path, Path, str]:
    """As after a reboot: the run directory's vm.conf (and its directory) gone. Returns the
    conf path, he-ha's own state directory for this test, and the vm.conf text that was there."""
    conf = conf_path(host)
    text = conf.read_text()
    assert "xmlBase64=" in text  # the harness leaves a startable vm.conf
    conf.unlink()
    if conf.parent.name == "ovirt-hosted-engine-ha":  # the original's run directory, on tmpfs: gone too
        shutil.rmtree(conf.parent)
    return conf, host.root / "vm-definition-state", text


def wait_until(what: str, check: Callable[[], Any], host: Host, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert host.supervisors[-1].process.poll() is None, host.supervisors[-1].log_tail()
        time.sleep(0.2)
    raise AssertionError(f"{host.name}: not {what} within {timeout} s\n{host.supervisors[-1].log_tail()}")


def assert_regenerated(conf: Path, original: str) -> None:
    lines = conf.read_text().splitlines()
    assert lines[0] == HEADER_FIRST and lines[1].startswith("# This file was generated at ") and lines[2] == ""
    assert f"vmId={ENGINE_UUID}" in lines
    assert body_lines(conf.read_text()) == body_lines(original)
    assert conf.stat().st_mode & 0o7777 == 0o644


def test_after_a_reboot_the_last_good_copy_regenerates_vm_conf_and_the_vm_starts(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, libvirtd=False)
    host = cluster.hosts[0]
    conf, state, original = reboot_files(host)
    state.mkdir()
    (state / "vm.conf").write_text(original)  # what he-ha kept before the "reboot"

    host.start_supervisor("--state-dir", str(state))
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    assert_regenerated(conf, original)
    status = host.admin.get("/v1/status")
    assert status["vm_here"] == "running"
    definition = status["vm_definition"]
    assert definition["usable"] and definition["problem"] is None
    assert definition["source"] in ("last-good", "conf")  # the regenerated file is the best source from then on
    metrics = host.admin.get("/metrics")
    assert 'he_ha_vm_definition_usable{source="' in metrics and "he_ha_vm_definition_problem 0" in metrics
    log = host.supervisors[-1].log_path.read_text()
    assert "VM definition written" in log and str(conf) in log


def test_with_no_usable_source_it_supervises_refuses_the_start_and_starts_once_one_appears(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(1, libvirtd=False)
    host = cluster.hosts[0]
    conf, state, original = reboot_files(host)
    # Failed starts zero the score for the retry window (the FSM's rule); keep it short here.
    supervisor = host.start_supervisor("--state-dir", str(state), "--timing", "retry_window=5")

    status = wait_until("publishing", lambda: _status_with_slot(host), host)
    definition = status["vm_definition"]
    assert not definition["usable"]
    problem = definition["problem"]
    assert problem.startswith("no usable VM definition: ")
    # The conf path is missing, or holds what the configuration volume gave (identity, memory).
    assert f"conf: {conf}: " in problem and f"last-good: {state / 'vm.conf'}: missing" in problem
    assert "he_ha_vm_definition_usable{source=" in host.admin.get("/metrics")
    assert "he_ha_vm_definition_problem 1" in host.admin.get("/metrics")

    # The state machine's own starts fail with that reason, before the lease is touched.
    _, failed = host.wait_for_decision(lambda e: "no usable VM definition" in json.dumps(e))
    assert state_of(failed) in ("EngineDown", "EngineStart")
    answer = wait_until("refusing the start", lambda: _start_refusal(host), host)
    assert answer["message"].startswith("start: no usable VM definition: ") and str(conf) in answer["message"]
    assert status["lease_owner"] in (None, 0)
    time.sleep(3)  # a few more ticks: still running, never exited for the missing file
    assert supervisor.process.poll() is None
    assert host.admin.get("/v1/status")["hosts"][0]["live"]
    log = supervisor.log_path.read_text()
    assert log.count('"VM definition problem"') == 1, log  # once per change, not per tick or start

    # A usable vm.conf appears at a source (an admin restores the last-good copy): the next
    # start uses it, and vm.conf is regenerated.
    state.mkdir(exist_ok=True)
    (state / "vm.conf").write_text(original)
    host.wait_for_decision(lambda e: state_of(e) == "EngineUp")
    assert_regenerated(conf, original)
    definition = host.admin.get("/v1/status")["vm_definition"]
    assert definition["usable"] and definition["problem"] is None and definition["source"] in ("last-good", "conf")
    assert '"VM definition usable"' in supervisor.log_path.read_text()


def _status_with_slot(host: Host) -> dict[str, Any] | None:
    if not host.admin_socket.exists():
        return None
    status = host.admin.get("/v1/status")
    return status if status["hosts"] else None


def _start_refusal(host: Host) -> dict[str, Any] | None:
    code, answer = host.admin.post("/v1/vm/start")
    assert code != 200, answer
    if "already under way" in answer["message"]:  # the state machine's own attempt; ask again
        return None
    return dict(answer)
