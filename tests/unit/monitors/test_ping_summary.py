"""Reading iputils-ping's statistics line from real captured outputs."""

from __future__ import annotations

import pytest

from he_ha.monitors.framework import MonitorError
from he_ha.monitors.network import PingSummary
from tests.unit.monitors import ping_outputs as out


@pytest.mark.parametrize(
    ("output", "transmitted", "received", "line_start"),
    [
        (out.ALL_RECEIVED, 3, 3, "3 packets transmitted, 3 received, 0% packet loss"),
        (out.PARTIAL_LOSS, 4, 2, "4 packets transmitted, 2 received, 50% packet loss"),
        (out.ALL_LOST, 3, 0, "3 packets transmitted, 0 received, 100% packet loss"),
        (out.ALL_LOST_WITH_ERRORS, 5, 0, "5 packets transmitted, 0 received, +3 errors, 100% packet loss"),
        (out.ZERO_INTERVAL, 2, 2, "2 packets transmitted, 2 received, 0% packet loss"),
    ],
)
def test_summary_of_a_completed_round(output: str, transmitted: int, received: int, line_start: str) -> None:
    summary = PingSummary.parse(output)
    assert summary is not None
    assert (summary.transmitted, summary.received) == (transmitted, received)
    assert summary.line.startswith(line_start) and "\n" not in summary.line


@pytest.mark.parametrize("stdout", ["", out.CANNOT_FLOOD_STDOUT], ids=["nothing", "header-only"])
def test_no_summary_when_ping_could_not_probe(stdout: str) -> None:
    """Unknown host, no route, refused interval: ping exits 2 before any statistics."""
    assert PingSummary.parse(stdout) is None


def test_stderr_text_is_never_taken_for_a_summary() -> None:
    for stderr in (out.UNKNOWN_HOST_STDERR, out.NO_ROUTE_STDERR, out.CANNOT_FLOOD_STDERR):
        assert PingSummary.parse(stderr) is None


def test_impossible_counts_are_an_error() -> None:
    with pytest.raises(MonitorError, match="do not add up: 2 packets transmitted, 3 received"):
        PingSummary.parse(out.ALL_RECEIVED.replace("3 packets transmitted", "2 packets transmitted"))
