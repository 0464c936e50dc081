"""Deadlines and reconnect backoff: validation and the delay sequence."""

from __future__ import annotations

import pytest

from he_ha.vm import Backoff, Deadlines


def test_backoff_doubles_up_to_its_maximum() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, maximum=4.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(0) == 0.5


@pytest.mark.parametrize("kwargs", [{"initial": 0}, {"initial": 5.0, "maximum": 1.0}, {"factor": 0.5}])
def test_bad_backoff(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(**kwargs)


def test_deadlines_must_be_positive() -> None:
    assert Deadlines().migrate > Deadlines().query
    with pytest.raises(ValueError, match="deadline 'query' must be > 0"):
        Deadlines(query=0)
