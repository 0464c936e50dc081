from __future__ import annotations

import pytest

from he_ha.notify.ratelimit import RateLimitError, TokenBucket


def test_burst_then_one_per_interval() -> None:
    bucket = TokenBucket.full(burst=3, refill_seconds=60, now=0)
    for _ in range(3):
        assert bucket.delay(0) == 0
        bucket.take(0)
    assert bucket.delay(0) == 60
    assert bucket.delay(45) == pytest.approx(15)
    bucket.take(60)
    assert bucket.delay(60) == 60


def test_refill_stops_at_the_burst() -> None:
    bucket = TokenBucket.full(burst=2, refill_seconds=10, now=0)
    bucket.take(0)
    bucket.take(0)
    assert bucket.delay(10_000) == 0
    bucket.take(10_000)
    bucket.take(10_000)
    assert bucket.delay(10_000) == 10


def test_take_without_a_token_is_an_error() -> None:
    bucket = TokenBucket.full(burst=1, refill_seconds=10, now=0)
    bucket.take(0)
    with pytest.raises(RateLimitError):
        bucket.take(1)


@pytest.mark.parametrize(("burst", "refill"), [(0, 10), (1, 0), (1, -1)])
def test_invalid_settings(burst: int, refill: float) -> None:
    with pytest.raises(RateLimitError):
        TokenBucket.full(burst=burst, refill_seconds=refill, now=0)


def test_restore_only_from_the_same_boot_and_past() -> None:
    spent = TokenBucket.full(burst=2, refill_seconds=100, now=0)
    spent.take(0)
    spent.take(0)
    saved = spent.snapshot("boot-a")

    same_boot = TokenBucket.full(burst=2, refill_seconds=100, now=50)
    assert same_boot.restore(saved, "boot-a", now=50)
    assert same_boot.delay(50) == pytest.approx(50)  # half a token refilled since the save

    other_boot = TokenBucket.full(burst=2, refill_seconds=100, now=50)
    assert not other_boot.restore(saved, "boot-b", now=50)
    assert other_boot.delay(50) == 0

    future = TokenBucket.full(burst=2, refill_seconds=100, now=50)
    assert not future.restore({**saved, "stamp": 60.0}, "boot-a", now=50)
    assert not future.restore({"boot_id": "boot-a", "tokens": "x", "stamp": 0}, "boot-a", now=50)
    assert future.delay(50) == 0
