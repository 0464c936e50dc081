"""Engine health as published in the whiteboard (spec §5.8) and its ranking (spec §3.4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

VM_UP = "up"
VM_DOWN = "down"
VM_DOWN_UNEXPECTED = "down_unexpected"
VM_DOWN_MISSING = "down_missing"
VM_UNKNOWN = "unknown"
DOWN_STATES = frozenset({VM_DOWN, VM_DOWN_UNEXPECTED, VM_DOWN_MISSING})

HEALTH_GOOD = "good"
HEALTH_BAD = "bad"
HEALTH_UNKNOWN = "unknown"

DETAIL_PAUSED = "Paused"
# VDSM's status of the receiving end of a live migration (our engine-health monitor reads an
# incoming libvirt domain so): vm "down" although the VM is arriving here, with its lease.
DETAIL_MIGRATION_DESTINATION = "Migration Destination"
# The engine-health monitor's reason for a start that lost the lease race (spec §5.8).
REASON_LOCKED = "Storage of VM is locked. Is another host already starting the VM?"
# he-ha's reason for an engine whose health page answers (any HTTP answer: "DB Down", a 503)
# without saying "DB Up": alive but not ready (a long start, a database upgrade). Published
# in the original's free-text "reason" field, so the original's readers, which rank by vm,
# health and detail only, see an ordinary bad-health row (docs/monitors.md).
REASON_NOT_READY = "engine alive, not ready"

# Engine liveness, three-valued (issue 14 item 1), for a VM that runs here:
LIVENESS_HEALTHY = "healthy"  # the health page says "DB Up"
LIVENESS_NOT_READY = "not-ready"  # the page answers, but not "DB Up": slow is not dead
LIVENESS_SILENT = "silent"  # no answer at all (timeout, refused), or the VM is not running


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """``{"vm", "health", "detail"[, "reason"]}`` of one host."""

    vm: str
    health: str
    detail: str
    reason: str | None = None

    @classmethod
    def from_mapping(cls, data: object) -> EngineHealth:
        """A peer's decoded engine-status; anything unusable becomes 'unknown', never an error.

        Peers are other programs: the original crashed on vocabulary it did not know
        (spec §3.4); we rank such a record as unknown instead.
        """
        if not isinstance(data, Mapping):
            return UNREADABLE_HEALTH
        values = {key: data.get(key) for key in ("vm", "health", "detail", "reason")}
        if not all(isinstance(values[key], str) for key in ("vm", "health", "detail")):
            return UNREADABLE_HEALTH
        reason = values["reason"]
        return cls(
            vm=str(values["vm"]),
            health=str(values["health"]),
            detail=str(values["detail"]),
            reason=reason if isinstance(reason, str) else None,
        )

    def to_mapping(self) -> dict[str, str]:
        """The whiteboard's key order: vm, health, detail, then reason only when present."""
        out = {"vm": self.vm, "health": self.health, "detail": self.detail}
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @property
    def rank(self) -> int:
        """0 unknown, 1 down, 2 paused, 3 bad health, 4 good health (spec §3.4)."""
        if self.vm in DOWN_STATES:
            return 1
        if self.vm != VM_UP:
            return 0  # "unknown" and any vocabulary we do not know
        if self.detail == DETAIL_PAUSED:
            return 2
        return 4 if self.health == HEALTH_GOOD else 3

    @property
    def running(self) -> bool:
        return self.vm == VM_UP

    @property
    def liveness(self) -> str | None:
        """healthy / not-ready / silent for a running VM (LIVENESS_*); None when it does not run.

        Read from the published vocabulary: good health is healthy, the not-ready reason is
        not-ready, any other bad row of a running VM (failed liveliness check, powering up
        without an answer, paused) is silent."""
        if self.vm != VM_UP:
            return None
        if self.health == HEALTH_GOOD:
            return LIVENESS_HEALTHY
        return LIVENESS_NOT_READY if self.reason == REASON_NOT_READY else LIVENESS_SILENT

    @property
    def alive(self) -> bool:
        """The engine shows life: healthy, or answering but not ready."""
        return self.liveness in (LIVENESS_HEALTHY, LIVENESS_NOT_READY)

    @property
    def gone(self) -> bool:
        """The VM is confirmed not running here (not merely unknown)."""
        return self.vm in DOWN_STATES

    @property
    def unknown(self) -> bool:
        return self.vm == VM_UNKNOWN


UNREADABLE_HEALTH = EngineHealth(VM_UNKNOWN, HEALTH_UNKNOWN, "serialization error")
NO_READING_HEALTH = EngineHealth(VM_UNKNOWN, HEALTH_UNKNOWN, "unknown", "no engine-health reading yet")


def rank_of(health: EngineHealth | None) -> int:
    """Rank of a possibly missing reading: a monitor without a value yet ranks as unknown (B14)."""
    return 0 if health is None else health.rank
