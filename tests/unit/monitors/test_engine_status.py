"""The engine status object: libvirt → VDSM detail mapping, rows, stickiness, grace,
and the bad-health confirmation rule (pure code, explicit time)."""

from __future__ import annotations

import libvirt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from he_ha.fsm.health import REASON_NOT_READY as FSM_NOT_READY
from he_ha.fsm.health import EngineHealth
from he_ha.monitors.engine_status import (
    REASON_NOT_READY,
    EngineStatusTracker,
    NeedsLiveness,
    shutoff_reason_of_stop_event,
    status,
    vdsm_detail,
)

L = libvirt


@pytest.mark.parametrize(
    ("state", "reason", "was_up", "detail"),
    [
        (L.VIR_DOMAIN_RUNNING, L.VIR_DOMAIN_RUNNING_BOOTED, False, "Up"),
        (L.VIR_DOMAIN_RUNNING, L.VIR_DOMAIN_RUNNING_MIGRATED, False, "Up"),
        (L.VIR_DOMAIN_BLOCKED, 0, True, "Up"),
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_USER, True, "Paused"),
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_IOERROR, True, "Paused"),
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION, True, "Migration Source"),
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION, False, "Migration Destination"),
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_STARTING_UP, False, "WaitForLaunch"),
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_SAVE, True, "Saving State"),
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_SHUTTING_DOWN, True, "Powering down"),
        (L.VIR_DOMAIN_SHUTDOWN, 0, True, "Powering down"),
        (L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_DESTROYED, True, "Down"),
        (L.VIR_DOMAIN_CRASHED, 0, True, "Down"),
        (L.VIR_DOMAIN_PMSUSPENDED, 0, True, "Paused"),
        (L.VIR_DOMAIN_NOSTATE, 0, False, "WaitForLaunch"),
    ],
)
def test_libvirt_state_to_vdsm_detail(state: int, reason: int, was_up: bool, detail: str) -> None:
    assert vdsm_detail(state, reason, was_up=was_up) == detail


def test_stop_event_details_map_to_shutoff_reasons() -> None:
    assert shutoff_reason_of_stop_event(L.VIR_DOMAIN_EVENT_STOPPED_MIGRATED) == L.VIR_DOMAIN_SHUTOFF_MIGRATED
    assert shutoff_reason_of_stop_event(L.VIR_DOMAIN_EVENT_STOPPED_FAILED) == L.VIR_DOMAIN_SHUTOFF_FAILED
    assert shutoff_reason_of_stop_event(999) == L.VIR_DOMAIN_SHUTOFF_UNKNOWN


def test_status_keys_and_order() -> None:
    assert list(status("up", "bad", "Up", "failed liveliness check")) == ["vm", "health", "detail", "reason"]
    assert "reason" not in status("up", "good", "Up")


def run_up(tracker: EngineStatusTracker, now: float) -> NeedsLiveness:
    row = tracker.domain_state(L.VIR_DOMAIN_RUNNING, L.VIR_DOMAIN_RUNNING_BOOTED, now)
    assert isinstance(row, NeedsLiveness)
    return row


def test_down_stickiness() -> None:
    tracker = EngineStatusTracker()
    shutoff = (L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_SHUTDOWN)
    assert tracker.domain_state(*shutoff, 0.0) == status("down", "bad", "Down", "bad vm status")
    run_up(tracker, 1.0)
    assert tracker.domain_state(*shutoff, 2.0)["vm"] == "down_unexpected"  # type: ignore[index]
    assert tracker.domain_missing()["vm"] == "down_unexpected"  # NoSuchVM keeps down_*
    assert tracker.domain_state(*shutoff, 3.0)["vm"] == "down_unexpected"  # type: ignore[index]
    migrated = tracker.domain_state(L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_MIGRATED, 4.0)
    assert migrated == status("down", "bad", "Down", "VM migrated away successfully")
    assert tracker.domain_state(*shutoff, 5.0)["vm"] == "down"  # type: ignore[index]
    run_up(tracker, 6.0)
    assert tracker.domain_missing() == status("down_missing", "bad", "unknown", "vm not running on this host")
    assert tracker.domain_state(*shutoff, 7.0)["vm"] == "down_unexpected"  # type: ignore[index]
    locked = tracker.domain_missing(lock_conflict=True)
    assert locked == status("down", "bad", "Down", "Storage of VM is locked. Is another host already starting the VM?")


def test_incoming_migration_is_down_not_unexpected() -> None:
    tracker = EngineStatusTracker()
    row = tracker.domain_state(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION, 0.0)
    assert row == status("down", "bad", "Migration Destination", "bad vm status")


def test_grace_then_liveness_failure() -> None:
    tracker = EngineStatusTracker(grace=100.0, min_failures=3, min_bad_time=30.0)
    detail = run_up(tracker, 0.0).detail
    assert tracker.liveness(detail, False, 0.0) == status("up", "bad", "Powering up", "bad vm status")
    assert tracker.in_grace(99.0) and not tracker.in_grace(100.0)
    assert tracker.liveness(detail, False, 100.0) == status("up", "bad", "Up", "failed liveliness check")


def test_an_answering_page_is_alive_not_ready_in_and_after_grace() -> None:
    """Slow is not dead: a page that answers without "DB Up" gets he-ha's not-ready reason."""
    tracker = EngineStatusTracker(grace=100.0, min_failures=3, min_bad_time=30.0)
    detail = run_up(tracker, 0.0).detail
    assert tracker.liveness(detail, False, 0.0, answered=True) == status("up", "bad", "Powering up", REASON_NOT_READY)
    assert tracker.liveness(detail, False, 100.0, answered=True) == status("up", "bad", "Up", REASON_NOT_READY)
    assert tracker.liveness(detail, False, 110.0) == status("up", "bad", "Up", "failed liveliness check")


def test_not_ready_reason_is_the_one_the_state_machine_reads() -> None:
    health = EngineHealth.from_mapping(status("up", "bad", "Up", REASON_NOT_READY))
    assert REASON_NOT_READY == FSM_NOT_READY and health.liveness == "not-ready" and health.alive
    assert EngineHealth.from_mapping(status("up", "bad", "Up", "failed liveliness check")).liveness == "silent"
    assert EngineHealth.from_mapping(status("up", "good", "Up")).liveness == "healthy"
    assert EngineHealth.from_mapping(status("up", "bad", "Paused", "bad vm status")).liveness == "silent"
    assert EngineHealth.from_mapping(status("down", "bad", "Down", "bad vm status")).liveness is None


def test_first_good_page_ends_grace() -> None:
    tracker = EngineStatusTracker(grace=100.0)
    run_up(tracker, 0.0)
    assert tracker.liveness("Up", True, 5.0) == status("up", "good", "Up")
    assert not tracker.in_grace(6.0)


def test_restart_gives_a_new_grace_period() -> None:
    tracker = EngineStatusTracker(grace=100.0)
    run_up(tracker, 0.0)
    tracker.liveness("Up", True, 1.0)
    tracker.domain_state(L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_SHUTDOWN, 500.0)
    run_up(tracker, 600.0)
    assert tracker.liveness("Up", False, 610.0)["detail"] == "Powering up"


def test_not_ready_states_skip_the_page() -> None:
    tracker = EngineStatusTracker()
    row = tracker.domain_state(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_STARTING_UP, 0.0)
    assert row == status("up", "bad", "WaitForLaunch", "bad vm status")


@given(st.lists(st.booleans(), min_size=1, max_size=200), st.integers(min_value=2, max_value=5))
def test_failures_never_reaching_the_count_never_give_bad(pattern: list[bool], min_failures: int) -> None:
    """Any page history without ``min_failures`` failures in a row (e.g. 50/50 flapping)
    keeps a once-healthy engine "good", however long it lasts."""
    tracker = EngineStatusTracker(grace=0.0, min_failures=min_failures, min_bad_time=0.0)
    run_up(tracker, 0.0)
    tracker.liveness("Up", True, 0.0)
    streak = 0
    for step, ok in enumerate(pattern, start=1):
        streak = 0 if ok else streak + 1
        if streak >= min_failures:
            break
        assert tracker.liveness("Up", ok, step * 10.0)["health"] == "good"


def test_confirmation_needs_both_count_and_time() -> None:
    tracker = EngineStatusTracker(grace=0.0, min_failures=2, min_bad_time=60.0)
    run_up(tracker, 0.0)
    tracker.liveness("Up", True, 0.0)
    assert tracker.liveness("Up", False, 10.0)["health"] == "good"
    assert tracker.liveness("Up", False, 11.0)["health"] == "good"  # 2 failures, but 1 s apart
    assert tracker.liveness("Up", False, 69.0)["health"] == "good"  # 59 s
    assert tracker.liveness("Up", False, 70.0) == status("up", "bad", "Up", "failed liveliness check")
    assert (tracker.failures, tracker.failing_since) == (4, 10.0)


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_failures must be >= 1"):
        EngineStatusTracker(min_failures=0)
    with pytest.raises(ValueError, match="grace and min_bad_time must be >= 0"):
        EngineStatusTracker(grace=-1.0)
