"""The destination of a live migration reads "down" (detail "Migration Destination") while it
receives the VM: libvirt shows it PAUSED/STARTING_UP (its QEMU's start, ~0.4 s measured), then
PAUSED/MIGRATION, then RUNNING. In PAUSED/MIGRATION only ``virDomainGetJobStats`` tells it from
an outgoing migration's source at its switch-over (libvirt_domain.incoming_migration); it is not
asked in STARTING_UP, where it would wait for a local start to end (the supervisor treats a
QEMU that never ran as "cannot tell" for its lease instead: test_observe_not_started.py).
Measured on libvirt 9.0 with two real libvirtds (tests/realvm/test_migration.py)."""

from __future__ import annotations

import libvirt
import pytest

from he_ha.monitors.engine_status import REASON_BAD_STATUS, EngineStatusTracker, NeedsLiveness, status
from he_ha.monitors.libvirt_domain import incoming_migration, read_domain

L = libvirt


class Domain:
    """A libvirt domain as read_domain uses it; ``job`` is what jobStats does."""

    def __init__(self, state: int, reason: int, job: int | None = None) -> None:
        self._state = (state, reason)
        self._job = job  # None: answers with stats; else raises with that error code
        self.job_asked = 0

    def state(self) -> list[int]:
        return list(self._state)

    def info(self) -> list[int]:
        return [self._state[0], 0, 0, 1, 123]

    def jobStats(self) -> dict[str, int]:  # libvirt's name
        self.job_asked += 1
        if self._job is None:
            return {"type": L.VIR_DOMAIN_JOB_NONE}
        error = libvirt.libvirtError("job stats")
        error.err = (
            self._job,
            0,
            "migration statistics are available only on the source host",
            0,
            "",
            None,
            None,
            0,
            0,
        )
        raise error


class Connection:
    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def lookupByUUIDString(self, uuid: str) -> Domain:  # libvirt's name
        return self.domain


MIGRATION_IN = L.VIR_ERR_OPERATION_UNSUPPORTED  # what libvirt's QEMU driver answers during MIGRATION_IN


def test_a_domain_receiving_a_migration_is_incoming() -> None:
    domain = Domain(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION, job=MIGRATION_IN)
    info = read_domain(Connection(domain), domain_uuid="u")
    assert info.exists and info.incoming
    assert (info.state, info.reason) == (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION)


@pytest.mark.parametrize(
    "job",
    [
        None,  # the source of an outgoing migration at its switch-over: statistics
        L.VIR_ERR_NO_SUPPORT,  # a driver without job statistics
        L.VIR_ERR_OPERATION_INVALID,
    ],
)
def test_anything_else_is_not(job: int | None) -> None:
    state, reason = L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION
    assert not incoming_migration(Domain(state, reason, job), state, reason)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_STARTING_UP),  # would wait for a local start to end
        (L.VIR_DOMAIN_RUNNING, L.VIR_DOMAIN_RUNNING_MIGRATED),  # the finish phase still has the job: it runs
        (L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_USER),
        (L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_MIGRATED),
    ],
)
def test_job_stats_are_asked_only_while_paused_for_a_migration(state: int, reason: int) -> None:
    domain = Domain(state, reason, job=MIGRATION_IN)
    assert not incoming_migration(domain, state, reason)
    assert domain.job_asked == 0


def test_the_destination_reads_down_while_receiving_then_up() -> None:
    tracker = EngineStatusTracker()
    # its QEMU's start reads WaitForLaunch (up), as any start: the supervisor's lease answer
    # for it is "cannot tell" with the QEMU holder (test_observe_not_started.py)
    starting = tracker.domain_state(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_STARTING_UP, 0.5)
    assert starting == status("up", "bad", "WaitForLaunch", REASON_BAD_STATUS)
    destination = status("down", "bad", "Migration Destination", REASON_BAD_STATUS)
    for now in (1.0, 1.5):
        assert (
            tracker.domain_state(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION, now, incoming=True) == destination
        )
    assert tracker.vm == "down"
    assert isinstance(tracker.domain_state(L.VIR_DOMAIN_RUNNING, L.VIR_DOMAIN_RUNNING_MIGRATED, 2.0), NeedsLiveness)
    assert tracker.vm == "up"


def test_without_the_flag_starting_up_reads_up_and_the_rest_of_the_incoming_phase_would_read_as_a_source() -> None:
    # Why the flag is needed: the state alone makes the destination an "up" VM (WaitForLaunch),
    # then "Migration Source", and a VM up here whose lease the source holds is destroyed by
    # the foreign-lease rule.
    tracker = EngineStatusTracker()
    assert tracker.domain_state(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_STARTING_UP, 1.0)["vm"] == "up"  # type: ignore[index]
    assert tracker.domain_state(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION, 1.5) == NeedsLiveness(
        "Migration Source"
    )


def test_an_incoming_phase_keeps_a_sticky_down_state_as_it_was() -> None:
    tracker = EngineStatusTracker()
    tracker.domain_state(L.VIR_DOMAIN_RUNNING, L.VIR_DOMAIN_RUNNING_BOOTED, 0.0)
    tracker.domain_state(L.VIR_DOMAIN_SHUTOFF, L.VIR_DOMAIN_SHUTOFF_CRASHED, 0.5)  # it crashed here
    assert tracker.vm == "down_unexpected"
    row = tracker.domain_state(L.VIR_DOMAIN_PAUSED, L.VIR_DOMAIN_PAUSED_MIGRATION, 1.0, incoming=True)
    assert row == status("down_unexpected", "bad", "Migration Destination", REASON_BAD_STATUS)
