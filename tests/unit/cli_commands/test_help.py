"""Every command of this area has help in the original's style and appears in the usage."""

from __future__ import annotations

import pytest

from tests.unit.cli_commands.conftest import Run

COMMANDS = [
    "--vm-start",
    "--vm-start-paused",
    "--vm-shutdown",
    "--vm-poweroff",
    "--add-console-password",
    "--console",
    "--check-deployed",
    "--check-liveliness",
    "--set-maintenance",
    "--set-shared-config",
    "--get-shared-config",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(run: Run, command: str) -> None:
    for args in ([command, "--help"], ["--help", command]):
        result = run(*args)
        assert result.status == 0 and result.err == ""
        first, *prose = result.out.rstrip("\n").splitlines()
        assert first.startswith(f"Usage: hosted-engine {command}")
        assert prose and all(line.startswith("    ") for line in prose)


def test_general_usage_lists_them(run: Run) -> None:
    usage = run("--help").out
    for command in COMMANDS:
        assert f"\n        {command}" in usage
    assert "--vm-start-paused.\n" not in usage  # the original's stray dot (quirk 7) is gone
    assert "        --set-maintenance --mode=<mode>\n" in usage
    assert "        --add-console-password [--password=<password>]\n" in usage
