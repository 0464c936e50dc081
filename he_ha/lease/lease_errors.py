"""Typed errors of the lease layer and the mapping from sanlock's error numbers (pure).

Sanlock reports failures as ``SanlockException(errno, what, strerror)`` where errno is a
positive Linux errno or a negative sanlock code (sanlock_rv.h). The same number means
different things for different calls (ENOENT is "lockspace not joined" for ``get_hosts`` but
"daemon not running" when the socket is missing), so the mapping is keyed by the operation.
Every number observed here was produced against sanlock 3.8.5 (see docs/leases.md).
"""

from __future__ import annotations

import errno as E

# Negative sanlock codes (sanlock_rv.h) seen in practice.
SANLK_AIO_TIMEOUT = -202  # an I/O to the lease area took longer than the io timeout
SANLK_LEADER_MAGIC = -223  # no lease (or lockspace) record on storage at that offset
SANLK_LEADER_SECTORSIZE = -225  # the record was written with another sector size
SANLK_LEADER_LOCKSPACE = -226  # the record belongs to another lockspace
SANLK_LEADER_RESOURCE = -227  # the record holds another resource name
SANLK_HOSTID_TOO_LARGE = -231  # host id above the area's max hosts (daemon log: "too large")
SANLK_ACQUIRE_IDLIVE = -243  # the lease is held by another live host
# Lost a simultaneous race: another host won the paxos ballot (seen when two hosts acquire at once).
SANLK_ACQUIRE_OWNED = -244
SANLK_ACQUIRE_OTHER = -245
SANLK_ACQUIRE_OWNED_RETRY = -247
SANLK_HOSTID_BUSY = -262  # the host id is being renewed by another host


class LeaseError(Exception):
    """Base of every error of the lease layer."""

    retryable = False


class LeaseConfigError(LeaseError, ValueError):
    """A lockspace, lease or layout parameter is invalid; nothing was sent to sanlock."""


class LeaseCallTimeout(LeaseError):
    """A call did not finish within its deadline (storage or daemon stalled).

    Sanlock may still complete it later: after an ``acquire`` timeout, ask ``held()``.
    """

    retryable = True

    def __init__(self, op: str, deadline: float, target: str):
        self.op, self.deadline, self.target = op, deadline, target
        super().__init__(f"{op} on {target}: no answer within {deadline:g} s (storage or sanlock daemon stalled)")


class LeaseWorkerDied(LeaseError):
    """The lease worker process is gone; leases it held itself were released by sanlock."""


class LeaseProtocolError(LeaseError):
    """The worker and the client disagree about a message (a bug, not a storage problem)."""


class VolumeError(LeaseError):
    """The lease volume is missing, unreadable or too small (checked before sanlock runs)."""

    def __init__(self, path: str, message: str, errno: int | None = None):
        self.path, self.errno = path, errno
        super().__init__(f"{path}: {message}")


class LeaseAreaInUse(LeaseError):
    """Initialising would wipe an existing lockspace or lease (pass ``overwrite=True``)."""


class SanlockError(LeaseError):
    """A sanlock call failed: ``errno`` (sanlock's number) and ``message`` (its text)."""

    def __init__(self, op: str, errno: int, message: str, target: str, explanation: str = ""):
        self.op, self.errno, self.message, self.target = op, errno, message, target
        text = f"{op} on {target} failed: {explanation or message} (sanlock errno {errno}: {message})"
        super().__init__(text)


class DaemonUnavailable(SanlockError):
    """The sanlock daemon of this host is not running or does not answer on its socket."""

    retryable = True


class StorageTimeout(SanlockError):
    """Sanlock's own I/O to the lease area timed out (-202)."""

    retryable = True


class LeaseHeldElsewhere(SanlockError):
    """Another host holds the VM lease or won the race for it (-243, -244, -245, -247).

    An expected outcome: never a crash, never a reason to start the VM here."""

    retryable = True


class LeaseAlreadyHeld(SanlockError):
    """This holder already holds the lease (EEXIST on acquire)."""


class LeaseNotHeld(SanlockError):
    """Release of a lease this holder does not hold (EPERM/ENOENT on release)."""


class HolderNotRegistered(SanlockError):
    """``holder_pid`` names a process that has not registered with this host's daemon."""


class LeaseNotInitialised(SanlockError):
    """No lease record of the expected name and geometry at that offset."""


class LockspaceNotInitialised(SanlockError):
    """No lockspace record at that offset (write_lockspace never ran there)."""


class LockspaceNotJoined(SanlockError):
    """The call needs this host to hold its host id in the lockspace, and it does not (yet)."""

    retryable = True


class LockspaceNotReady(SanlockError):
    """Just joined: sanlock has not watched the other hosts long enough to report them."""

    retryable = True


class JoinInProgress(SanlockError):
    """A join or leave of this lockspace is already running in the daemon."""

    retryable = True


class LockspaceBusy(SanlockError):
    """Leaving refused: a resource lease in this lockspace is still held on this host."""


class WrongHostId(SanlockError):
    """This host already holds a different host id in the lockspace."""


class HostIdOutOfRange(SanlockError):
    """The host id is above what the lockspace area was initialised for (see defect B27)."""


class HostIdInUse(SanlockError):
    """Another live host is renewing this host id: two hosts are configured with one id."""

    retryable = True


# op -> errno -> (error class, explanation); "*" applies to every op.
_BY_OP: dict[str, dict[int, tuple[type[SanlockError], str]]] = {
    "*": {
        SANLK_AIO_TIMEOUT: (StorageTimeout, "sanlock's I/O to the lease area timed out"),
        E.ECONNREFUSED: (DaemonUnavailable, "the sanlock daemon is not running"),
        # The daemon died under a registered connection (the host "crashed"); the leases held
        # through it are gone with it.
        E.EPIPE: (DaemonUnavailable, "the sanlock daemon went away"),
        E.ECONNRESET: (DaemonUnavailable, "the sanlock daemon went away"),
    },
    "add_lockspace": {
        E.EINVAL: (WrongHostId, "this host already holds another host id in the lockspace (or the id is 0)"),
        E.EINPROGRESS: (JoinInProgress, "the lockspace is being joined or left already"),
        E.EAGAIN: (JoinInProgress, "the lockspace is being joined or left already"),
        SANLK_LEADER_MAGIC: (LockspaceNotInitialised, "no lockspace on storage there"),
        SANLK_LEADER_LOCKSPACE: (LockspaceNotInitialised, "storage holds another lockspace there"),
        SANLK_LEADER_SECTORSIZE: (LockspaceNotInitialised, "the lockspace was written with another sector size"),
        SANLK_HOSTID_TOO_LARGE: (HostIdOutOfRange, "the host id is above the lockspace's max hosts"),
        SANLK_HOSTID_BUSY: (HostIdInUse, "another live host is using this host id"),
    },
    "rem_lockspace": {
        E.EBUSY: (LockspaceBusy, "a resource lease is still held in the lockspace"),
        E.ENOENT: (LockspaceNotJoined, "this host has not joined the lockspace"),
    },
    "get_hosts": {
        E.ENOENT: (LockspaceNotJoined, "this host has not joined the lockspace"),
        E.EAGAIN: (LockspaceNotReady, "sanlock has not yet collected the other hosts' status"),
    },
    "acquire": {
        E.ENOSPC: (LockspaceNotJoined, "this host has not joined the lease's lockspace (or is still joining)"),
        E.EEXIST: (LeaseAlreadyHeld, "the holder already holds this lease"),
        E.ESRCH: (HolderNotRegistered, "the holder process is not registered with this host's sanlock"),
        SANLK_ACQUIRE_IDLIVE: (LeaseHeldElsewhere, "the lease is held by another live host"),
        SANLK_ACQUIRE_OWNED: (LeaseHeldElsewhere, "another host acquired the lease in a concurrent ballot"),
        SANLK_ACQUIRE_OTHER: (LeaseHeldElsewhere, "another host is acquiring the lease"),
        SANLK_ACQUIRE_OWNED_RETRY: (LeaseHeldElsewhere, "another host acquired the lease; retry later"),
        SANLK_LEADER_MAGIC: (LeaseNotInitialised, "no lease on storage there"),
        SANLK_LEADER_RESOURCE: (LeaseNotInitialised, "storage holds a lease with another resource name there"),
        SANLK_LEADER_LOCKSPACE: (LeaseNotInitialised, "storage holds a lease of another lockspace there"),
        SANLK_LEADER_SECTORSIZE: (LeaseNotInitialised, "the lease was written with another sector size"),
    },
    "release": {
        E.EPERM: (LeaseNotHeld, "the holder does not hold this lease"),
        E.ENOENT: (LeaseNotHeld, "the holder does not hold this lease"),
        E.ESRCH: (HolderNotRegistered, "the holder process is not registered with this host's sanlock"),
    },
    "inquire": {
        E.ESRCH: (HolderNotRegistered, "the holder process is not registered with this host's sanlock"),
    },
    "read_resource_owners": {
        E.EINVAL: (LeaseNotInitialised, "no lease with this name and geometry on storage there"),
        SANLK_LEADER_MAGIC: (LeaseNotInitialised, "no lease on storage there"),
    },
    "read_resource": {
        SANLK_LEADER_MAGIC: (LeaseNotInitialised, "no lease on storage there"),
    },
    "read_lockspace": {
        SANLK_LEADER_MAGIC: (LockspaceNotInitialised, "no lockspace on storage there"),
    },
}


def map_sanlock_error(op: str, errno: int, message: str, target: str, *, daemon_up: bool = True) -> SanlockError:
    """The typed error for sanlock failure ``errno`` of call ``op`` on ``target``.

    ``daemon_up`` is False when the worker found nothing listening on the daemon socket;
    then ENOENT means "daemon not running" whatever the call.
    """
    if not daemon_up and errno in (E.ENOENT, E.ECONNREFUSED):
        return DaemonUnavailable(op, errno, message, target, "the sanlock daemon is not running")
    cls, explanation = _BY_OP.get(op, {}).get(errno) or _BY_OP["*"].get(errno) or (SanlockError, "")
    return cls(op, errno, message, target, explanation)
