"""``--vm-start [--vm-conf=<file>]``, ``--vm-start-paused``, ``--vm-shutdown``, ``--vm-poweroff``
(spec/hosted-engine-cli.md §5, §6).

The daemon does the work (POST /v1/vm/...): it takes the VM lease before it launches the
VM, so, unlike the original, a start on a host while another host holds the lease is
refused instead of "succeeding" and then failing on the lease. While the daemon is down the
shim does the same directly through libvirt and sanlock, with the daemon's own start
(cli/direct_vm.py: the lease first, adopted by the daemon when it comes back); one stderr
line says so. Arguments the original ignored are ignored, with one stderr line naming them
(``--vm-shutdown --force``).

Output: ``VM in WaitForLaunch`` on a start (exit 0); ``VM exists and its status is <s>``
(exit 1) when the VM already runs or is paused here; otherwise ``VM failed to launch``
on stdout and the daemon's reason on stderr (exit 1). Shutdown and poweroff are silent on
success; a failure is its reason on stderr (exit 1).

Deliberate differences from the original:
- a paused VM is not destroyed and restarted by ``--vm-start``: it "exists" (exit 1), as
  for ``--vm-start-paused``. Killing a live QEMU is a decision (``--vm-poweroff``), not a
  clean-up. A shut-off leftover definition is still removed before the start.
- ``--vm-conf=<file>`` does not need the configured vm.conf to be readable (it is the
  recovery when that file is lost or broken); the file must describe the engine VM
  (its vmId is the configured one), checked by the daemon.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cli import daemon_call
from cli.arguments import Rules, Syntax
from cli.command import EXIT_FAILED, EXIT_OK, Command, error, require_deployed
from cli.environment import CliEnvironment
from cli.vm_conf_check import vm_conf_ready
from he_ha.admin.contract import CommandResult, Refusal

LAUNCHED = "VM in WaitForLaunch"
NOT_LAUNCHED = "VM failed to launch"
START_SYNTAX = Syntax(valued=("--vm-conf",), rules=Rules.FIXED)
NO_OPTIONS = Syntax(rules=Rules.FIXED)  # --vm-start-paused, --vm-shutdown, --vm-poweroff


def _start(args: Sequence[str], env: CliEnvironment, *, paused: bool) -> int:
    command = "--vm-start-paused" if paused else "--vm-start"
    options = (NO_OPTIONS if paused else START_SYNTAX).parse(command, args).options
    if require_deployed(env) is None:
        return EXIT_FAILED
    body: dict[str, object] = {"paused": paused}
    alternative: Path | None = None
    if "--vm-conf" in options:
        alternative = Path(os.path.abspath(str(options["--vm-conf"])))  # the daemon's cwd is not ours
        if not (alternative.is_file() and os.access(alternative, os.R_OK)):
            error(f"{command}: cannot read the vm.conf file {alternative}")
            return EXIT_FAILED
        body["vm_conf"] = str(alternative)
    elif not vm_conf_ready(env):
        return EXIT_FAILED

    def direct() -> CommandResult | None:
        from cli import direct_vm  # libvirt, sanlock: only without the daemon

        return direct_vm.start(env, paused=paused, vm_conf=alternative)

    answer = daemon_call.post(env, "/v1/vm/start", body, direct=direct)
    if answer is None:
        print(NOT_LAUNCHED)
        return EXIT_FAILED
    if answer.ok:
        print(LAUNCHED)
        return EXIT_OK
    if answer.refusal == Refusal.VM_RUNNING_HERE:
        print(f"VM exists and its status is {answer.detail.get('vm', 'unknown')}")
        return EXIT_FAILED
    print(NOT_LAUNCHED)
    error(answer.message)
    return EXIT_FAILED


def _vm_start(args: Sequence[str], env: CliEnvironment) -> int:
    return _start(args, env, paused=False)


def _vm_start_paused(args: Sequence[str], env: CliEnvironment) -> int:
    return _start(args, env, paused=True)


def _stop(command: str, url: str, args: Sequence[str], env: CliEnvironment, *, force: bool) -> int:
    NO_OPTIONS.parse(command, args)
    vmid = require_deployed(env)
    if vmid is None:
        return EXIT_FAILED

    def direct() -> CommandResult | None:
        from cli import direct_vm  # libvirt, sanlock: only without the daemon

        return direct_vm.stop(env, vmid, force=force)

    return daemon_call.post_silently(env, url, direct=direct)


def _vm_shutdown(args: Sequence[str], env: CliEnvironment) -> int:
    return _stop("--vm-shutdown", "/v1/vm/shutdown", args, env, force=False)


def _vm_poweroff(args: Sequence[str], env: CliEnvironment) -> int:
    return _stop("--vm-poweroff", "/v1/vm/poweroff", args, env, force=True)


_ONLY_AFTER_DEPLOY = "    Available only after deployment has completed."
_GLOBAL_HINT = (
    "    Acts on this host only. Outside global maintenance the HA daemons may start the\n"
    "    engine VM again, here or on another host."
)

COMMANDS = (
    Command(
        "--vm-start",
        "--vm-start",
        "start the engine VM on this host",
        "--vm-start [--vm-conf=<file>]",
        "    Start the engine VM on this host. The VM lease is taken first: the start is\n"
        "    refused while another host holds it.\n"
        f"{_ONLY_AFTER_DEPLOY}\n"
        "    Works while the he-ha service is stopped: then this host joins the sanlock\n"
        "    lockspace if needed (tens of seconds), takes the VM lease as the service\n"
        "    would, and starts the VM through libvirt; the service adopts the VM when it\n"
        "    starts again.\n"
        "    --vm-conf=<file>\n"
        "        Use an alternative vm.conf file as a recovery action, for this start only.\n"
        "        It must describe the engine VM (same vmId as the configured one).",
        _vm_start,
    ),
    Command(
        "--vm-start-paused",
        "--vm-start-paused",
        "start the engine VM, paused, on this host",
        "--vm-start-paused",
        "    Start the engine VM, paused, on this host (QEMU starts with the VM paused).\n"
        f"{_ONLY_AFTER_DEPLOY}\n"
        "    Works while the he-ha service is stopped, as --vm-start does.",
        _vm_start_paused,
    ),
    Command(
        "--vm-shutdown",
        "--vm-shutdown",
        "gracefully shut down the engine VM on this host",
        "--vm-shutdown",
        "    Gracefully shut down the engine VM on this host (ACPI shutdown request).\n"
        f"{_ONLY_AFTER_DEPLOY}\n{_GLOBAL_HINT}\n"
        "    Works while the he-ha service is stopped: then it acts directly through\n"
        "    libvirt, and once the VM is gone its lease is released; while the guest still\n"
        "    shuts down, the lease stays held until the service runs again or --vm-poweroff.",
        _vm_shutdown,
    ),
    Command(
        "--vm-poweroff",
        "--vm-poweroff",
        "forcefully power off the engine VM on this host",
        "--vm-poweroff",
        "    Forcefully power off the engine VM on this host.\n"
        f"{_ONLY_AFTER_DEPLOY}\n{_GLOBAL_HINT}\n"
        "    Works while the he-ha service is stopped: then it acts directly through\n"
        "    libvirt and releases the VM lease (also one left held for no VM).",
        _vm_poweroff,
    ),
)
