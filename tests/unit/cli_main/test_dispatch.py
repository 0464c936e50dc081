"""``hosted-engine`` dispatch (spec/hosted-engine-cli.md §2, §15, §16): usage, help, invalid
options and their exit codes, and the commands he-ha does not offer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli.hosted_engine import USAGE_ORDER, commands, main

PROG = "/usr/sbin/hosted-engine"
REPO = Path(__file__).resolve().parents[3]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args), prog=PROG)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_no_arguments_print_the_usage_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[:4] == [
        f"Usage: {PROG} [--help] <command> [<command-args>]",
        "    --help",
        "        show this help message.",
        "    The available commands are:",
    ]


def test_usage_lists_every_command_in_the_original_order(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--help")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("        --")]
    assert listed == list(USAGE_ORDER) == list(commands())
    for line in out.splitlines()[4:]:
        assert line == "" or line.startswith("        --") or line.startswith("            "), line


@pytest.mark.parametrize("name", USAGE_ORDER)
def test_help_of_each_command_both_ways(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = run(capsys, "--help", name)
    assert (code, err) == (0, "")
    assert out.startswith(f"Usage: {PROG} {name}")
    assert run(capsys, name, "--help") == (0, out, "")


@pytest.mark.parametrize(
    "bogus",
    ["--bogus", "--upgrade-appliance", "--rollback-upgrade", "--config-append=x", "--clean_metadata", "vm-status"],
)
def test_unknown_commands_are_invalid_options(capsys: pytest.CaptureFixture[str], bogus: str) -> None:
    code, out, err = run(capsys, bogus)
    assert code == 1
    assert err == f"Invalid option '{bogus}'\n"
    assert out.startswith(f"Usage: {PROG} [--help]")
    assert run(capsys, "--help", bogus) == (1, out, err)


def test_deploy_says_what_to_use_instead(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--deploy")
    assert (code, out) == (1, "")
    assert "he-ha does not deploy the engine VM" in err and "--init-storage" in err


def test_disconnect_storage_says_nothing_was_done(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--disconnect-storage")
    assert (code, out) == (1, "")
    assert "nothing was disconnected" in err


def test_connect_storage_checks_the_areas(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "hosted-engine.conf"
    monkeypatch.setenv("HE_HA_HOSTED_ENGINE_CONF", str(conf))
    assert run(capsys, "--connect-storage") == (1, "You must run deploy first\n", "")
    conf.write_text(
        f"host_id=1\nvmid=abc\nnetwork_test=none\nmetadata_path={tmp_path / 'md'}\nlockspace_path={tmp_path / 'ls'}\n"
    )
    code, out, err = run(capsys, "--connect-storage")
    assert (code, out) == (1, "")
    assert err == (
        f"Connection to storage server failed: {tmp_path / 'md'}: No such file or directory\n"
        f"Connection to storage server failed: {tmp_path / 'ls'}: No such file or directory\n"
    )
    (tmp_path / "md").touch()
    (tmp_path / "ls").touch()
    assert run(capsys, "--connect-storage") == (0, "", "")
    assert run(capsys, "--connect-storage", "--now") == (
        0,
        "",
        "--connect-storage: ignored argument --now (the original hosted-engine ignores it too)\n",
    )


def test_broken_conf_is_named_not_taken_for_not_deployed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "hosted-engine.conf"
    conf.write_text("vmid=abc\nthis line has no equals sign\n")
    monkeypatch.setenv("HE_HA_HOSTED_ENGINE_CONF", str(conf))
    code, out, err = run(capsys, "--connect-storage")
    assert (code, out) == (1, "")
    assert str(conf) in err and "line 2 is not 'key=value'" in err


def test_console_script_exit_status_and_broken_pipe() -> None:
    """The real entry point: exit status through sys.exit, and a reader that goes away early
    (``| head -1``) is not a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "cli.hosted_engine"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1 and done.stdout.startswith("Usage: ")
    piped = subprocess.run(
        f"{sys.executable} -m cli.hosted_engine --help | head -1",
        shell=True,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert piped.stdout.startswith("Usage: ") and "Traceback" not in piped.stderr
