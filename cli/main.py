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

import structlog

from cli.arguments import HelpRequested, UsageError
from cli.command import EXIT_FAILED, EXIT_OK, Command
from cli.environment import CliEnvironment
from he_ha.logsetup import configure_logging

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
    "--deploy", "--vm-start", "--vm-start-paused", "--vm-shutdown", "--vm-poweroff", "--vm-status",
    "--add-console-password", "--check-deployed", "--check-liveliness", "--connect-storage",
    "--disconnect-storage", "--console", "--set-maintenance", "--set-shared-config", "--get-shared-config",
    "--reinitialize-lockspace", "--clean-metadata", "--explain", "--init-storage",
)


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


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    prog = prog or sys.argv[0] or "hosted-engine"
    table = commands()
    if not args:
        print(general_usage(prog, table))
        return EXIT_FAILED
    first = args[0]
    if first == "--help":
        if len(args) == 1:
            print(general_usage(prog, table))
            return EXIT_OK
        first, args = args[1], [args[1], "--help"]
    command = table.get(first)
    if command is None:
        print(f"Invalid option '{first}'", file=sys.stderr)
        print(general_usage(prog, table))
        return EXIT_FAILED
    rest = args[1:]
    if rest[:1] == ["--help"]:
        print(command_help(prog, command))
        return EXIT_OK
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
    (tests run commands in-process)."""
    previous = structlog.get_config()
    configure_logging(level="ERROR")
    try:
        yield
    finally:
        structlog.configure(**previous)


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
