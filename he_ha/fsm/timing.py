"""Every timeout of the state machine in one frozen, validated object.

Defaults are the original's constants (spec §3.7) plus he-ha's additions, which the
original did not have: the yield dwell time (hysteresis), the maximum age of the
whiteboard view before it counts as stale, the deadlines for pending actions, the ceiling
for an engine that answers but is not ready, and the host-priority delays and the failback
switch (issue 14).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields


class TimingError(ValueError):
    """A timing value is missing its meaning: unknown key, wrong type or out of range."""


BOOL_KEYS = frozenset({"failback"})  # switches, not numbers


@dataclass(frozen=True, slots=True)
class TimingConfig:
    # --- the original's constants (spec §3.7) ---
    loop_delay: float = 10.0  # LOOP_DELAY: period of a WAIT step
    liveness: float = 60.0  # HOST_ALIVE_TIMEOUT_SECS
    history: float = 900.0  # STATS_HISTORY_SECS
    starting_timeout: float = 600.0  # ENGINE_STARTING_TIMEOUT: EngineStarting -> EngineStop
    bad_health_timeout: float = 300.0  # EngineUpBadHealth -> EngineStop
    stop_timeout: float = 300.0  # EngineStop -> EngineForceStop
    maybe_away_timeout: float = 40.0  # ENGINE_AWAY_EXPIRATION_SECS
    unexpectedly_down_timeout: float = 560.0  # VM_UNEXPECTED_SHUTDOWN_EXPIRATION_SECS
    retry_window: float = 600.0  # ENGINE_RETRY_EXPIRATION_SECS
    max_retries: int = 3  # failed starts inside the window that zero the score
    yield_threshold: int = 800  # RESTART_THRESHOLD_SCORE
    # --- he-ha additions ---
    yield_dwell: float = 60.0  # a peer must out-score us by the threshold this long before we yield
    view_max_age: float = 30.0  # an older whiteboard view is stale: no start, no yield on it
    action_timeout: float = 240.0  # start / shutdown / destroy result not reported -> failed; above
    # sanlock's longest acquire wait at io_timeout 10 (210 s, lease_layout.wait_deadline)
    migrate_timeout: float = 300.0  # migration result not reported -> failed
    migrate_retry_delay: float = 60.0  # wait after a failed migration before trying again
    lease_busy_backoff: float = 20.0  # without lease-owner data, wait this long after "lease busy"
    # An engine that answers its health page but is not ready (slow is not dead) is stopped
    # for that only after this long in EngineStarting / EngineUpBadHealth; the starting and
    # bad-health timeouts count silence only (effective ceiling: at least those timeouts).
    not_ready_timeout: float = 3600.0
    # A VM that crashed here while no live peer can take it is restarted here at once; each
    # further local restart inside the retry window waits restart_backoff * 2**(n-1) first.
    restart_backoff: float = 10.0
    # Escalation: no host can start the engine VM, which runs nowhere, for this long: the
    # gave-up.no-eligible-host alert (he_ha.fsm.alerts).
    no_host_alert_after: float = 300.0
    # Host priorities (issue 14): a host about to start the VM defers at most this long to a
    # live, eligible peer with a better priority (and a score within yield_threshold of the
    # best) that is down and ready to start it too (docs/fsm.md "Host priorities").
    priority_start_delay: float = 30.0
    # Failback: move a healthy engine to a better-priority host that has been eligible, ready
    # and within yield_threshold of the best score for failback_dwell, through the yield path
    # (shut down here; the preferred host starts it). Off by default. After a failback that
    # did not take (this host started the VM again itself), none for failback_retry_delay.
    failback: bool = False
    failback_dwell: float = 300.0
    failback_retry_delay: float = 3600.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in BOOL_KEYS:
                if not isinstance(value, bool):
                    raise TimingError(f"timing {f.name!r} must be true or false, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TimingError(f"timing {f.name!r} must be a finite number, got {value!r}")
            minimum = 0 if f.name == "yield_dwell" else 1e-9
            if value < minimum:
                raise TimingError(f"timing {f.name!r} must be {'>= 0' if minimum == 0 else '> 0'}, got {value!r}")
        if not isinstance(self.max_retries, int) or not isinstance(self.yield_threshold, int):
            raise TimingError("timing 'max_retries' and 'yield_threshold' must be integers")
        if self.history <= self.liveness + self.loop_delay:
            # Liveness needs a snapshot older than `liveness` still inside the history.
            raise TimingError(
                f"timing 'history' ({self.history}) must exceed liveness + loop_delay "
                f"({self.liveness + self.loop_delay})"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> TimingConfig:
        """Build from a mapping (YAML scenario, config file), refusing unknown keys by name."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise TimingError(f"unknown timing key {key!r}; known keys: {', '.join(sorted(known))}")
        return cls(**data)  # type: ignore[arg-type]
