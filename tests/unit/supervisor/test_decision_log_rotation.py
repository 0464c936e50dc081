"""The shipped logrotate file, run for real by logrotate on a decision log being written: no
entry lost, the writer follows the rename by itself."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from he_ha.supervisor.decisions import DecisionLog
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "packaging" / "logrotate" / "he-ha"


def wait_for_lines(path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(line)["n"] for line in path.read_text().splitlines()]
            if len(lines) >= count:
                return lines
        time.sleep(0.01)
    raise AssertionError(f"{path}: fewer than {count} entries")


def test_logrotate_renames_and_the_writer_continues_in_a_new_file(tmp_path: Path) -> None:
    require_tool("logrotate", "logrotate")
    path = tmp_path / "decisions.jsonl"
    config = tmp_path / "logrotate.conf"
    config.write_text(SHIPPED.read_text().replace("/var/log/he-ha/decisions.jsonl", str(path)))
    log = DecisionLog(path, ring=10)
    try:
        for n in range(3):
            log.add({"n": n})
        assert wait_for_lines(path, 3) == [0, 1, 2]
        subprocess.run(
            ["logrotate", "--force", "--state", str(tmp_path / "state"), str(config)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        assert not path.exists()  # nocreate: he-ha makes the new one
        for n in range(3, 5):
            log.add({"n": n})
        assert wait_for_lines(path, 2) == [3, 4]
    finally:
        log.close()
    rotated = tmp_path / "decisions.jsonl.1"  # delaycompress: the newest rotation stays plain
    assert [json.loads(line)["n"] for line in rotated.read_text().splitlines()] == [0, 1, 2]
