"""``hosted-engine``: the drop-in shim for the original's HA commands.

Dispatch works like the original's shell wrapper: the first argument selects the command,
``--help [cmd]`` and ``<cmd> --help`` print help (exit 0), no argument prints the usage
(exit 1), anything else is ``Invalid option '<x>'`` (exit 1). Each command reads the rest
by the original's rules for it (cli/arguments.py): what the original ignored is ignored with
one stderr line saying so, ``--clean-metadata`` parses as the agent's optparse did.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cli.command import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from types import ModuleType

    from cli.command import Command

# The modules that define the commands (each exports COMMANDS). They import only light
# modules at the top, so ``--help`` works even where libvirt or sanlock cannot be loaded.
COMMAND_MODULES = (
    "cli.cmd_unsupported",  # --deploy, --connect-storage, --disconnect-storage
    "cli.cmd_vm",  # --vm-start, --vm-start-paused, --vm-shutdown, --vm-poweroff
    "cli.cmd_status",  # --vm-status, --explain
    "cli.cmd_console",  # --add-console-password, --console
    "cli.cmd_checks",  # --check-deployed, --check-liveliness
    "cli.cmd_maintenance",  # --set-maintenance
    "cli.cmd_shared_config",  # --set-shared-config, --get-shared-config
    "cli.cmd_repair",  # --reinitialize-lockspace, --clean-metadata
    "cli.cmd_init_storage",  # --init-storage
)

# The general usage lists commands in this order (spec/hosted-engine-cli.md §2), ours last.
USAGE_ORDER = (
    "--deploy",
    "--vm-start",
    "--vm-start-paused",
    "--vm-shutdown",
    "--vm-poweroff",
    "--vm-status",
    "--add-console-password",
    "--check-deployed",
    "--check-liveliness",
    "--connect-storage",
    "--disconnect-storage",
    "--console",
    "--set-maintenance",
    "--set-shared-config",
    "--get-shared-config",
    "--reinitialize-lockspace",
    "--clean-metadata",
    "--explain",
    "--init-storage",
)

# Which module defines each command, so that running one imports only its module (issue 16
# item 2: cockpit runs --vm-status --json every second). tests/unit/cli_main checks it
# against the modules' COMMANDS.
COMMAND_MODULE = {
    "--deploy": "cli.cmd_unsupported",
    "--connect-storage": "cli.cmd_unsupported",
    "--disconnect-storage": "cli.cmd_unsupported",
    "--vm-start": "cli.cmd_vm",
    "--vm-start-paused": "cli.cmd_vm",
    "--vm-shutdown": "cli.cmd_vm",
    "--vm-poweroff": "cli.cmd_vm",
    "--vm-status": "cli.cmd_status",
    "--explain": "cli.cmd_status",
    "--add-console-password": "cli.cmd_console",
    "--console": "cli.cmd_console",
    "--check-deployed": "cli.cmd_checks",
    "--check-liveliness": "cli.cmd_checks",
    "--set-maintenance": "cli.cmd_maintenance",
    "--set-shared-config": "cli.cmd_shared_config",
    "--get-shared-config": "cli.cmd_shared_config",
    "--reinitialize-lockspace": "cli.cmd_repair",
    "--clean-metadata": "cli.cmd_repair",
    "--init-storage": "cli.cmd_init_storage",
}


def commands() -> dict[str, Command]:
    found: dict[str, Command] = {}
    for module_name in COMMAND_MODULES:
        for command in importlib.import_module(module_name).COMMANDS:
            found[command.name] = command
    ordered = {name: found[name] for name in USAGE_ORDER if name in found}
    ordered.update({name: cmd for name, cmd in found.items() if name not in ordered})
    return ordered


def general_usage(prog: str, table: dict[str, Command]) -> str:
    lines = [
        f"Usage: {prog} [--help] <command> [<command-args>]",
        "    --help",
        "        show this help message.",
        "    The available commands are:",
    ]
    for command in table.values():
        lines.append(f"        {command.synopsis}")
        lines.append(f"            {command.summary}")
    lines.append("")
    return "\n".join(lines)


def command_help(prog: str, command: Command) -> str:
    return f"Usage: {prog} {command.usage}\n{command.help.rstrip()}\n"


def find_command(name: str) -> Command | None:
    """The command called ``name``, importing only the module that defines it."""
    module = COMMAND_MODULE.get(name)
    if module is None:
        return None
    return next((c for c in importlib.import_module(module).COMMANDS if c.name == name), None)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    prog = prog or sys.argv[0] or "hosted-engine"
    if not args:
        print(general_usage(prog, commands()))
        return EXIT_FAILED
    first = args[0]
    if first == "--vm-status":  # cockpit runs it every second: the lean path first (cli/status_fast.py)
        from cli.status_fast import vm_status_fast

        fast = vm_status_fast(args[1:], os.environ)
        if fast is not None:
            return fast
    if first == "--help":
        if len(args) == 1:
            print(general_usage(prog, commands()))
            return EXIT_OK
        first, args = args[1], [args[1], "--help"]
    command = find_command(first)
    if command is None:
        print(f"Invalid option '{first}'", file=sys.stderr)
        print(general_usage(prog, commands()))
        return EXIT_FAILED
    rest = args[1:]
    if rest[:1] == ["--help"]:
        print(command_help(prog, command))
        return EXIT_OK
    from cli.arguments import HelpRequested, UsageError
    from cli.environment import CliEnvironment

    try:
        with library_logs_on_stderr():
            return command.run(rest, CliEnvironment.from_environ(os.environ))
    except UsageError as exc:  # a wrong argument, named by the command's Syntax: stderr, exit 1
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    except HelpRequested:  # optparse's --help among --clean-metadata's arguments
        print(command_help(prog, command))
        return EXIT_OK


@contextlib.contextmanager
def library_logs_on_stderr() -> Iterator[None]:
    """The library logs through structlog; in a short command its lines must not mix with the
    output (stdout stays clean for --json) nor repeat the failures the commands report
    themselves. Errors only, on stderr; the previous configuration comes back afterwards
    (tests run commands in-process).

    structlog is configured when it is first imported, not imported here: a command whose
    code never logs (--vm-status) does not pay its ~50 ms import (issue 16 item 2).
    """
    if "structlog" in sys.modules:
        previous = _errors_on_stderr()
        try:
            yield
        finally:
            sys.modules["structlog"].configure(**previous)
        return
    hook = _ConfigureOnImport()
    sys.meta_path.insert(0, hook)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(hook)
        if hook.previous is not None:
            sys.modules["structlog"].configure(**hook.previous)


def _errors_on_stderr() -> dict[str, Any]:
    """Configure structlog for a command (see above); returns the configuration it replaced."""
    import structlog

    from he_ha.logsetup import configure_logging

    previous = structlog.get_config()
    configure_logging(level="ERROR")
    return previous


class _ConfigureOnImport:  # an importlib.abc.MetaPathFinder (not subclassed: importlib.abc costs ~8 ms)
    """Configures structlog right after its package is imported, before any module can log."""

    def __init__(self) -> None:
        self.previous: dict[str, Any] | None = None

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != "structlog":
            return None
        sys.meta_path.remove(self)  # once; and the search below must not find us again
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            self.previous = _errors_on_stderr()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def entry_point() -> None:
    """The console script: exit with the command's status; a broken pipe is not a traceback."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = EXIT_FAILED
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    entry_point()
