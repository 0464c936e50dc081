"""``--add-console-password [--password=<pw>]`` and ``--console`` (spec/hosted-engine-cli.md §7, §8).

``--add-console-password`` asks the daemon (POST /v1/vm/console-password) to set a VNC
password valid for 120 s on the engine VM running here (while the daemon is down, the shim
sets it through libvirt itself, as the daemon would: cli/direct_vm.py); the answer has the
display's address and port at once (libvirt's live XML has them), so there is no polling
(the original polled with 29, 28, ... s sleeps: quirk §21.6). The password comes from
``--password=``, else OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD, else a prompt on stderr: with
echo off on a terminal, or one line read from stdin when stdin is not a terminal (the
original read it too, after an error from an undefined ``die``).

``--console`` needs no daemon: it asks libvirt directly whether the engine VM is here,
then replaces itself with ``virsh console``, whose exit status is the command's. Unlike
the original it checks that the engine was deployed (without a vmid there is no VM to
look for: quirk §21.5); "not on this host" still exits 0, as scripts expect.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from cli import daemon_call
from cli.arguments import Rules, Syntax
from cli.command import EXIT_FAILED, EXIT_OK, Command, error, require_deployed
from cli.environment import CliEnvironment
from he_ha.admin.contract import CommandResult, Refusal

PASSWORD_ENV = "OVIRT_HOSTED_ENGINE_CONSOLE_PASSWORD"
PROMPT = "Enter password: "
TICKET_TTL = 120  # seconds, as the original
NO_PORT = "Failed detecting VNC port"


class NoPassword(Exception):
    """The prompt got end of input, or an empty password."""


def read_password(options: Mapping[str, str | bool], environ: Mapping[str, str]) -> str:
    if "--password" in options:
        password = str(options["--password"])
    elif environ.get(PASSWORD_ENV):
        password = environ[PASSWORD_ENV]
    else:
        password = _prompt()
    if not password:
        raise NoPassword("the password must not be empty")
    return password


def _prompt() -> str:
    if sys.stdin.isatty():
        import getpass  # only here: echo control needs the terminal

        try:
            return getpass.getpass(PROMPT, stream=sys.stderr)
        except EOFError:
            raise NoPassword("no password given (end of input)") from None
    sys.stderr.write(PROMPT)
    sys.stderr.flush()
    line = sys.stdin.readline()
    sys.stderr.write("\n")
    if not line:
        raise NoPassword("no password given (end of input)")
    return line.rstrip("\r\n")


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _add_console_password(args: Sequence[str], env: CliEnvironment) -> int:
    options = Syntax(valued=("--password",), rules=Rules.FIXED).parse("--add-console-password", args).options
    vmid = require_deployed(env)
    if vmid is None:
        return EXIT_FAILED
    try:
        password = read_password(options, os.environ)
    except NoPassword as exc:
        error(f"--add-console-password: {exc}")
        return EXIT_FAILED

    def direct() -> CommandResult | None:
        from cli import direct_vm  # libvirt: only without the daemon

        return direct_vm.console_password(env, vmid, password, TICKET_TTL)

    answer = daemon_call.post(env, "/v1/vm/console-password", {"password": password, "ttl": TICKET_TTL}, direct=direct)
    if answer is None:
        return EXIT_FAILED
    if answer.ok:
        address, port = answer.detail.get("address"), answer.detail.get("port")
        if isinstance(address, str) and isinstance(port, int):
            print(f"You can now connect the hosted-engine VM with VNC at {_host_port(address, port)}")
            return EXIT_OK
        error(NO_PORT)
        error(f"the daemon set the password but named no display: {answer.detail}")
        return EXIT_FAILED
    if answer.refusal == Refusal.NO_VNC:
        error(NO_PORT)
    error(answer.message)
    return EXIT_FAILED


def _console(args: Sequence[str], env: CliEnvironment) -> int:
    Syntax(rules=Rules.FIXED).parse("--console", args)
    vmid = require_deployed(env)
    if vmid is None:
        return EXIT_FAILED
    from cli.local_vm import LibvirtNotAnswering, engine_vm_state  # libvirt: only for this command
    from he_ha.vm import VmStatus

    try:
        state = engine_vm_state(env.libvirt_uri, vmid)
    except LibvirtNotAnswering as exc:
        error(f"Cannot tell whether the engine VM is on this host: {exc}")
        return EXIT_FAILED
    if state.status is VmStatus.ABSENT:
        print("The engine VM is not on this host")
        return EXIT_OK
    if state.status is VmStatus.RUNNING:
        print("The engine VM is running on this host")
    else:
        print(f"The engine VM is on this host but its status is {state.status.value}")
        print("Trying anyway to connect to its console:")
        print()
    argv = ["virsh", "-c", env.libvirt_uri, "console", vmid]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)  # the console session is virsh's; its exit status is ours
    except OSError as exc:
        error(f"Cannot run {' '.join(argv)}: {exc.strerror}")
    return EXIT_FAILED


COMMANDS = (
    Command(
        "--add-console-password",
        "--add-console-password [--password=<password>]",
        "create a temporary password for vnc connection",
        "--add-console-password [--password=<password>]",
        f"    Create a temporary password for VNC connections to the engine VM, valid for\n"
        f"    {TICKET_TTL} seconds. The engine VM must run on this host, with a VNC display.\n"
        "    The password is taken from --password=<password>, else from the environment\n"
        f"    variable {PASSWORD_ENV}, else read interactively.\n"
        "    Works while the he-ha service is stopped: then it sets the password through\n"
        "    libvirt directly.",
        _add_console_password,
    ),
    Command(
        "--console",
        "--console",
        "open the configured serial console",
        "--console",
        "    Open the serial console of the engine VM on this host (virsh console).\n"
        "    Leave it with Ctrl+]. Works while the he-ha service is stopped.",
        _console,
    ),
)
