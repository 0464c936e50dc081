"""TimingConfig defaults and validation."""

from __future__ import annotations

import pytest

from he_ha.fsm import TimingConfig, TimingError


def test_defaults_are_the_originals_constants() -> None:
    t = TimingConfig()
    original = (t.loop_delay, t.liveness, t.history, t.starting_timeout, t.bad_health_timeout, t.stop_timeout)
    assert original == (10, 60, 900, 600, 300, 300)
    assert (t.maybe_away_timeout, t.unexpectedly_down_timeout, t.retry_window, t.max_retries, t.yield_threshold) == (
        40,
        560,
        600,
        3,
        800,
    )


def test_from_mapping_refuses_unknown_keys_by_name() -> None:
    with pytest.raises(TimingError, match="unknown timing key 'livenes'"):
        TimingConfig.from_mapping({"livenes": 30})
    assert TimingConfig.from_mapping({"liveness": 30}).liveness == 30


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"stop_timeout": 0}, "'stop_timeout' must be > 0"),
        ({"yield_dwell": -1}, "'yield_dwell' must be >= 0"),
        ({"loop_delay": True}, "'loop_delay' must be a finite number"),
        ({"liveness": float("inf")}, "'liveness' must be a finite number"),
        ({"liveness": "60"}, "'liveness' must be a finite number"),
        ({"max_retries": 2.5}, "must be integers"),
        ({"history": 70}, "'history' .* must exceed liveness \\+ loop_delay"),
    ],
)
def test_invalid_values(values: dict[str, object], message: str) -> None:
    with pytest.raises(TimingError, match=message):
        TimingConfig.from_mapping(values)


def test_zero_dwell_allowed() -> None:
    assert TimingConfig(yield_dwell=0).yield_dwell == 0
