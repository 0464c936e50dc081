"""--vm-start, --vm-start-paused, --vm-shutdown, --vm-poweroff: texts, exit codes, requests."""

from __future__ import annotations

import pytest

from cli.vm_conf_check import CHECK_SANLOCK, NOT_RETRIEVED, SERVICE_DOWN
from he_ha.admin.contract import CommandResult
from tests.integration.admin.doubles import ControllerTestDouble
from tests.unit.cli_commands.conftest import HostFiles, Run, not_deployed, vm_conf_text

NOT_LAUNCHED = "VM failed to launch\n"


def test_start(run: Run, daemon: ControllerTestDouble) -> None:
    result = run("--vm-start")
    assert (result.status, result.out, result.err) == (0, "VM in WaitForLaunch\n", "")
    assert daemon.calls == [("vm_start", False)]


def test_start_paused(run: Run, daemon: ControllerTestDouble) -> None:
    result = run("--vm-start-paused")
    assert (result.status, result.out) == (0, "VM in WaitForLaunch\n")
    assert daemon.calls == [("vm_start", True)]


@pytest.mark.parametrize(("vm", "command"), [("running", "--vm-start"), ("paused", "--vm-start-paused")])
def test_vm_already_here(run: Run, daemon: ControllerTestDouble, vm: str, command: str) -> None:
    daemon.result = CommandResult(ok=False, message=f"refused: the VM already runs here ({vm})",
                                  detail={"refusal": "vm_running_here", "vm": vm})
    result = run(command)
    assert (result.status, result.out, result.err) == (1, f"VM exists and its status is {vm}\n", "")


def test_lease_held_elsewhere(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.result = CommandResult(ok=False, message="refused: another host holds the VM lease (host 2)",
                                  detail={"refusal": "lease_busy"})
    result = run("--vm-start")
    assert (result.status, result.out, result.err) == (1, NOT_LAUNCHED, daemon.result.message + "\n")


def test_launch_past_the_daemons_deadline(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.hang = True  # the daemon answers 504 at its deadline (1 s here); the call goes on
    result = run("--vm-start")
    assert (result.status, result.out) == (1, NOT_LAUNCHED)
    assert "no result within 1 s; the call continues in the background" in result.err


def test_alternative_vm_conf_is_sent_as_an_absolute_path(
    run: Run, daemon: ControllerTestDouble, host: HostFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    (host.root / "recovery.conf").write_text(vm_conf_text(memory_mib=128))
    host.vm_conf.unlink()  # the recovery case: the configured vm.conf is gone
    monkeypatch.chdir(host.root)
    result = run("--vm-start", "--vm-conf=recovery.conf")
    assert (result.status, result.out) == (0, "VM in WaitForLaunch\n")
    assert daemon.calls == [("vm_start", (False, host.root / "recovery.conf"))]


def test_alternative_vm_conf_refused_by_the_daemon(run: Run, daemon: ControllerTestDouble, host: HostFiles) -> None:
    (host.root / "other.conf").write_text(vm_conf_text(vm_id="0b3e6bb0-7b8a-4a4e-8e36-0e0e0e0e0e0e"))
    daemon.result = CommandResult(ok=False, message="refused: other.conf describes the VM 0b3e6bb0-...")
    result = run("--vm-start", f"--vm-conf={host.root / 'other.conf'}")
    assert (result.status, result.out, result.err) == (1, NOT_LAUNCHED, daemon.result.message + "\n")


def test_unreadable_alternative_vm_conf(run: Run, daemon: ControllerTestDouble, host: HostFiles) -> None:
    result = run("--vm-start", f"--vm-conf={host.root / 'missing.conf'}")
    assert result.status == 1
    assert result.err == f"--vm-start: cannot read the vm.conf file {host.root / 'missing.conf'}\n"
    assert daemon.calls == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vm-start-paused", "--vm-conf=/x"], "Invalid option '--vm-conf=/x' for --vm-start-paused"),
        (["--vm-start", "--vm-conf"], "--vm-start: option --vm-conf needs a value: --vm-conf=<value>"),
        (["--vm-start", "now"], "Invalid option 'now' for --vm-start"),
        (["--vm-shutdown", "--delay=120"], "Invalid option '--delay=120' for --vm-shutdown"),
        (["--vm-poweroff", "-f"], "Invalid option '-f' for --vm-poweroff"),
    ],
)
def test_bad_arguments(run: Run, daemon: ControllerTestDouble, args: list[str], message: str) -> None:
    result = run(*args)
    assert (result.status, result.err) == (1, message + "\n")
    assert daemon.calls == []


@pytest.mark.parametrize("command", ["--vm-start", "--vm-start-paused", "--vm-shutdown", "--vm-poweroff"])
def test_not_deployed(run: Run, daemon: ControllerTestDouble, host: HostFiles, command: str) -> None:
    not_deployed(host)
    result = run(command)
    assert (result.status, result.out) == (1, "You must run deploy first\n")
    assert daemon.calls == []


@pytest.mark.parametrize("command", ["--vm-start", "--vm-start-paused"])
def test_vm_conf_missing_while_the_daemon_runs(
    run: Run, daemon: ControllerTestDouble, host: HostFiles, command: str
) -> None:
    host.vm_conf.unlink()
    result = run(command)
    assert (result.status, result.out) == (1, f"{NOT_RETRIEVED}\n{CHECK_SANLOCK}\n\n")
    assert daemon.calls == []


def test_vm_conf_unreadable_while_the_daemon_is_down(run: Run, host: HostFiles) -> None:
    host.vm_conf.unlink()
    host.vm_conf.mkdir()  # exists, but is no file to read
    result = run("--vm-start")
    assert (result.status, result.out) == (1, f"{NOT_RETRIEVED}\n{SERVICE_DOWN}\n\n")
    assert NOT_RETRIEVED == "The hosted engine configuration has not been retrieved from shared storage yet,"


def test_start_with_the_daemon_down(run: Run, host: HostFiles) -> None:
    result = run("--vm-start")
    assert (result.status, result.out) == (1, NOT_LAUNCHED)
    assert result.err.startswith("Cannot connect to the HA daemon, please check the logs.\n")


@pytest.mark.parametrize(("command", "call"), [("--vm-shutdown", "vm_shutdown"), ("--vm-poweroff", "vm_poweroff")])
def test_stop_is_silent(run: Run, daemon: ControllerTestDouble, command: str, call: str) -> None:
    result = run(command)
    assert (result.status, result.out, result.err) == (0, "", "")
    assert daemon.calls == [(call, None)]


@pytest.mark.parametrize("command", ["--vm-shutdown", "--vm-poweroff"])
def test_stop_failure_is_its_reason(run: Run, daemon: ControllerTestDouble, command: str) -> None:
    daemon.result = CommandResult(ok=False, message="destroy: libvirt: operation timed out")
    result = run(command)
    assert (result.status, result.out, result.err) == (1, "", "destroy: libvirt: operation timed out\n")


@pytest.mark.parametrize("command", ["--vm-shutdown", "--vm-poweroff"])
def test_stop_with_the_daemon_down(run: Run, host: HostFiles, command: str) -> None:
    result = run(command)
    assert (result.status, result.out) == (1, "")
    assert result.err.splitlines()[0] == "Cannot connect to the HA daemon, please check the logs."


def test_daemon_error_is_reported(run: Run, daemon: ControllerTestDouble) -> None:
    """An error answer that is no refusal (500: the controller raised) is reported too."""
    daemon.error = PermissionError("not allowed")
    result = run("--vm-poweroff")
    assert result.status == 1 and "PermissionError: not allowed" in result.err
