"""Mapping sanlock's error numbers to typed errors (numbers as observed with sanlock 3.8.5)."""

from __future__ import annotations

import errno

import pytest

from he_ha.lease import lease_errors as le


@pytest.mark.parametrize(
    ("op", "number", "expected"),
    [
        ("acquire", -243, le.LeaseHeldElsewhere),
        ("acquire", errno.EEXIST, le.LeaseAlreadyHeld),
        ("acquire", errno.ENOSPC, le.LockspaceNotJoined),
        ("acquire", -223, le.LeaseNotInitialised),
        ("acquire", -227, le.LeaseNotInitialised),
        ("acquire", errno.ESRCH, le.HolderNotRegistered),
        ("release", errno.EPERM, le.LeaseNotHeld),
        ("add_lockspace", errno.EINVAL, le.WrongHostId),
        ("add_lockspace", errno.EINPROGRESS, le.JoinInProgress),
        ("add_lockspace", -231, le.HostIdOutOfRange),
        ("add_lockspace", -262, le.HostIdInUse),
        ("add_lockspace", -223, le.LockspaceNotInitialised),
        ("rem_lockspace", errno.EBUSY, le.LockspaceBusy),
        ("rem_lockspace", errno.ENOENT, le.LockspaceNotJoined),
        ("get_hosts", errno.ENOENT, le.LockspaceNotJoined),
        ("get_hosts", errno.EAGAIN, le.LockspaceNotReady),
        ("read_resource_owners", errno.EINVAL, le.LeaseNotInitialised),
        ("acquire", -202, le.StorageTimeout),
        ("get_hosts", errno.ECONNREFUSED, le.DaemonUnavailable),
    ],
)
def test_known_numbers_map_to_their_class(op: str, number: int, expected: type[le.SanlockError]) -> None:
    error = le.map_sanlock_error(op, number, "sanlock text", "lease x")
    assert type(error) is expected
    assert (error.op, error.errno, error.message, error.target) == (op, number, "sanlock text", "lease x")
    assert "lease x" in str(error) and str(number) in str(error) and "sanlock text" in str(error)


def test_same_number_means_different_things_per_call() -> None:
    assert type(le.map_sanlock_error("add_lockspace", errno.EINVAL, "m", "t")) is le.WrongHostId
    assert type(le.map_sanlock_error("read_resource_owners", errno.EINVAL, "m", "t")) is le.LeaseNotInitialised
    assert type(le.map_sanlock_error("acquire", errno.EINVAL, "m", "t")) is le.SanlockError


def test_unknown_number_is_the_catch_all_with_its_number_and_text() -> None:
    error = le.map_sanlock_error("acquire", -299, "Something new", "lease x")
    assert type(error) is le.SanlockError
    assert error.errno == -299 and "Something new" in str(error)


def test_enoent_without_a_daemon_means_daemon_unavailable() -> None:
    error = le.map_sanlock_error("get_hosts", errno.ENOENT, "m", "t", daemon_up=False)
    assert type(error) is le.DaemonUnavailable
    assert type(le.map_sanlock_error("get_hosts", errno.ENOENT, "m", "t", daemon_up=True)) is le.LockspaceNotJoined


def test_retryable_marks_transient_conditions_only() -> None:
    assert le.map_sanlock_error("acquire", -243, "m", "t").retryable
    assert le.map_sanlock_error("get_hosts", errno.EAGAIN, "m", "t").retryable
    assert not le.map_sanlock_error("add_lockspace", errno.EINVAL, "m", "t").retryable
    assert not le.map_sanlock_error("acquire", -223, "m", "t").retryable
    assert le.LeaseCallTimeout("acquire", 3.0, "lease x").retryable


def test_timeout_names_call_target_and_deadline() -> None:
    assert str(le.LeaseCallTimeout("add_lockspace", 2.5, "lockspace 'x'")) == (
        "add_lockspace on lockspace 'x': no answer within 2.5 s (storage or sanlock daemon stalled)"
    )
