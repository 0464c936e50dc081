"""Rendering rules beyond the golden files: odd slots, the crc32 of our own slot, the
warnings on stderr, and that he-ha's extra lines cannot be mistaken for original ones."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable

from cli.status_render import LABELS, host_record, render_json, render_text
from he_ha.admin.contract import AlertView
from he_ha.supervisor.status import slot_view
from he_ha.whiteboard import HostSlot
from tests.unit.cli_status.conftest import HostFiles, Result
from tests.unit.cli_status.daemon import FixtureDaemon
from tests.unit.cli_status.fixtures import cluster, host1, host2

Run = Callable[..., Result]
ORIGINAL_LABELS = [
    *LABELS.values(),
    "stopped",
    "crc32",
    "conf_on_shared_storage",
    "local_conf_timestamp",
    "Extra metadata (valid at timestamp)",
]


def test_own_slot_crc_is_the_stored_one() -> None:
    """The daemon knows its own slot from memory, without a decoded crc; the status it serves
    carries the header's crc32 all the same (the spec's rule, applied here with zlib directly)."""
    header = '1|1|81234|1|3400|{"vm": "up", "health": "good", "detail": "Up"}|host1.example.com|0|0|00000000|1|81234'
    slot = HostSlot(
        host_id=1,
        host_ts=81234,
        score=3400,
        engine_status='{"vm": "up", "health": "good", "detail": "Up"}',
        hostname="host1.example.com",
        maintenance=False,
        stopped=False,
        conf_on_shared_storage=True,
        local_conf_timestamp=81234,
    )
    view = slot_view(slot, local=True, live=True, sanlock=None)
    assert host_record(view)["crc32"] == f"{zlib.crc32(header.encode()):08x}"


def test_engine_status_that_is_not_json() -> None:
    status = cluster(host1(engine_status=None))
    assert "Engine status                      : unknown (engine status is not a JSON object)\n" in render_text(status)
    assert json.loads(render_json(status))["1"]["engine-status"] is None


def test_empty_extra_has_no_extra_key_or_block() -> None:
    status = cluster(host1(extra=""))
    assert "extra" not in json.loads(render_json(status))["1"]
    assert "Extra metadata" not in render_text(status)


def test_non_ascii_is_escaped_in_json() -> None:
    status = cluster(host1(hostname="hôte1"))
    assert '"hostname": "h\\u00f4te1"' in render_json(status)
    assert "--== Host hôte1 (id: 1) status ==--" in render_text(status)


def test_he_ha_lines_match_no_original_label() -> None:
    """Scripts grep labels (``grep Score``, ``grep '^Hostname'``): none of our lines may match."""
    text = render_text(cluster(host1(), host2()))
    ours = [line for line in text.splitlines() if line.startswith("he-ha")]
    assert len(ours) == 7
    for line in ours:
        assert not any(label in line.split(":")[0] for label in ORIGINAL_LABELS), line


def test_this_hosts_engine_liveness_and_alerts_are_on_its_own_block() -> None:
    """Issue 14: which of the three the engine is (slow is not dead), and every active alert,
    loudly, on the asking host's block only; the original's JSON keeps its keys."""
    alert = AlertView(
        kind="gave-up.retry-limit", reason="3 failed starts in 600 s and no other host can start it", age=42.4
    )
    status = cluster(host1(), host2()).model_copy(
        update={"engine_liveness": "not-ready", "alerts": [alert], "gave_up": True}
    )
    text = render_text(status)
    own, peer = text.split("--== Host host2.example.com")
    assert (
        "he-ha engine liveness              : not-ready\n"
        "he-ha ALERT                        : gave-up.retry-limit: 3 failed starts in 600 s and no other "
        "host can start it (for 42 s)\n"
    ) in own
    assert "he-ha engine liveness" not in peer and "ALERT" not in peer
    assert "liveness" not in render_json(status) and "ALERT" not in render_text(cluster(host1(), host2()))


def test_host_priority_line_and_status_field() -> None:
    """Issue 14: the slot's priority (the default 0 without a priority line) in the status and
    on a he-ha line of the text view; the original's JSON keeps its keys."""
    status = cluster(host1(priority=5), host2(priority=0), host2(host_id=4, priority=None))
    text = render_text(status)
    assert "he-ha FSM state                    : EngineUp\nhe-ha priority                     : 5\n" in text
    assert text.count("he-ha priority") == 2  # none for a daemon that does not report it
    assert all(
        "priority" not in record for record in json.loads(render_json(status)).values() if isinstance(record, dict)
    )

    def slot(extra: str) -> HostSlot:
        return HostSlot(
            host_id=2,
            extra=extra,
            host_ts=1,
            score=3400,
            engine_status="{}",
            hostname="h",
            maintenance=False,
            stopped=False,
            conf_on_shared_storage=True,
            local_conf_timestamp=1,
        )

    assert slot_view(slot("state=EngineDown\npriority=-3\n"), local=False, live=True, sanlock=None).priority == -3
    assert slot_view(slot("state=EngineDown\n"), local=False, live=True, sanlock=None).priority == 0


def test_zero_hosts_while_the_daemon_starts(host: HostFiles, run: Run) -> None:
    status = cluster().model_copy(update={"whiteboard_age": None})
    with FixtureDaemon(host.socket, status):
        result = run("--vm-status")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "he-ha: the he-ha daemon has not read the whiteboard yet (starting?); try again in a few seconds\n"
    )


def test_stale_view_and_unreadable_global_flag_are_warned(host: HostFiles, run: Run) -> None:
    status = cluster(host1(), global_maintenance=None).model_copy(
        update={"storage_error": "whiteboard read of /x: no answer within 10 s", "whiteboard_age": 42.0}
    )
    with FixtureDaemon(host.socket, status):
        result = run("--vm-status", "--json")
    assert result.code == 0
    assert json.loads(result.out)["global_maintenance"] is False
    assert result.err == (
        "he-ha: the daemon's last whiteboard read failed: whiteboard read of /x: no answer within 10 s; "
        "the status shown is 42 s old\n"
        "he-ha: the global maintenance flag (whiteboard slot 0) cannot be read; shown as off\n"
    )
