"""dom.state() pairs mapped to VmState (libvirt's numbers, spelled out as in its headers)."""

from __future__ import annotations

import libvirt
import pytest

from he_ha.vm import (
    CrashedReason,
    PausedReason,
    RunningReason,
    ShutoffReason,
    VmState,
    VmStatus,
    state_from_libvirt,
)

CASES = [
    # (state, reason) -> (status, reason)
    ((1, 1), VmStatus.RUNNING, RunningReason.BOOTED),
    ((1, 2), VmStatus.RUNNING, RunningReason.MIGRATED),
    ((1, 5), VmStatus.RUNNING, RunningReason.UNPAUSED),
    ((1, 0), VmStatus.RUNNING, RunningReason.UNKNOWN),
    ((2, 0), VmStatus.RUNNING, RunningReason.BLOCKED),
    ((4, 1), VmStatus.RUNNING, RunningReason.SHUTTING_DOWN),
    ((3, 1), VmStatus.PAUSED, PausedReason.USER),
    ((3, 2), VmStatus.PAUSED, PausedReason.MIGRATION),
    ((3, 5), VmStatus.PAUSED, PausedReason.IOERROR),
    ((3, 6), VmStatus.PAUSED, PausedReason.WATCHDOG),
    ((7, 1), VmStatus.PAUSED, PausedReason.PMSUSPENDED),
    ((5, 0), VmStatus.SHUTOFF, ShutoffReason.UNKNOWN),
    ((5, 1), VmStatus.SHUTOFF, ShutoffReason.SHUTDOWN),
    ((5, 2), VmStatus.SHUTOFF, ShutoffReason.DESTROYED),
    ((5, 3), VmStatus.SHUTOFF, ShutoffReason.CRASHED),
    ((5, 4), VmStatus.SHUTOFF, ShutoffReason.MIGRATED),
    ((5, 5), VmStatus.SHUTOFF, ShutoffReason.SAVED),
    ((5, 6), VmStatus.SHUTOFF, ShutoffReason.FAILED),
    ((6, 1), VmStatus.CRASHED, CrashedReason.PANICKED),
    ((6, 0), VmStatus.CRASHED, CrashedReason.UNKNOWN),
]


@pytest.mark.parametrize(("pair", "status", "reason"), CASES)
def test_mapping(pair: tuple[int, int], status: VmStatus, reason: object) -> None:
    state = state_from_libvirt(*pair)
    assert (state.status, state.reason) == (status, reason)


def test_numbers_above_agree_with_the_binding() -> None:
    assert libvirt.VIR_DOMAIN_PAUSED_IOERROR == 5
    assert libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED == 2
    assert libvirt.VIR_DOMAIN_PMSUSPENDED == 7


def test_unknown_reason_code_reads_unknown_reason() -> None:
    assert state_from_libvirt(5, 999) == VmState(VmStatus.SHUTOFF, ShutoffReason.UNKNOWN)


def test_no_state_and_unknown_states_are_unknown_with_a_detail() -> None:
    for pair in ((0, 0), (42, 1)):
        state = state_from_libvirt(*pair)
        assert state.status is VmStatus.UNKNOWN
        assert f"state {pair[0]}" in state.detail


def test_active_means_a_qemu_process_exists() -> None:
    assert state_from_libvirt(1, 1).active and state_from_libvirt(3, 5).active
    for inactive in (state_from_libvirt(5, 2), state_from_libvirt(6, 1), VmState.absent(), VmState.unknown("x")):
        assert not inactive.active


def test_storage_error_only_for_ioerror_pause() -> None:
    assert state_from_libvirt(3, 5).storage_error
    assert not state_from_libvirt(3, 1).storage_error
    assert not state_from_libvirt(5, 3).storage_error


def test_text_form() -> None:
    assert str(state_from_libvirt(3, 5)) == "paused(ioerror)"
    assert str(VmState.absent()) == "absent"
    assert str(VmState.unknown("hypervisor unreachable")) == "unknown: hypervisor unreachable"
