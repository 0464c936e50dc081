"""Lifecycle (event, detail) pairs classified per spec/peer-ha-systems.md §5.3."""

from __future__ import annotations

import libvirt
import pytest

from he_ha.vm import EventKind, classify

CASES = [
    # STOPPED 5: SHUTDOWN 0, DESTROYED 1, CRASHED 2, MIGRATED 3, SAVED 4, FAILED 5, FROM_SNAPSHOT 6
    (5, 0, EventKind.GUEST_SHUTDOWN),
    (5, 1, EventKind.DESTROYED),
    (5, 2, EventKind.CRASH),
    (5, 3, EventKind.MIGRATED_AWAY),
    (5, 4, EventKind.STOPPED),
    (5, 5, EventKind.CRASH),
    (5, 6, EventKind.STOPPED),
    (5, 99, EventKind.STOPPED),
    # STARTED 2: BOOTED 0, MIGRATED 1, RESTORED 2, FROM_SNAPSHOT 3, WAKEUP 4
    *[(2, detail, EventKind.STARTED) for detail in range(5)],
    # SUSPENDED 3: PAUSED 0, MIGRATED 1, IOERROR 2, WATCHDOG 3, ..., API_ERROR 6
    (3, 0, EventKind.PAUSED),
    (3, 1, EventKind.PAUSED),
    (3, 2, EventKind.STORAGE_ERROR_PAUSE),
    (3, 3, EventKind.PAUSED),
    (3, 6, EventKind.PAUSED),
    # RESUMED 4
    (4, 0, EventKind.RESUMED),
    (4, 1, EventKind.RESUMED),
    # SHUTDOWN 6: the stop is under way; STOPPED/SHUTDOWN follows and carries the meaning
    (6, 0, EventKind.OTHER),
    (6, 1, EventKind.OTHER),
    # PMSUSPENDED 7, CRASHED 8
    (7, 0, EventKind.PAUSED),
    (8, 0, EventKind.CRASH),
    (8, 1, EventKind.CRASH),
    # DEFINED 0, UNDEFINED 1, and anything newer
    (0, 0, EventKind.OTHER),
    (1, 0, EventKind.OTHER),
    (42, 0, EventKind.OTHER),
]


@pytest.mark.parametrize(("event", "detail", "kind"), CASES)
def test_classify(event: int, detail: int, kind: EventKind) -> None:
    assert classify(event, detail) is kind


def test_numbers_above_agree_with_the_binding() -> None:
    assert (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED) == (5, 5)
    assert (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR) == (3, 2)
    assert (libvirt.VIR_DOMAIN_EVENT_SHUTDOWN, libvirt.VIR_DOMAIN_EVENT_CRASHED) == (6, 8)
