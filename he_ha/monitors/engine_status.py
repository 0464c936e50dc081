"""The engine status object of the original (spec §5.8), built from libvirt domain states.

Pure: no I/O, no clock; ``now`` is passed in. ``EngineStatusTracker`` holds the sticky
``vm`` value (down / down_unexpected / down_missing / up), the start-up grace period and
the consecutive-failure rule of the health page, and returns the exact dict that peers
read from the whiteboard: keys "vm", "health", "detail" and, in bad cases, "reason".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import libvirt

VmValue = Literal["up", "down", "down_unexpected", "down_missing", "unknown"]
HealthValue = Literal["good", "bad", "unknown"]
EngineStatus = dict[str, str]

# The original's reason strings, byte for byte.
REASON_NOT_ON_HOST = "vm not running on this host"
REASON_STATS_FAILED = "failed to getVmStats"
REASON_STORAGE_LOCKED = "Storage of VM is locked. Is another host already starting the VM?"
REASON_MIGRATED = "VM migrated away successfully"
REASON_BAD_STATUS = "bad vm status"
REASON_LIVENESS = "failed liveliness check"
# he-ha: the health page answered (any HTTP answer) but not "DB Up": alive, not ready. The
# same text as he_ha.fsm.health.REASON_NOT_READY, which the state machine reads.
REASON_NOT_READY = "engine alive, not ready"

# VDSM status strings ("detail") grouped by the original's result rows.
DOWN_DETAILS = frozenset({"Down", "Migration Destination"})
NOT_READY_DETAILS = frozenset({"Paused", "WaitForLaunch", "Restoring state", "Powering up"})

# libvirt VIR_DOMAIN_EVENT_STOPPED_* detail → the VIR_DOMAIN_SHUTOFF_* reason it leaves.
_STOPPED_EVENT_TO_SHUTOFF: dict[int, int] = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: libvirt.VIR_DOMAIN_SHUTOFF_CRASHED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: libvirt.VIR_DOMAIN_SHUTOFF_SAVED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: libvirt.VIR_DOMAIN_SHUTOFF_FAILED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT,
}


def status(vm: VmValue, health: HealthValue, detail: str, reason: str | None = None) -> EngineStatus:
    """The status object; key order as the original's json.dumps of its dict."""
    result = {"vm": vm, "health": health, "detail": detail}
    if reason is not None:
        result["reason"] = reason
    return result


STATS_FAILED_STATUS = status("unknown", "unknown", "unknown", REASON_STATS_FAILED)


def shutoff_reason_of_stop_event(detail: int) -> int:
    """The shutoff reason a VIR_DOMAIN_EVENT_STOPPED event detail stands for."""
    return _STOPPED_EVENT_TO_SHUTOFF.get(detail, int(libvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN))


def vdsm_detail(state: int, reason: int, *, was_up: bool) -> str:
    """A VDSM-like status string for a libvirt (state, reason) pair.

    ``was_up``: this host saw the VM up before; it tells an outgoing migration (the
    source is paused for the switch-over) from an incoming one (created paused).
    """
    if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
        return "Up"
    if state == libvirt.VIR_DOMAIN_PAUSED:
        if reason in (libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY):
            return "Migration Source" if was_up else "Migration Destination"
        if reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP:
            return "WaitForLaunch"
        if reason == libvirt.VIR_DOMAIN_PAUSED_SAVE:
            return "Saving State"
        if reason == libvirt.VIR_DOMAIN_PAUSED_SHUTTING_DOWN:
            return "Powering down"
        return "Paused"
    if state == libvirt.VIR_DOMAIN_SHUTDOWN:
        return "Powering down"
    if state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED):
        return "Down"
    if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
        return "Paused"
    return "WaitForLaunch"  # VIR_DOMAIN_NOSTATE: the domain exists but has no state yet


@dataclass(frozen=True, slots=True)
class NeedsLiveness:
    """The VM runs; the health page decides the row. ``detail`` is its VDSM status."""

    detail: str


class EngineStatusTracker:
    """Sticky VM state, start-up grace and bad-health confirmation.

    ``grace``: seconds after the VM is first seen running during which a failing health
    page is reported as starting (vm up, health bad, detail "Powering up", reason
    "bad vm status"), not as a failed liveness check. The first good page ends it.
    ``min_failures`` / ``min_bad_time``: once the engine has been healthy, a bad-health
    verdict needs that many consecutive failed page checks spanning at least that many
    seconds; until then the last good verdict stands, so a page failing every other
    time never yields "bad".
    """

    def __init__(self, *, grace: float = 600.0, min_failures: int = 3, min_bad_time: float = 60.0) -> None:
        if grace < 0 or min_bad_time < 0:
            raise ValueError(f"grace and min_bad_time must be >= 0, got {grace!r}, {min_bad_time!r}")
        if min_failures < 1:
            raise ValueError(f"min_failures must be >= 1, got {min_failures!r}")
        self.grace = grace
        self.min_failures = min_failures
        self.min_bad_time = min_bad_time
        self.vm: VmValue = "down"  # the sticky state; the original starts from "down"
        self.up_since: float | None = None
        self.healthy_seen = False
        self.failures = 0
        self.failing_since: float | None = None

    def in_grace(self, now: float) -> bool:
        return not self.healthy_seen and self.up_since is not None and now - self.up_since < self.grace

    def domain_missing(self, *, lock_conflict: bool = False) -> EngineStatus:
        """libvirt has no such domain here (VDSM's NoSuchVM)."""
        self._left_running()
        if lock_conflict:
            return self._down(REASON_STORAGE_LOCKED)
        if self.vm == "up":
            self.vm = "down_missing"
        return status(self.vm, "bad", "unknown", REASON_NOT_ON_HOST)

    def domain_state(
        self, state: int, reason: int, now: float, *, lock_conflict: bool = False, incoming: bool = False
    ) -> EngineStatus | NeedsLiveness:
        """A domain in ``state``/``reason``: a final row, or NeedsLiveness.

        ``incoming``: the domain is the destination of a live migration under way, receiving
        the VM (PAUSED/MIGRATION: libvirt_domain.incoming_migration). It reads "down", detail
        "Migration Destination", as VDSM's destination VM did in the original, although this
        tracker saw it "up" a moment before (its QEMU's start, PAUSED/STARTING_UP, reads
        WaitForLaunch) and would otherwise take it for the source of a migration: the VM runs
        on the source until the switch-over, with the source's lease. The sticky state is not
        turned into an unexpected stop by it."""
        if incoming:
            self._left_running()
            if self.vm == "up":
                self.vm = "down"
            return status(self.vm, "bad", "Migration Destination", REASON_BAD_STATUS)
        detail = vdsm_detail(state, reason, was_up=self.vm == "up")
        if detail in DOWN_DETAILS:
            self._left_running()
            if lock_conflict:
                return self._down(REASON_STORAGE_LOCKED)
            if state == libvirt.VIR_DOMAIN_SHUTOFF and reason == libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED:
                return self._down(REASON_MIGRATED)
            self.vm = "down" if self.vm == "down" else "down_unexpected"
            return status(self.vm, "bad", detail, REASON_BAD_STATUS)
        if self.vm != "up" or self.up_since is None:
            self.up_since = now  # it (re)started: the grace period begins
        self.vm = "up"
        if detail in NOT_READY_DETAILS:
            return status("up", "bad", detail, REASON_BAD_STATUS)
        return NeedsLiveness(detail)

    def liveness(self, detail: str, page_ok: bool, now: float, *, answered: bool = False) -> EngineStatus:
        """The row for a running VM given this round's health page result.

        ``answered``: the page gave an HTTP answer that is not "DB Up" (a 503, "DB Down"):
        the engine is alive but not ready, reported with REASON_NOT_READY so that the state
        machine never stops it for that within its ceiling. Without an answer (timeout,
        connection refused) the engine is silent: the original's reasons."""
        if page_ok:
            self.healthy_seen = True
            self.failures, self.failing_since = 0, None
            return status("up", "good", detail)
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = now
        confirmed = self.failures >= self.min_failures and now - self.failing_since >= self.min_bad_time
        if self.healthy_seen and not confirmed:
            return status("up", "good", detail)  # not yet proven: keep the last verdict
        if self.in_grace(now):
            return status("up", "bad", "Powering up", REASON_NOT_READY if answered else REASON_BAD_STATUS)
        return status("up", "bad", detail, REASON_NOT_READY if answered else REASON_LIVENESS)

    def _down(self, reason: str) -> EngineStatus:
        self.vm = "down"
        return status("down", "bad", "Down", reason)

    def _left_running(self) -> None:
        self.up_since = None
        self.healthy_seen = False
        self.failures, self.failing_since = 0, None
