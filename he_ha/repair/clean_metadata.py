"""Clear metadata slots (``hosted-engine --clean-metadata``), only where nobody is alive.

Two ways to pick the slots: by host id (default: this host's), or every slot that does not
decode (corrupt, too new, leftover bytes: what the seeds' ``dd if=/dev/zero`` procedure
wiped, without wiping the healthy ones). Storage is watched first (he_ha.provision.liveness),
so this works with every daemon down. Refused, unless forced, when a target host renews its
delta lease, when its slot changes during the window, or when the target is this host's own
slot and the local he-ha daemon answers (it would publish it again at once).

Only all-zero 4096-byte writes of the target slots are ever made, each O_DIRECT, and only
after re-reading storage shows the slot still holds what was observed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from he_ha.provision import AreaIo, SlotSeen, StorageWatch, all_zero, observe
from he_ha.whiteboard import SLOT_BYTES

log = structlog.get_logger(__name__)


class CleanAborted(Exception):
    """Storage changed between the observation and the write: nothing more was cleared."""


@dataclass(frozen=True)
class CleanTarget:
    index: int  # host id; 0 = the global block
    hostname: str | None
    last_ts: int | None
    problem: str | None  # why the slot does not decode
    expected: bytes  # what the observation read last

    def describe(self, noun: str = "metadata slot") -> str:
        """``the metadata slot of host 4 (hostname h4, last timestamp 77)``, ``the global block, slot 0 (...)``."""
        who = "the global block, slot 0" if self.index == 0 else f"the {noun} of host {self.index}"
        details = [f"hostname {self.hostname}"] if self.hostname else []
        details += [f"last timestamp {self.last_ts}"] if self.last_ts is not None else []
        details += [f"unreadable: {self.problem}"] if self.problem else []
        return f"{who} ({', '.join(details)})" if details else who


@dataclass
class CleanPlan:
    observation: StorageWatch
    targets: list[CleanTarget] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # overridden by --force-cleanup
    notes: list[str] = field(default_factory=list)
    empty: list[int] = field(default_factory=list)  # asked-for host ids whose slot is empty already


async def plan_clean(
    io: AreaIo,
    *,
    lockspace: Path,
    metadata: Path,
    host_ids: Sequence[int] | None,
    own_host_id: int | None,
    local_daemon: str | None,
    window: float | None = None,
    announce: Callable[[float], None] | None = None,
) -> CleanPlan:
    """Plan the clean of ``host_ids`` (None: every slot that does not decode). ``local_daemon``
    describes the local he-ha daemon when it answers (None: it does not); it guards the
    slot of ``own_host_id``. Nothing is written."""
    interest = None if host_ids is None else list(host_ids)
    seen = await observe(io, lockspace, metadata, window=window, interest=interest, announce=announce)
    plan = CleanPlan(seen)
    if host_ids is None:
        slots = [slot for slot in seen.slots.values() if slot.problem is not None]
    else:
        slots = [seen.slots[i] for i in host_ids if i in seen.slots]
        plan.empty = [i for i in host_ids if i not in seen.slots]
    plan.targets = [_target(seen, slot) for slot in sorted(slots, key=lambda s: s.index)]
    for target in plan.targets:
        plan.refusals += _refusals(seen, target.index, own_host_id, local_daemon)
        plan.notes += seen.notes(target.index)
    if seen.lockspace_problem is not None:
        if seen.lockspace_read_failed:
            plan.refusals.append(f"cannot tell which hosts are alive in the lockspace: {seen.lockspace_problem}")
        else:
            plan.notes.append(f"{seen.lockspace_problem}: no host can hold a host id there")
    return plan


def _target(seen: StorageWatch, slot: SlotSeen) -> CleanTarget:
    hostname = slot.hostname or (seen.leases[slot.index].host_name if slot.index in seen.leases else None)
    return CleanTarget(slot.index, hostname, slot.last_ts, slot.problem, slot.last_bytes)


def _refusals(seen: StorageWatch, index: int, own_host_id: int | None, local_daemon: str | None) -> list[str]:
    if index == 0:
        slot = seen.slots[0]
        return (
            [f"the global block (slot 0) changed during the {seen.seconds:.1f} s observed: something writes it"]
            if slot.changed
            else []
        )
    reasons = seen.alive_evidence(index)
    if index == own_host_id and local_daemon is not None:
        reasons.append(
            f"{seen.name(index)} is this host and {local_daemon}: it would publish the slot again (stop it first)"
        )
    return reasons


async def apply_clean(io: AreaIo, metadata: Path, plan: CleanPlan, report: Callable[[CleanTarget], None]) -> None:
    """Zero each target slot after checking storage still holds what was observed, then
    read it back. ``report`` is called for each slot before it is written."""
    if not plan.targets:
        return
    end = (max(t.index for t in plan.targets) + 1) * SLOT_BYTES
    current = await io.read(metadata, end)
    for target in plan.targets:
        now = current[target.index * SLOT_BYTES : (target.index + 1) * SLOT_BYTES]
        if now != target.expected:
            raise CleanAborted(
                f"{target.describe()} changed after it was observed: a host wrote it; nothing was cleared from here on"
            )
    for target in plan.targets:
        report(target)
        log.info("clearing metadata slot", slot=target.index, hostname=target.hostname, path=str(metadata))
        await io.write(metadata, target.index * SLOT_BYTES, bytes(SLOT_BYTES))
    after = await io.read(metadata, end)
    for target in plan.targets:
        if not all_zero(after[target.index * SLOT_BYTES : (target.index + 1) * SLOT_BYTES]):
            raise CleanAborted(f"read back: {target.describe()} is not all zero after the write")
