"""The decision log's ring (admin GET /v1/decisions) keeps each entry as its JSON line, the
line the file gets (issue 16 item 3: ~19 KiB of objects per entry otherwise)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from he_ha.supervisor.decisions import DecisionLog


def entry(n: int) -> dict[str, Any]:
    return {"n": n, "record": {"rules": ["a", "b"], "score": 3400.5, "peers": {"2": None}}, "meta": {"tick": n}}


def test_the_ring_answers_the_newest_entries_as_added_and_as_the_file_has_them(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, ring=3)
    for n in range(5):
        log.add(entry(n))
    log.close()  # returns once the writer has written everything
    assert log.newest(2) == [entry(3), entry(4)]
    assert log.newest(10) == [entry(2), entry(3), entry(4)]
    assert log.newest(0) == []
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [entry(n) for n in range(5)]
    assert list(log._ring) == lines[2:]  # text, the file's lines, not the entries' objects


def test_an_entry_that_is_not_json_is_left_out_and_the_log_goes_on() -> None:
    log = DecisionLog(None, ring=3)
    log.add({"n": 0})
    log.add({"n": object()})
    log.add({"n": 2})
    assert log.newest(3) == [{"n": 0}, {"n": 2}]
