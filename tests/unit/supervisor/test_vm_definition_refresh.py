"""The supervisor's side of the VM definition (``SpecSource`` in execute.py) on real files: the
refresh writes vm.conf and the last-good copy, keeps the last good definition when every
source fails, refuses only a start it cannot make (before touching the lease), logs one
warning per change; and what status, metrics and ``--vm-status`` show."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from cli.environment import CliEnvironment
from cli.status_render import render_text
from cli.vm_conf_check import CHECK_SANLOCK, NOT_RETRIEVED, SERVICE_DOWN, vm_conf_missing
from he_ha.admin.metrics_text import render
from he_ha.fsm import Outcome
from he_ha.ovirt.vm_definition import CONF, LAST_GOOD, DefinitionPlan, Expected, body_lines
from he_ha.supervisor.execute import ActionExecutor, DefinitionState, DefinitionUnavailable, SpecSource
from he_ha.supervisor.metrics import MetricInputs, build_metrics
from he_ha.supervisor.status import cluster_status, definition_view
from he_ha.supervisor.tick_snapshot import TickStats
from he_ha.vm import DomainId
from tests.integration.admin.doubles import sample_status
from tests.unit.cli_commands.conftest import ServedDouble
from tests.unit.cli_status.fixtures import cluster, host1
from tests.unit.supervisor.test_vm_definition import LEGACY, UUID, conf_volume, put, tar_reader, vm_conf

IDENTITY = DomainId("HostedEngine", UUID)


def plan_in(tmp_path: Path, volume: Path | None = None) -> DefinitionPlan:
    return DefinitionPlan.for_host(
        conf=tmp_path / "run" / "vm.conf",
        state_dir=tmp_path / "state",
        conf_volume=volume,
        explicit=None,
        expected=Expected(UUID, "vmid in hosted-engine.conf"),
        volume_reader=tar_reader,
    )


def source_in(tmp_path: Path, volume: Path | None = None, timeout: float = 5.0) -> SpecSource:
    plan = plan_in(tmp_path, volume)
    return SpecSource(plan, IDENTITY, plan.resolve(), timeout=timeout)


def problems_logged(logs: list[MutableMapping[str, Any]]) -> list[str]:
    return [entry["problem"] for entry in logs if entry["event"] == "VM definition problem"]


async def test_a_refresh_regenerates_vm_conf_from_the_last_good_copy(tmp_path: Path) -> None:
    put(tmp_path / "state" / "vm.conf", vm_conf())
    specs = source_in(tmp_path)
    await specs.refresh("start-up")
    conf = tmp_path / "run" / "vm.conf"
    assert body_lines(conf.read_text()) == body_lines(vm_conf()) and f"vmId={UUID}" in conf.read_text()
    state = specs.state()
    assert state.usable and state.problem is None and state.source == CONF  # the file just written is the best now
    spec = await specs.load()
    assert spec.id == IDENTITY and spec.source == str(conf)
    specs.close()


async def test_the_last_good_copy_follows_the_conf_path(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf(extra="smp=4\n"))  # e.g. left by the original agent
    specs = source_in(tmp_path)
    await specs.refresh("start-up")
    assert body_lines((tmp_path / "state" / "vm.conf").read_text()) == body_lines(vm_conf(extra="smp=4\n"))
    specs.close()


async def test_with_no_source_the_start_is_refused_before_the_lease_and_says_what_is_missing(tmp_path: Path) -> None:
    specs = source_in(tmp_path, conf_volume(tmp_path, LEGACY))
    with capture_logs() as logs:
        await specs.refresh("start-up")
        for _ in range(3):
            await specs.refresh("periodic")
        with pytest.raises(DefinitionUnavailable) as refused:
            await specs.load()
    message = str(refused.value)
    assert message.startswith("no usable VM definition: conf: ")
    assert f"last-good: {tmp_path / 'state' / 'vm.conf'}: missing" in message and "no xmlBase64" in message
    assert len(problems_logged(logs)) == 1  # once per change, not per refresh
    state = specs.state()
    # The conf volume's definition (identity, memory) is what the conf path holds now, as the original did.
    assert not state.usable and state.source == CONF and state.problem == message
    assert f"vmId={UUID}" in (tmp_path / "run" / "vm.conf").read_text()
    assert not (tmp_path / "state" / "vm.conf").exists()  # never a last-good copy without domain XML

    class NoLease:
        kind = "worker"

        async def acquire(self, timeout: float) -> None:
            raise AssertionError("the lease must not be touched when there is nothing to start")

    # The type: ignore must stay on the line mypy reports: not reformatted.
    # fmt: off
    executor = ActionExecutor(vm=None, holder=NoLease(), specs=specs, health=None, notifier=None,  # type: ignore[arg-type]
                              on_done=lambda done: None, migrate_uri="", io_timeout=1)
    # fmt: on
    result = await executor.start_vm()
    assert result.outcome is Outcome.FAILED and result.reason == message
    specs.close()


async def test_once_a_source_appears_the_next_start_uses_it(tmp_path: Path) -> None:
    specs = source_in(tmp_path)
    memory: list[int] = []
    specs.on_memory(memory.append)
    with pytest.raises(DefinitionUnavailable):
        await specs.load()
    put(tmp_path / "state" / "vm.conf", vm_conf())
    with capture_logs() as logs:
        spec = await specs.load()
    assert spec.id == IDENTITY and specs.state().usable and specs.state().problem is None
    assert [e["event"] for e in logs if e["event"].startswith("VM definition usable")] == ["VM definition usable"]
    assert memory and memory[-1] == 4096
    specs.close()


async def test_when_every_source_fails_the_last_good_definition_is_kept_and_rewritten(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf())
    specs = source_in(tmp_path)
    await specs.refresh("start-up")
    (tmp_path / "run" / "vm.conf").write_text("garbage\n")  # a bad edit
    (tmp_path / "state" / "vm.conf").unlink()
    with capture_logs() as logs:
        await specs.refresh("periodic")
    assert [e["log_level"] for e in logs if e["event"] == "VM definition source not used"] == ["warning", "info"]
    # Both files are rewritten from the definition kept in memory, so they are good again.
    assert body_lines((tmp_path / "run" / "vm.conf").read_text()) == body_lines(vm_conf())
    assert body_lines((tmp_path / "state" / "vm.conf").read_text()) == body_lines(vm_conf())
    assert specs.state().usable and specs.state().problem is None
    specs.close()


async def test_when_nothing_can_be_written_starts_use_the_definition_kept_in_memory(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf())
    specs = source_in(tmp_path)
    (tmp_path / "state").write_text("not a directory")  # the last-good copy cannot be written
    await specs.refresh("start-up")
    assert specs.state().problem == f"cannot write {tmp_path / 'state' / 'vm.conf'}: Not a directory"
    (tmp_path / "run" / "vm.conf").unlink()  # nor the conf path (a file where its directory should be)
    (tmp_path / "run").rmdir()
    (tmp_path / "run").write_text("not a directory")
    await specs.refresh("periodic")
    state = specs.state()
    assert state.usable and state.source == CONF
    assert state.problem is not None and state.problem.startswith("no usable VM definition: conf: ")
    assert f"starts use the last good definition, read from {tmp_path / 'run' / 'vm.conf'}" in state.problem
    assert f"cannot write {tmp_path / 'run' / 'vm.conf'}: " in state.problem
    spec = await specs.load()  # the start is made from memory
    assert spec.id == IDENTITY
    specs.close()


async def test_another_vm_at_a_source_is_not_taken_while_running(tmp_path: Path) -> None:
    put(tmp_path / "state" / "vm.conf", vm_conf())
    specs = source_in(tmp_path)
    await specs.refresh("start-up")
    other = vm_conf().replace("<name>HostedEngine</name>", "<name>Other</name>")
    put(tmp_path / "run" / "vm.conf", other)
    await specs.refresh("periodic")
    state = specs.state()
    assert state.usable and state.problem is None  # the last-good copy serves; the conf path is put right
    assert body_lines((tmp_path / "run" / "vm.conf").read_text()) == body_lines(vm_conf())
    specs.close()


async def test_a_hung_refresh_is_a_problem_not_a_frozen_loop(tmp_path: Path) -> None:
    put(tmp_path / "run" / "vm.conf", vm_conf())
    release = threading.Event()

    def hung(path: Path) -> dict[str, str]:
        release.wait(10)
        return {}

    (tmp_path / "run" / "vm.conf").unlink()
    specs = source_in(tmp_path, tmp_path / "vol", timeout=0.2)
    specs.plan = DefinitionPlan.for_host(
        conf=tmp_path / "run" / "vm.conf",
        state_dir=tmp_path / "state",
        conf_volume=tmp_path / "vol",
        explicit=None,
        expected=specs.plan.expected,
        volume_reader=hung,
    )
    await specs.refresh("periodic")
    assert (
        specs.state().problem
        == "the VM definition could not be refreshed: vm-definition: refresh: no answer within 0.2 s"
    )
    await specs.refresh("periodic")  # refused at once while the first one is stuck
    assert "stuck" in (specs.state().problem or "")
    release.set()
    await asyncio.sleep(0.1)
    specs.close()


async def test_the_periodic_refresh_stops_with_the_daemon(tmp_path: Path) -> None:
    put(tmp_path / "state" / "vm.conf", vm_conf())
    plan = plan_in(tmp_path)
    specs = SpecSource(plan, IDENTITY, plan.resolve(), timeout=5, period=0.05)
    stopping = asyncio.Event()
    task = asyncio.create_task(specs.run(stopping))
    await asyncio.sleep(0.3)
    assert (tmp_path / "run" / "vm.conf").exists()  # written by a periodic refresh
    stopping.set()
    await asyncio.wait_for(task, 1)
    specs.close()


# --- status, metrics, --vm-status ------------------------------------------------------------


UNUSABLE = DefinitionState(
    usable=False, source=None, origin=None, age=None, problem="no usable VM definition: conf: /run/x/vm.conf: missing"
)


def test_status_shows_the_definition() -> None:
    good = DefinitionState(usable=True, source=LAST_GOOD, origin="/var/lib/he-ha/vm.conf", age=12.5, problem=None)
    status = cluster_status(
        host_id=1,
        inputs=None,
        record=None,
        published=None,
        publishing=False,
        now=0.0,
        storage_error=None,
        vm_here="shutoff",
        hypervisor="connected",
        definition=good,
    )
    view = status.vm_definition
    assert view is not None and (view.usable, view.source, view.path, view.age, view.problem) == (
        True,
        LAST_GOOD,
        "/var/lib/he-ha/vm.conf",
        12.5,
        None,
    )
    assert status.model_dump(mode="json")["vm_definition"]["source"] == LAST_GOOD


def test_metrics_show_usable_problem_and_age() -> None:
    def metrics(state: DefinitionState) -> str:
        return render(
            build_metrics(
                MetricInputs(
                    record=None,
                    inputs=None,
                    ticks=TickStats(),
                    peer_changes={},
                    last_read=None,
                    last_write=None,
                    notifier=None,
                    monitor_readings={},
                    monitor_errors={},
                    decisions_dropped=0,
                    vm_actions_failed=0,
                    lease_held=False,
                    vm_definition=state,
                )
            )
        )

    text = metrics(UNUSABLE)
    assert 'he_ha_vm_definition_usable{source="none"} 0' in text and "he_ha_vm_definition_problem 1" in text
    assert "he_ha_vm_definition_age_seconds" not in text
    text = metrics(DefinitionState(True, CONF, "/run/x/vm.conf", 3.0, None))
    assert 'he_ha_vm_definition_usable{source="conf"} 1' in text and "he_ha_vm_definition_problem 0" in text
    assert "he_ha_vm_definition_age_seconds 3" in text


def test_vm_status_text_shows_a_definition_problem_only(tmp_path: Path) -> None:
    plain = render_text(cluster(host1()))

    fine = cluster(host1()).model_copy(
        update={"vm_definition": definition_view(DefinitionState(True, CONF, "/run/x/vm.conf", 1.0, None))}
    )
    assert render_text(fine) == plain  # the original's output, unchanged
    broken = cluster(host1()).model_copy(update={"vm_definition": definition_view(UNUSABLE)})
    extra = [line for line in render_text(broken).splitlines() if line not in plain.splitlines()]
    assert extra == [
        "he-ha VM definition                : UNUSABLE: this host cannot start the VM",
        "he-ha VM definition problem        : no usable VM definition: conf: /run/x/vm.conf: missing",
    ]


def test_the_cli_names_the_daemons_reason_when_vm_conf_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    socket = Path(tempfile.mkdtemp(prefix="he-ha-vmdef-", dir="/tmp")) / "admin.sock"  # short: sun_path limit
    env = CliEnvironment.from_environ({"HE_HA_ADMIN_SOCKET": str(socket)})
    missing = tmp_path / "vm.conf"
    assert vm_conf_missing(env, missing) == [NOT_RETRIEVED, SERVICE_DOWN, ""]
    served = ServedDouble(socket, deadline=1.0)
    status = sample_status().model_copy(update={"vm_definition": definition_view(UNUSABLE)})
    served.controller.status = lambda: status  # type: ignore[method-assign]
    served.start()
    try:
        capsys.readouterr()
        assert vm_conf_missing(env, missing) == [NOT_RETRIEVED, CHECK_SANLOCK, ""]  # the original's lines
        assert capsys.readouterr().err == f"he-ha: {UNUSABLE.problem}\n"
    finally:
        served.stop()
        shutil.rmtree(socket.parent, ignore_errors=True)
