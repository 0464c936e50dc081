"""The state machine's ``PublishedRecord`` as our whiteboard slot, and back for peers' slots.

The header is the original's 12 fields. The extra text is the original's lines
(``format_extra``) plus two he-ha lines: ``priority=<n>``, this host's priority (issue 14;
peers' state machines read it), and ``score_breakdown=<JSON>``: base, penalties with their
reasons, and the override. Old agents ignore extra lines (they never parse the extra text);
he-ha's status shows a peer's breakdown from it. Monotonic times become wall-clock text here
(fixing B12).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass

from he_ha.admin.contract import PenaltyView, ScoreView
from he_ha.fsm import EngineHealth, PublishedRecord, ScoreBreakdown
from he_ha.whiteboard import BLOCK_BYTES, SLOT_BYTES, HostSlot, engine_status_json, format_extra, priority_line

BREAKDOWN_KEY = "score_breakdown"
EXTRA_BYTES = SLOT_BYTES - BLOCK_BYTES
REASON_CHARS = 80  # each penalty's reason is cut to this, so the slot never overflows


@dataclass(frozen=True)
class SlotContext:
    """What the slot needs besides the FSM's record."""

    host_id: int
    hostname: str
    conf_on_shared_storage: bool
    conf_loaded_at: float  # monotonic time vm.conf was last read (published as its refresh time)
    conf_loaded_epoch: float  # wall - monotonic when it was read


def score_view(score: ScoreBreakdown) -> ScoreView:
    return ScoreView(
        base=score.base,
        penalties=[PenaltyView(name=p.name, amount=p.amount, reason=p.reason) for p in score.penalties],
        override=score.override,
        total=score.total,
    )


@functools.lru_cache(maxsize=64)
def breakdown_line(score: ScoreBreakdown) -> str:
    data = {
        "base": score.base,
        "penalties": [[p.name, p.amount, p.reason[:REASON_CHARS]] for p in score.penalties],
        "override": score.override[:REASON_CHARS] if score.override else None,
    }
    return f"{BREAKDOWN_KEY}={json.dumps(data, separators=(',', ':'))}\n"


def build_slot(
    record: PublishedRecord, score: ScoreBreakdown, ctx: SlotContext, *, now_epoch: float | None = None
) -> HostSlot:
    """``now_epoch``: wall - monotonic now (default: read the clocks)."""
    epoch = time.time() - time.monotonic() if now_epoch is None else now_epoch
    status = _status_text(record.engine_status)

    # The slot is made twice, first without its extra text (format_extra reads its header
    # fields); one field list for both, and no dataclasses.replace on the tick's path.
    def slot_with(extra: str) -> HostSlot:
        return HostSlot(
            host_id=ctx.host_id,
            host_ts=record.host_ts,
            score=record.score,
            engine_status=status,
            hostname=ctx.hostname,
            maintenance=record.maintenance,
            stopped=record.stopped,
            conf_on_shared_storage=ctx.conf_on_shared_storage,
            local_conf_timestamp=int(ctx.conf_loaded_at),
            extra=extra,
        )

    extra = format_extra(
        slot_with(""),
        state=record.state,
        time_epoch=int(epoch),
        refresh_epoch=int(ctx.conf_loaded_epoch),
        timeout_at=None if record.timeout_at is None else record.timeout_at + epoch,
    )
    extra += priority_line(record.priority)
    extra += breakdown_line(score)
    if len(extra.encode()) > EXTRA_BYTES:  # cannot happen with the cut reasons; never overflow anyway
        extra = extra[: extra.rindex("\n", 0, EXTRA_BYTES) + 1]
    return slot_with(extra)


@functools.lru_cache(maxsize=64)
def _status_text(health: EngineHealth) -> str:
    """The header's engine-status text of ``health`` (pure; cached: a host publishes the same
    few values tick after tick)."""
    return engine_status_json(health.to_mapping())


@dataclass(frozen=True)
class ExtraInfo:
    state: str | None
    breakdown: ScoreView | None


def parse_extra(extra: str, score: int | None) -> ExtraInfo:
    """The FSM state and, from he-ha peers, the score breakdown (anything odd: None)."""
    state: str | None = None
    breakdown: ScoreView | None = None
    for line in extra.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "state":
            state = value
        elif key == BREAKDOWN_KEY and score is not None:
            breakdown = _breakdown(value, score)
    return ExtraInfo(state, breakdown)


def _breakdown(text: str, total: int) -> ScoreView | None:
    try:
        data = json.loads(text)
        penalties = [PenaltyView(name=str(n), amount=int(a), reason=str(r)) for n, a, r in data["penalties"]]
        override = data.get("override")
        return ScoreView(base=int(data["base"]), penalties=penalties, override=override, total=total)
    except (ValueError, KeyError, TypeError):
        return None
