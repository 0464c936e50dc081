"""``--vm-status`` text and JSON, byte for byte against hand-written golden files.

The golden files were written by hand from spec/hosted-engine-cli.md §3.4/§3.5 (layout,
35-column labels, banners, masking), with the crc32 values computed by hand with zlib from
the header rule; they were not produced by the code under test. Each fixture ClusterStatus
is served by a real admin server over a real unix socket (tests/unit/cli_status/daemon.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.unit.cli_status.conftest import HostFiles, Result, golden
from tests.unit.cli_status.daemon import FixtureDaemon
from tests.unit.cli_status.fixtures import STATUSES

Run = Callable[..., Result]
TEXT_CASES = ["normal", "stale", "global_maintenance", "local_maintenance", "corrupt_slot"]
JSON_CASES = [*TEXT_CASES, "zero_hosts"]


@pytest.mark.parametrize("case", TEXT_CASES)
def test_text_matches_golden(case: str, host: HostFiles, run: Run) -> None:
    with FixtureDaemon(host.socket, STATUSES[case]()):
        result = run("--vm-status")
    assert result.out == golden(f"{case}.txt")
    assert result.err == ""
    assert result.code == 0


@pytest.mark.parametrize("case", JSON_CASES)
def test_json_matches_golden(case: str, host: HostFiles, run: Run) -> None:
    with FixtureDaemon(host.socket, STATUSES[case]()):
        result = run("--vm-status", "--json")
    assert result.out == golden(f"{case}.json")
    assert result.code == 0
    if case == "corrupt_slot":  # left out of the JSON for compatibility, but named
        assert result.err == (
            "he-ha: host slot 3 left out, it cannot be read: whiteboard slot of host 3: "
            "crc32 field 'deadbeef' does not match the computed 5d0c44a1\n"
        )
    else:
        assert result.err == ""


def test_json_is_what_the_ansible_role_and_ost_read(host: HostFiles, run: Run) -> None:
    """json.loads; numeric keys hold host dicts whose engine-status is an object; the
    JMESPath ``*."engine-status"."health"`` of the engine host is good; no extra top-level key."""
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        result = run("--vm-status", "--json")
    document = json.loads(result.out)
    assert result.out.count("\n") == 1
    assert list(document) == ["1", "2", "global_maintenance"]
    hosts = [value for key, value in document.items() if key.isdigit()]
    health = [h["engine-status"]["health"] for h in hosts if isinstance(h, dict)]
    assert "good" in health and document["1"]["engine-status"]["detail"] == "Up"
    assert list(document["1"]) == [
        "host-id",
        "host-ts",
        "score",
        "engine-status",
        "hostname",
        "maintenance",
        "stopped",
        "crc32",
        "conf_on_shared_storage",
        "local_conf_timestamp",
        "extra",
        "live-data",
    ]


def test_shutdown_role_grep_matches_text_mode(host: HostFiles, run: Run) -> None:
    """roles/shutdown_env loops on ``hosted-engine --vm-status | grep '"vm": "up"'``."""
    with FixtureDaemon(host.socket, STATUSES["normal"]()):
        up = run("--vm-status").out
    with FixtureDaemon(host.socket, STATUSES["stale"]().model_copy(update={"hosts": []})):
        nothing = run("--vm-status").out
    assert [line for line in up.splitlines() if '"vm": "up"' in line] == [
        'Engine status                      : {"vm": "up", "health": "good", "detail": "Up"}'
    ]
    assert '"vm": "up"' not in nothing


def test_zero_hosts_text_exits_1_and_says_why(host: HostFiles, run: Run) -> None:
    with FixtureDaemon(host.socket, STATUSES["zero_hosts"]()):
        result = run("--vm-status")
    assert (result.code, result.out) == (1, "")
    assert result.err == "he-ha: no host has published its status on the whiteboard yet\n"


def test_only_unreadable_slots_text_exits_1(host: HostFiles, run: Run) -> None:
    status = STATUSES["corrupt_slot"]()
    status = status.model_copy(update={"hosts": [h for h in status.hosts if h.error is not None]})
    with FixtureDaemon(host.socket, status):
        result = run("--vm-status")
    assert result.code == 1
    assert "--== Host slot 3: UNREADABLE ==--" in result.out
    assert result.err == "he-ha: no host slot on the whiteboard can be read (1 unreadable, shown above)\n"
