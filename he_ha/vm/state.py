"""The VM's state as libvirt reports it (``dom.state()``), as a small typed value."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import libvirt


class VmStatus(StrEnum):
    RUNNING = "running"  # incl. libvirt's BLOCKED and SHUTDOWN (being shut down)
    PAUSED = "paused"  # incl. PMSUSPENDED (guest suspended to RAM): a QEMU process exists
    SHUTOFF = "shutoff"  # a defined (persistent) domain that is not running
    CRASHED = "crashed"  # the guest crashed and libvirt kept the domain (on_crash=preserve)
    ABSENT = "absent"  # libvirt knows no such domain (a stopped transient domain vanishes)
    UNKNOWN = "unknown"  # libvirt could not be asked, or reported no state


class RunningReason(StrEnum):
    UNKNOWN = "unknown"
    BOOTED = "booted"
    MIGRATED = "migrated"
    RESTORED = "restored"
    FROM_SNAPSHOT = "from_snapshot"
    UNPAUSED = "unpaused"
    MIGRATION_CANCELED = "migration_canceled"
    SAVE_CANCELED = "save_canceled"
    WAKEUP = "wakeup"
    CRASHED = "crashed"
    POSTCOPY = "postcopy"
    POSTCOPY_FAILED = "postcopy_failed"
    BLOCKED = "blocked"  # libvirt state BLOCKED
    SHUTTING_DOWN = "shutting_down"  # libvirt state SHUTDOWN


class PausedReason(StrEnum):
    UNKNOWN = "unknown"
    USER = "user"
    MIGRATION = "migration"
    SAVE = "save"
    DUMP = "dump"
    IOERROR = "ioerror"  # storage trouble: the VM lease will be lost soon
    WATCHDOG = "watchdog"
    FROM_SNAPSHOT = "from_snapshot"
    SHUTTING_DOWN = "shutting_down"
    SNAPSHOT = "snapshot"
    CRASHED = "crashed"
    STARTING_UP = "starting_up"
    POSTCOPY = "postcopy"
    POSTCOPY_FAILED = "postcopy_failed"
    API_ERROR = "api_error"
    PMSUSPENDED = "pmsuspended"  # libvirt state PMSUSPENDED


class ShutoffReason(StrEnum):
    UNKNOWN = "unknown"
    SHUTDOWN = "shutdown"
    DESTROYED = "destroyed"
    CRASHED = "crashed"
    MIGRATED = "migrated"
    SAVED = "saved"
    FAILED = "failed"
    FROM_SNAPSHOT = "from_snapshot"
    DAEMON = "daemon"


class CrashedReason(StrEnum):
    UNKNOWN = "unknown"
    PANICKED = "panicked"


Reason = RunningReason | PausedReason | ShutoffReason | CrashedReason | None
_ReasonT = TypeVar("_ReasonT", bound=StrEnum)


def _by_libvirt_name(prefix: str, enum: type[_ReasonT]) -> dict[int, _ReasonT]:
    """Map libvirt's VIR_DOMAIN_<STATE>_<REASON> numbers onto the enum member of that name.

    Built from the binding's constants, so the numbers are libvirt's own; reasons this
    binding does not know are skipped and read as UNKNOWN.
    """
    table: dict[int, _ReasonT] = {}
    for member in enum:
        value = getattr(libvirt, f"{prefix}{member.name}", None)
        if isinstance(value, int):
            table[value] = member
    return table


_RUNNING = _by_libvirt_name("VIR_DOMAIN_RUNNING_", RunningReason)
_PAUSED = _by_libvirt_name("VIR_DOMAIN_PAUSED_", PausedReason)
_SHUTOFF = _by_libvirt_name("VIR_DOMAIN_SHUTOFF_", ShutoffReason)
_CRASHED = _by_libvirt_name("VIR_DOMAIN_CRASHED_", CrashedReason)


@dataclass(frozen=True)
class VmState:
    status: VmStatus
    reason: Reason = None
    detail: str = ""  # for UNKNOWN: why libvirt could not tell

    @property
    def active(self) -> bool:
        """A QEMU process exists for the domain here (it may hold the VM lease)."""
        return self.status in (VmStatus.RUNNING, VmStatus.PAUSED)

    @property
    def storage_error(self) -> bool:
        return self.status is VmStatus.PAUSED and self.reason is PausedReason.IOERROR

    @classmethod
    def absent(cls) -> VmState:
        return cls(VmStatus.ABSENT)

    @classmethod
    def unknown(cls, detail: str) -> VmState:
        return cls(VmStatus.UNKNOWN, None, detail)

    def __str__(self) -> str:
        text = self.status.value if self.reason is None else f"{self.status.value}({self.reason.value})"
        return f"{text}: {self.detail}" if self.detail else text


def state_from_libvirt(state: int, reason: int) -> VmState:
    """Turn ``dom.state()``'s ``[state, reason]`` into a VmState."""
    if state == libvirt.VIR_DOMAIN_RUNNING:
        return VmState(VmStatus.RUNNING, _RUNNING.get(reason, RunningReason.UNKNOWN))
    if state == libvirt.VIR_DOMAIN_BLOCKED:
        return VmState(VmStatus.RUNNING, RunningReason.BLOCKED)
    if state == libvirt.VIR_DOMAIN_SHUTDOWN:
        return VmState(VmStatus.RUNNING, RunningReason.SHUTTING_DOWN)
    if state == libvirt.VIR_DOMAIN_PAUSED:
        return VmState(VmStatus.PAUSED, _PAUSED.get(reason, PausedReason.UNKNOWN))
    if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
        return VmState(VmStatus.PAUSED, PausedReason.PMSUSPENDED)
    if state == libvirt.VIR_DOMAIN_SHUTOFF:
        return VmState(VmStatus.SHUTOFF, _SHUTOFF.get(reason, ShutoffReason.UNKNOWN))
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return VmState(VmStatus.CRASHED, _CRASHED.get(reason, CrashedReason.UNKNOWN))
    return VmState.unknown(f"libvirt reports state {state} (reason {reason})")
