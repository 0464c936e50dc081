"""A duration histogram: Prometheus' cumulative ``le`` buckets, kept by the code that times
something (the tick, a monitor probe, a whiteboard call, a sanlock query) and rendered by
he_ha.supervisor.metrics. Pure; used on the event loop's thread only, so no lock."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

# Seconds. From a 1 ms whiteboard read to a tick that waits out two storage deadlines and a
# publish (~15 s) and a probe bounded by its 30 s deadline.
BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class DurationHistogram:
    bounds: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=list)  # per bucket, the last one for > bounds[-1]
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)  # a clock cannot go back, but a caller's arithmetic may round
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> tuple[tuple[float, int], ...]:
        """(upper bound, observations <= it), ending with (+Inf, count)."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return tuple(out)
