"""What a ``hosted-engine`` command imports (issue 16 item 2): only its own module, and
structlog configured when something first imports it, before anything can log."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from cli.hosted_engine import COMMAND_MODULE, COMMAND_MODULES, commands, find_command

REPO = Path(__file__).resolve().parents[3]


def test_the_command_to_module_map_matches_what_the_modules_define() -> None:
    defined = {c.name: module for module in COMMAND_MODULES for c in importlib.import_module(module).COMMANDS}
    assert defined == COMMAND_MODULE
    for name, command in commands().items():
        assert find_command(name) is command
    assert find_command("--no-such-command") is None


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_structlog_imported_during_a_command_logs_errors_only_and_on_stderr() -> None:
    done = python(
        "import sys\n"
        "import cli.hosted_engine as m\n"
        "assert 'structlog' not in sys.modules\n"
        "with m.library_logs_on_stderr():\n"
        "    import structlog\n"
        "    structlog.get_logger('t').info('quiet-info')\n"
        "    structlog.get_logger('t').error('loud-error')\n"
        "assert structlog.get_config()['logger_factory'].__class__.__name__ != 'LoggerFactory', 'not restored'\n"
        "print('done')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    assert "loud-error" in done.stderr and "quiet-info" not in done.stderr


def test_structlog_already_imported_is_configured_and_restored() -> None:
    done = python(
        "import structlog\n"
        "import cli.hosted_engine as m\n"
        "before = structlog.get_config()\n"
        "with m.library_logs_on_stderr():\n"
        "    structlog.get_logger('t').info('quiet-info')\n"
        "    structlog.get_logger('t').error('loud-error')\n"
        "assert structlog.get_config() == before\n"
        "print('done')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n" and "loud-error" in done.stderr and "quiet-info" not in done.stderr


def test_vm_status_and_help_do_not_load_the_state_machine_or_other_commands() -> None:
    done = python(
        "import sys, cli.hosted_engine as m\n"
        "m.find_command('--vm-status')\n"
        "loaded = sorted(n for n in sys.modules if n.startswith(('cli.cmd_', 'he_ha.fsm', 'cli.status_explain')))\n"
        "print(loaded)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['cli.cmd_status']"
