"""--set-maintenance: the original's texts and exit codes, the mode reaching the daemon."""

from __future__ import annotations

import pytest

from he_ha.admin.contract import CommandResult, MaintenanceMode
from he_ha.supervisor.controller import LOCAL_REFUSED
from tests.integration.admin.doubles import ControllerTestDouble
from tests.unit.cli_commands.conftest import HostFiles, Run, not_deployed

MODE_MISSING = "You must specify a maintenance mode with --mode\n"


@pytest.mark.parametrize("mode", ["global", "local", "none"])
def test_each_mode_reaches_the_daemon_silently(run: Run, daemon: ControllerTestDouble, mode: str) -> None:
    result = run("--set-maintenance", f"--mode={mode}")
    assert (result.status, result.out, result.err) == (0, "", "")
    assert daemon.calls == [("set_maintenance", MaintenanceMode(mode))]


@pytest.mark.parametrize("args", [[], ["--mode"], ["--mode", "global"], ["global"], ["--force"]])
def test_missing_mode(run: Run, daemon: ControllerTestDouble, args: list[str]) -> None:
    result = run("--set-maintenance", *args)
    assert (result.status, result.out) == (1, MODE_MISSING)
    assert daemon.calls == []


def test_invalid_mode_is_checked_before_the_deployed_check(run: Run, host: HostFiles) -> None:
    not_deployed(host)
    result = run("--set-maintenance", "--mode=Global")
    assert (result.status, result.out) == (1, "Invalid value 'Global' for --mode\n")
    result = run("--set-maintenance", "--mode=")
    assert (result.status, result.out) == (1, "Invalid value '' for --mode\n")


def test_not_deployed(run: Run, host: HostFiles, daemon: ControllerTestDouble) -> None:
    not_deployed(host)
    result = run("--set-maintenance", "--mode=global")
    assert (result.status, result.out) == (1, "You must run deploy first\n")
    assert daemon.calls == []


def test_unknown_argument_is_ignored_and_repeated_mode_refused(run: Run, daemon: ControllerTestDouble) -> None:
    result = run("--set-maintenance", "--mode=global", "--mode=none")
    assert result.status == 1 and "--mode given 2 times" in result.err
    assert daemon.calls == []
    result = run("--set-maintenance", "--mode=global", "--force")
    assert (result.status, result.err) == (
        0,
        "--set-maintenance: ignored argument --force (the original hosted-engine ignores it too)\n",
    )
    assert len(daemon.calls) == 1


def test_local_refused_while_the_vm_runs_here(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.result = CommandResult(
        ok=False, message=LOCAL_REFUSED, detail={"refusal": "vm_running_here", "vm": "running"}
    )
    result = run("--set-maintenance", "--mode=local")
    assert (result.status, result.out, result.err) == (1, "", LOCAL_REFUSED + "\n")
    assert LOCAL_REFUSED == (
        "Unable to enter local maintenance mode: the engine VM is running on the current host, "
        "please migrate it before entering local maintenance mode."
    )


def test_daemon_failure_is_reported(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.error = RuntimeError("whiteboard write failed: EIO")
    result = run("--set-maintenance", "--mode=global")
    assert result.status == 1 and "RuntimeError: whiteboard write failed: EIO" in result.err


def test_daemon_down(run: Run, host: HostFiles) -> None:
    result = run("--set-maintenance", "--mode=none")
    assert result.status == 1 and result.out == ""
    first, second = result.err.splitlines()
    assert first == "Cannot connect to the HA daemon, please check the logs."
    assert str(host.admin_socket) in second and "No such file or directory" in second
