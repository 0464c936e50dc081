"""What one tick of the supervisor hands to ``step``: plain immutable values, no I/O handles.

Times are this host's monotonic seconds (floats). They are only ever compared with other
times of the same host: hosts' clocks are never compared with each other (spec §2.10).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from he_ha.fsm.health import EngineHealth


@dataclass(frozen=True, slots=True)
class LocalReadings:
    """The local monitors' latest values. ``None`` means "no value": each field documents
    how it counts; an unknown reading never counts as healthy where that could start a VM."""

    network: float | None = 1.0  # fraction of successful probes; None -> 0.0 (full penalty)
    bridge_up: bool | None = True  # None -> down (penalty): the original read None as up (B3)
    free_memory_mib: float | None = None  # None -> 0 MiB, as the original
    cpu_load: float | None = None  # windowed non-engine load 0..1; None -> no penalty (no data)
    # None -> no reading yet (start-up, B14). An incoming migration must read "down" (as
    # the original's monitor did), never "up": see the foreign-lease rule.
    engine_health: EngineHealth | None = None
    storage_ok: bool | None = True  # storage-domain monitor; None/False -> never start here
    local_maintenance: bool = False  # ha.conf local_maintenance OR local_maintenance_manual
    vm_memory_mib: int | None = None  # vm.conf memSize; None -> memory rule not applied
    conf_up_to_date: bool = True  # hosted-engine.conf on the post-3.6 layout (spec §6.7)


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A peer's parsed whiteboard slot."""

    host_id: int
    host_ts: int  # the peer's own monotonic seconds: only compared with itself
    score: int
    engine_status: EngineHealth  # EngineHealth.from_mapping of the decoded JSON
    hostname: str = ""
    maintenance: bool = False
    stopped: bool = False
    # Host priority (issue 14), from the slot's extra text (``priority=<n>``); peers that do
    # not publish one (the original's agents, older he-ha) have the default, 0.
    priority: int = 0


@dataclass(frozen=True, slots=True)
class PeerFault:
    """A peer slot that could not be used: corrupt, or written by a newer metadata version.

    ``fingerprint`` must change whenever the slot's bytes change (e.g. a crc32 of the raw
    slot): a live writer changes its timestamp at every publish, so this gives liveness
    for slots we cannot parse.
    """

    host_id: int
    kind: Literal["corrupt", "too_new"]
    fingerprint: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class WhiteboardView:
    """One successful read of the whole whiteboard."""

    read_at: float  # local monotonic time at which the read completed
    peers: tuple[PeerRecord | PeerFault, ...]  # every used slot except our own
    global_maintenance: bool | None  # slot 0; None when slot 0 is unreadable


class SanlockHost(StrEnum):
    """sanlock's view of a host id in the lockspace (``get_hosts`` flags)."""

    LIVE = "live"
    FAIL = "fail"  # renewals failing, not yet dead
    DEAD = "dead"  # host_dead_seconds past its last renewal: fenced
    FREE = "free"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """The VM resource lease as sanlock reports it (``read_resource_owners`` + ``get_hosts``).

    ``owner`` is the host id recorded as owner, or None when the lease is free. Report None
    too when the recorded owner's generation is older than that host's current lockspace
    generation: it has rejoined since, so its old lease is void and sanlock grants it.
    """

    owner: int | None
    held_here: bool  # this host (its VM or lease keeper) holds it now


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    LEASE_BUSY = "lease-busy"  # acquire refused: another host holds the VM lease (-243)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The executor's report for the action that carried sequence number ``seq``."""

    seq: int
    outcome: Outcome
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """One tick's inputs. ``local.engine_health`` must be read after executing the action
    whose result is in ``result``: a start reported OK is followed by a VM that is seen."""

    now: float  # local monotonic seconds
    local: LocalReadings
    whiteboard: WhiteboardView | None  # None: this tick's read failed; the FSM keeps the last one
    sanlock_hosts: tuple[tuple[int, SanlockHost], ...] | None = None  # None: not available
    lease: LeaseStatus | None = None  # None: not available
    result: ActionResult | None = None  # the latest action result not yet reported
