"""--vm-start, --vm-start-paused, --vm-shutdown, --vm-poweroff: texts, exit codes, requests."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from unittest.mock import patch

import pytest

from cli import daemon_call
from cli.daemon_call import supervisor_pids
from cli.vm_conf_check import CHECK_SANLOCK, NOT_RETRIEVED, SERVICE_DOWN
from he_ha.admin.contract import CommandResult
from he_ha.supervisor.runfiles import HOST_LOCK, try_host_lock
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
    daemon.result = CommandResult(
        ok=False, message=f"refused: the VM already runs here ({vm})", detail={"refusal": "vm_running_here", "vm": vm}
    )
    result = run(command)
    assert (result.status, result.out, result.err) == (1, f"VM exists and its status is {vm}\n", "")


def test_lease_held_elsewhere(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.result = CommandResult(
        ok=False, message="refused: another host holds the VM lease (host 2)", detail={"refusal": "lease_busy"}
    )
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
    ("args", "call", "ignored"),
    [
        (["--vm-shutdown", "--force"], ("vm_shutdown", None), "argument --force (the original hosted-engine"),
        (["--vm-poweroff", "-f", "now"], ("vm_poweroff", None), "arguments -f now (the original hosted-engine"),
        (["--vm-start", "now", "--delay=120"], ("vm_start", False), "arguments now --delay=120 (the original"),
        (["--vm-start-paused", "--vm-conf=/x"], ("vm_start", True), "argument --vm-conf=/x (the original"),
        (["--vm-shutdown", "a b"], ("vm_shutdown", None), "argument 'a b' (the original"),
    ],
)
def test_ignored_arguments_are_named_and_the_command_acts(
    run: Run, daemon: ControllerTestDouble, args: list[str], call: tuple[str, object], ignored: str
) -> None:
    result = run(*args)
    assert result.status == 0, result
    assert result.err.count("\n") == 1 and result.err.startswith(f"{args[0]}: ignored {ignored}")
    assert daemon.calls == [call]


def test_a_known_option_in_a_form_not_taken_is_refused(run: Run, daemon: ControllerTestDouble) -> None:
    result = run("--vm-start", "--vm-conf", "/x")
    assert (result.status, result.err) == (1, "--vm-start: option --vm-conf needs a value: --vm-conf=<value>\n")
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


def test_start_with_the_daemon_down_is_done_directly(
    run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the daemon the start is the shim's own (tests/integration/cli_commands has it
    against real daemons); here: what is said, and that an in-process test:/// hypervisor's
    lease worker is no holder for a VM that must outlive this command."""
    monkeypatch.setenv("HE_HA_LIBVIRT_URI", "test:///default")
    result = run("--vm-start")
    assert (result.status, result.out) == (1, NOT_LAUNCHED)
    first, second = result.err.splitlines()
    assert first == (
        f"he-ha: the he-ha daemon does not answer on {host.admin_socket}: [Errno 2] No such file or "
        "directory; acting directly through libvirt (test:///default)"
    )
    assert second.startswith("refused: with the lease held by the lease worker (--lease-holder worker)")


def test_an_unknown_lease_holder_is_named(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HE_HA_LEASE_HOLDER", "vdsm")
    result = run("--vm-poweroff")
    assert (result.status, result.err.splitlines()[1:]) == (
        1,
        ["HE_HA_LEASE_HOLDER='vdsm' is not one of keeper, worker, qemu"],
    )


def test_a_daemon_that_accepts_and_does_not_answer_is_not_bypassed(run: Run, host: HostFiles) -> None:
    with socket.socket(socket.AF_UNIX) as listening:  # accepts (the kernel's backlog), never answers
        listening.bind(str(host.admin_socket))
        listening.listen()
        with patch("cli.daemon_call.CALL_TIMEOUT", 0.5):
            result = run("--vm-poweroff")
    assert (result.status, result.out) == (1, "")
    lines = result.err.splitlines()
    assert lines[0] == "Cannot connect to the HA daemon, please check the logs."
    assert lines[-1].startswith("Nothing was done directly: a process accepts connections on that socket")


def test_a_starting_supervisor_is_not_raced(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HE_HA_RUN_DIR", str(host.root))
    monkeypatch.setattr(
        "cli.daemon_call.supervisor_pids", lambda run_dir, _proc: [4242] if run_dir == host.root else []
    )
    result = run("--vm-start")
    assert (result.status, result.out) == (1, NOT_LAUNCHED)
    assert result.err.splitlines()[-1] == (
        f"he-ha run (pid 4242) serves {host.root} but does not listen yet "
        "(starting?): nothing was done; try again once it answers"
    )


def test_a_held_host_lock_means_nothing_is_done_directly(
    run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daemon between its start and its first listen, or another hosted-engine command acting
    # directly: they hold the host lock (he_ha/supervisor/runfiles.py), whatever /proc shows.
    monkeypatch.setenv("HE_HA_RUN_DIR", str(host.root))
    lock = try_host_lock(host.root, "he-ha run 4243")
    try:
        result = run("--vm-poweroff")
    finally:
        os.close(lock)
    assert (result.status, result.out) == (1, "")
    assert result.err.splitlines()[-1] == f"Nothing was done directly: he-ha run 4243 holds {host.root / HOST_LOCK}"


def test_supervisor_processes_are_found_by_their_run_dir(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, argv in (
        (10, ["/usr/bin/python3", "/usr/bin/he-ha", "run", "--log-json"]),
        (11, ["python", "-m", "he_ha.main", "run", "--run-dir", str(tmp_path / "a")]),
        (12, ["python", "-m", "he_ha.main", "run", f"--run-dir={tmp_path / 'b'}"]),
        (13, ["python", "-m", "he_ha.main", "fence", str(tmp_path / "a" / "fence.json"), "9"]),
        (14, ["hosted-engine", "--vm-status"]),
        (15, ["/usr/bin/python3", "/usr/bin/he-ha", "run"]),
    ):  # in a container: see below
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "mnt").symlink_to("mnt:[4026531841]")
    (proc / "10" / "ns").mkdir()
    (proc / "10" / "ns" / "mnt").symlink_to("mnt:[4026531841]")  # ours
    (proc / "15" / "ns").mkdir()
    (proc / "15" / "ns" / "mnt").symlink_to("mnt:[4026532999]")  # a booted container's: its own /run
    # 11 and 12 have no readable namespace: they count, a daemon that cannot be ruled out
    assert supervisor_pids(Path("/run/he-ha"), proc) == [10]
    assert supervisor_pids(tmp_path / "a", proc) == [11]
    assert supervisor_pids(tmp_path / "b", proc) == [12]
    assert supervisor_pids(tmp_path / "c", proc) == []


def test_a_process_list_that_hangs_means_nothing_is_done_directly(
    run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A real blocking read: a cmdline that is a FIFO nobody writes blocks its reader, as a
    # process's cmdline does while its memory map is held (a process stuck on stalled storage).
    proc = tmp_path / "proc"
    (proc / "20").mkdir(parents=True)
    os.mkfifo(proc / "20" / "cmdline")
    real_scan = daemon_call.running_supervisors
    monkeypatch.setenv("HE_HA_RUN_DIR", str(host.root))
    monkeypatch.setattr("cli.daemon_call.SCAN_DEADLINE", 0.5)  # 10 s in production: the same path, sooner
    monkeypatch.setattr(
        "cli.daemon_call.running_supervisors", lambda run_dir, deadline: real_scan(run_dir, proc, deadline)
    )
    try:
        result = run("--vm-start")
    finally:  # a writer that opens and closes the FIFO ends the scan thread's read (EOF)
        os.close(os.open(proc / "20" / "cmdline", os.O_WRONLY))
    assert (result.status, result.out) == (1, NOT_LAUNCHED)
    assert result.err.splitlines()[-1] == (
        "Nothing was done directly: the process list could not be read within 0.5 s, "
        f"so an he-ha run starting for {host.root} cannot be ruled out"
    )


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
def test_stop_with_the_daemon_down_is_done_directly(
    run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("HE_HA_LIBVIRT_URI", "test:///default")  # no engine VM there: nothing to stop is success
    result = run(command)
    assert (result.status, result.out) == (0, ""), result.err
    assert result.err == (
        f"he-ha: the he-ha daemon does not answer on {host.admin_socket}: [Errno 2] No such file "
        "or directory; acting directly through libvirt (test:///default)\n"
    )


def test_stop_without_daemon_or_libvirt(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HE_HA_LIBVIRT_URI", f"qemu+unix:///system?socket={host.root / 'no-libvirtd.sock'}")
    result = run("--vm-poweroff")
    assert (result.status, result.out) == (1, "")
    assert "acting directly through libvirt" in result.err.splitlines()[0]
    assert result.err.splitlines()[1].startswith("libvirt call 'open': hypervisor unreachable: ")
