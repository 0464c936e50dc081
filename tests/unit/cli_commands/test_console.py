"""--add-console-password (password sources, the daemon's answers) and --console (libvirt
asked directly, then ``virsh console`` exec'ed), with libvirt's test driver as the host's
hypervisor and real pseudo-terminals where a user's terminal matters."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from he_ha.admin.contract import CommandResult
from tests.integration.admin.doubles import ControllerTestDouble
from tests.unit.cli_commands.conftest import VMID, HostFiles, Run, not_deployed
from tests.unit.cli_commands.terminal import run_in_terminal

SHIM = [sys.executable, "-m", "cli.hosted_engine"]
REPO = Path(__file__).resolve().parents[3]
DISPLAY = CommandResult(ok=True, message="VNC password set for 120 s", detail={"address": "192.0.2.7", "port": 5901})


def test_password_from_the_option(run: Run, daemon: ControllerTestDouble, daemon_logs: list[dict]) -> None:
    daemon.result = DISPLAY
    result = run("--add-console-password", "--password=s3cret")
    assert (result.status, result.out, result.err) == (
        0,
        "You can now connect the hosted-engine VM with VNC at 192.0.2.7:5901\n",
        "",
    )
    assert daemon.calls == [("console_password", ("s3cret", 120))]
    assert daemon_logs and not any("s3cret" in str(event) for event in daemon_logs)


def test_password_from_the_environment(run: Run, daemon: ControllerTestDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon.result = DISPLAY
    monkeypatch.setenv("OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD", "from-env")
    assert run("--add-console-password").status == 0
    assert run("--add-console-password", "--password=option-wins").status == 0
    assert daemon.calls == [("console_password", ("from-env", 120)), ("console_password", ("option-wins", 120))]


def test_password_read_from_stdin_without_a_terminal(
    run: Run, daemon: ControllerTestDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon.result = DISPLAY
    monkeypatch.setattr(sys, "stdin", io.StringIO("piped\n"))
    result = run("--add-console-password")
    assert result.status == 0
    assert result.err == "Enter password: \n"  # the prompt and its newline, no "die" noise
    assert daemon.calls == [("console_password", ("piped", 120))]


@pytest.mark.parametrize(
    ("stdin", "message"), [("", "no password given (end of input)"), ("\n", "the password must not be empty")]
)
def test_no_password(
    run: Run, daemon: ControllerTestDouble, monkeypatch: pytest.MonkeyPatch, stdin: str, message: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    result = run("--add-console-password")
    assert (result.status, result.err) == (1, f"Enter password: \n--add-console-password: {message}\n")
    assert daemon.calls == []


def test_password_typed_on_a_terminal_is_not_echoed(daemon: ControllerTestDouble, host: HostFiles) -> None:
    daemon.result = DISPLAY
    shown = run_in_terminal(
        [*SHIM, "--add-console-password"],
        {**os.environ, "PYTHONPATH": str(REPO)},
        reply_to="Enter password: ",
        reply="typed-secret\n",
    )
    assert shown.status == 0, shown.output
    assert "You can now connect the hosted-engine VM with VNC at 192.0.2.7:5901" in shown.output
    assert "typed-secret" not in shown.output
    assert daemon.calls == [("console_password", ("typed-secret", 120))]


def test_ipv6_address_is_bracketed(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.result = CommandResult(ok=True, message="set", detail={"address": "2001:db8::7", "port": 5900})
    assert run("--add-console-password", "--password=x").out.endswith("at [2001:db8::7]:5900\n")


def test_no_vnc_display(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.result = CommandResult(
        ok=False, message="the engine VM has no VNC graphics device", detail={"refusal": "no_vnc"}
    )
    result = run("--add-console-password", "--password=x")
    assert (result.status, result.out) == (1, "")
    assert result.err == "Failed detecting VNC port\nthe engine VM has no VNC graphics device\n"


def test_vm_not_here(run: Run, daemon: ControllerTestDouble) -> None:
    daemon.result = CommandResult(
        ok=False, message="the engine VM is not running on this host", detail={"refusal": "vm_not_here"}
    )
    result = run("--add-console-password", "--password=x")
    assert (result.status, result.err) == (1, "the engine VM is not running on this host\n")


def test_password_with_daemon_down_and_not_deployed(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HE_HA_LIBVIRT_URI", node_uri(host.root, None))
    result = run("--add-console-password", "--password=x")  # no daemon: libvirt is asked directly
    assert (result.status, result.out) == (1, "")
    assert result.err.splitlines()[1:] == [f"the engine VM HostedEngine ({VMID}) is not running on this host"]
    not_deployed(host)
    result = run("--add-console-password", "--password=x")
    assert (result.status, result.out) == (1, "You must run deploy first\n")


def test_password_option_needs_a_value(run: Run, host: HostFiles) -> None:
    result = run("--add-console-password", "--password")
    assert (result.status, result.err) == (
        1,
        "--add-console-password: option --password needs a value: --password=<value>\n",
    )


# --- --console ----------------------------------------------------------------------------


def node_uri(directory: Path, runstate: int | None) -> str:
    """A test-driver hypervisor; with ``runstate`` it has the engine VM in that libvirt state."""
    domain = (
        ""
        if runstate is None
        else (
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
            f"<name>HostedEngine</name><uuid>{VMID}</uuid><memory>65536</memory><vcpu>1</vcpu>"
            f"<os><type>hvm</type></os><devices/><test:runstate>{runstate}</test:runstate></domain>"
        )
    )
    (directory / "node.xml").write_text(f"<node>{domain}</node>")
    return f"test://{directory / 'node.xml'}"


def test_console_vm_not_here(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HE_HA_LIBVIRT_URI", node_uri(host.root, None))
    result = run("--console")
    assert (result.status, result.out, result.err) == (0, "The engine VM is not on this host\n", "")


@pytest.mark.parametrize(
    ("runstate", "said"),
    [
        (1, "The engine VM is running on this host\r\n"),
        (
            3,
            "The engine VM is on this host but its status is paused\r\nTrying anyway to connect to its console:\r\n\r\n",
        ),
    ],
)
def test_console_execs_virsh_console(host: HostFiles, runstate: int, said: str) -> None:
    uri = node_uri(host.root, runstate)
    shown = run_in_terminal([*SHIM, "--console"], {**os.environ, "HE_HA_LIBVIRT_URI": uri, "PYTHONPATH": str(REPO)})
    assert shown.output.startswith(said), shown.output
    # virsh ran, on the engine VM at our URI: the test driver has no consoles, and virsh's
    # exit status is the command's (the original's socat/virsh exit status).
    assert "this function is not supported by the connection driver: virDomainOpenConsole" in shown.output
    assert shown.status == 1


def test_console_libvirt_not_answering(run: Run, host: HostFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HE_HA_LIBVIRT_URI", f"test+unix:///default?socket={host.root}/no-libvirtd")
    result = run("--console")
    assert result.status == 1 and result.out == ""
    assert result.err.startswith("Cannot tell whether the engine VM is on this host: libvirt (test+unix:///default")


def test_console_not_deployed_and_bad_argument(run: Run, host: HostFiles) -> None:
    assert run("--console", "--now").err.startswith(
        "--console: ignored argument --now (the original hosted-engine ignores it too)\n"
    )
    not_deployed(host)
    result = run("--console")
    assert (result.status, result.out) == (1, "You must run deploy first\n")
