"""What ``step`` asks the supervisor to do. Every action is a value; the executor reports
the outcome of the VM actions as an ``ActionResult`` carrying the same ``seq``."""

from __future__ import annotations

from dataclasses import dataclass

from he_ha.fsm.health import EngineHealth


@dataclass(frozen=True, slots=True)
class AcquireLeaseAndStartVm:
    """Acquire the VM lease, and only if that succeeded launch the VM (safety invariant 1).

    One action on purpose: there is no way to ask for a launch without the lease. The
    executor reports OK, FAILED (with the reason) or LEASE_BUSY (held by another host).
    """

    seq: int


@dataclass(frozen=True, slots=True)
class ShutdownVm:
    """Ask the guest to shut down; OK means the request was accepted. The FSM watches the
    VM state and escalates to DestroyVm after the stop timeout."""

    seq: int
    timeout: float


@dataclass(frozen=True, slots=True)
class DestroyVm:
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class MigrateVm:
    """Live-migrate the running VM to ``target_host_id`` (local maintenance, yield, failback).

    ``deadline``: seconds the migration may take before the hypervisor's job is aborted and
    the action fails. The FSM sets it inside its own ``migrate_timeout`` so that the migration
    is over, one way or the other, before the state's timer gives up on it (no migration may
    still be running when the cold path shuts the VM down)."""

    seq: int
    target_host_id: int
    target_hostname: str
    # The default timings' value; decision records written before the field existed decode with it.
    deadline: float = 290.0


@dataclass(frozen=True, slots=True)
class ReleaseLease:
    """Release the VM lease held here. Emitted only while the local VM is confirmed gone
    (safety invariant 2); the executor must re-check that no VM process remains."""

    reason: str


@dataclass(frozen=True, slots=True)
class PublishedRecord:
    """What goes into our whiteboard slot this tick."""

    host_ts: int  # int(now): changes between publishes, which is how peers see us alive
    state: str
    score: int
    engine_status: EngineHealth
    maintenance: bool
    stopped: bool
    timeout_at: float | None  # local monotonic time when the current state's timer fires
    priority: int = 0  # this host's priority (issue 14): published in the slot's extra text


@dataclass(frozen=True, slots=True)
class Publish:
    record: PublishedRecord


@dataclass(frozen=True, slots=True)
class Notify:
    """A state change, ``"Old-New"`` as the original's ``state_transition`` detail; or, with
    ``alert`` set, an alert being raised (he_ha.fsm.alerts: its kind, and the reason), which
    is mailed whatever the state_transition rule selects."""

    transition: str = ""
    alert: str | None = None
    reason: str = ""


Action = AcquireLeaseAndStartVm | ShutdownVm | DestroyVm | MigrateVm | ReleaseLease | Publish | Notify
VM_ACTIONS = (AcquireLeaseAndStartVm, ShutdownVm, DestroyVm, MigrateVm)
