"""The man pages and bash completion are generated from the command tables (cli.hosted_engine's
COMMANDS, he-ha's argparse parser): regenerating must give the committed files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_regenerating_gives_the_committed_files() -> None:
    done = subprocess.run(
        [sys.executable, REPO / "packaging" / "gen_docs.py", "--check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_every_command_is_in_the_pages_and_completion() -> None:
    sys.path.insert(0, str(REPO))
    from cli.hosted_engine import commands
    from he_ha.main import SUBCOMMANDS

    page = (REPO / "packaging/man/hosted-engine.8").read_text()
    completion = (REPO / "packaging/completion/hosted-engine").read_text()
    for name in commands():
        assert name.replace("-", "\\-") in page and name in completion
    page = (REPO / "packaging/man/he-ha.8").read_text()
    completion = (REPO / "packaging/completion/he-ha").read_text()
    for name in SUBCOMMANDS:
        assert f".SS {name.replace('-', chr(92) + '-')}" in page and f"{name})" in completion


def test_bash_accepts_the_completion_scripts() -> None:
    for name in ("he-ha", "hosted-engine"):
        done = subprocess.run(["bash", "-n", REPO / "packaging/completion" / name], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
