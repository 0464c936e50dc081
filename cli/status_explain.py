"""``--explain``: decision records as a readable account. Pure: entries in, text out.

The daemon logs one decision per tick, so a quiet cluster repeats the same decision every
few seconds. Consecutive records with the same transition, rule and note and no VM action
are shown as one decision ("x57"), with the details of the newest of them; ``limit``
counts these merged decisions. That way the few decisions that matter (the start, the
stop, the move) stay in view instead of being pushed out by a screen of identical ticks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cli.status_render import penalty_text, score_summary
from he_ha.fsm import (
    AcquireLeaseAndStartVm,
    Action,
    DecisionRecord,
    DestroyVm,
    EngineHealth,
    MigrateVm,
    Notify,
    PeerRecord,
    Publish,
    ReleaseLease,
    ShutdownVm,
)
from he_ha.fsm.record_codec import CodecError, from_json
from he_ha.fsm.rules import RULES
from he_ha.supervisor.publish import score_view
from he_ha.whiteboard import engine_status_json

INDENT = "    "
FIELD_WIDTH = 13
QUIET_ACTIONS = (Publish, Notify)  # every tick publishes; Notify repeats the transition


class UnreadableDecision(Exception):
    """A record that does not decode as this version's DecisionRecord (names it and why)."""


@dataclass(frozen=True)
class Decision:
    """A run of equal consecutive records: the first's time, the newest's details."""

    entries: tuple[Mapping[str, Any], ...]

    @property
    def first(self) -> Mapping[str, Any]:
        return self.entries[0]

    @property
    def newest(self) -> Mapping[str, Any]:
        return self.entries[-1]


def merge(entries: Sequence[Mapping[str, Any]]) -> list[Decision]:
    """Group consecutive repeats (oldest first, as the daemon returns them)."""
    groups: list[list[Mapping[str, Any]]] = []
    previous: tuple[Any, ...] | None = None
    for entry in entries:
        key = _repeat_key(entry)
        if groups and key is not None and key == previous:
            groups[-1].append(entry)
        else:
            groups.append([entry])
        previous = key
    return [Decision(tuple(group)) for group in groups]


def _repeat_key(entry: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What makes two records "the same decision"; None: never merged (it acted)."""
    record = entry.get("record")
    if not isinstance(record, Mapping):
        return None
    actions = record.get("actions") or []
    quiet = {cls.__name__ for cls in QUIET_ACTIONS}
    if any(not isinstance(a, Mapping) or a.get("type") not in quiet for a in actions):
        return None
    return (record.get("from_state"), record.get("to_state"), record.get("rule"), record.get("note"))


def newest(entries: Sequence[Mapping[str, Any]], limit: int) -> list[Decision]:
    return merge(entries)[-limit:]


def render(decisions: Sequence[Decision]) -> str:
    """Raises UnreadableDecision for a record this version cannot decode."""
    return "\n".join(_render_one(d) for d in decisions)


def raw_entries(decisions: Sequence[Decision]) -> list[Mapping[str, Any]]:
    """The records behind the shown decisions, unchanged (replayable), oldest first."""
    return [entry for decision in decisions for entry in decision.entries]


def _render_one(decision: Decision) -> str:
    try:
        record = from_json(DecisionRecord, decision.newest.get("record"), "record")
    except CodecError as exc:
        raise UnreadableDecision(f"the decision record of {_when(decision.newest)} cannot be read: {exc}") from exc
    header = f"{_when(decision.first)}  {record.from_state} -> {record.to_state}  [{record.rule}]"
    if len(decision.entries) > 1:
        header += f"  x{len(decision.entries)}, the newest at {_when(decision.newest)}"
    lines = [header]
    rule = RULES.get(record.rule)
    lines += _field("why", rule.text if rule is not None else "(rule unknown to this version)")
    if record.note:
        lines += _field("note", record.note)
    lines += _field("woken by", _causes(decision.entries))
    lines += _field("actions", [_action(a) for a in record.actions if not isinstance(a, QUIET_ACTIONS)] or "none")
    lines += _field("score here", _score(record))
    lines += _field("engine here", _health(record.inputs.local_health))
    lines += _cluster(record)
    lines += _situation(record)
    return "\n".join(lines) + "\n"


def _field(name: str, value: str | list[str]) -> list[str]:
    values = [value] if isinstance(value, str) else value
    pad = INDENT + " " * (FIELD_WIDTH + 2)
    return [f"{INDENT}{name:{FIELD_WIDTH}}: {values[0]}"] + [pad + v for v in values[1:]]


def _when(entry: Mapping[str, Any]) -> str:
    meta = entry.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("wall_time"), str):
        return str(meta["wall_time"])
    record = entry.get("record")
    now = record.get("now") if isinstance(record, Mapping) else None
    return f"(monotonic {now})" if isinstance(now, (int, float)) else "(time unknown)"


def _causes(entries: Sequence[Mapping[str, Any]]) -> str:
    """What woke the ticks of these records, each kind once, oldest first."""
    texts: list[str] = []
    for entry in entries:
        meta = entry.get("meta")
        causes = meta.get("causes") if isinstance(meta, Mapping) else None
        for cause in causes if isinstance(causes, list) else ():
            if isinstance(cause, Mapping):
                name, detail = str(cause.get("cause", "?")), str(cause.get("detail") or "")
                texts.append(f"{name} ({detail})" if detail else name)
    return ", ".join(dict.fromkeys(texts)) or "unknown"


def _action(action: Action) -> str:
    if isinstance(action, AcquireLeaseAndStartVm):
        return f"acquire the VM lease, then start the VM here (request {action.seq})"
    if isinstance(action, ShutdownVm):
        return f"ask the guest to shut down, force it off after {action.timeout:g} s (request {action.seq})"
    if isinstance(action, DestroyVm):
        return f"destroy the VM here: {action.reason} (request {action.seq})"
    if isinstance(action, MigrateVm):
        return f"migrate the VM to {action.target_hostname} (id {action.target_host_id}) (request {action.seq})"
    if isinstance(action, ReleaseLease):
        return f"release the VM lease: {action.reason}"
    return type(action).__name__


def _score(record: DecisionRecord) -> list[str]:
    view = score_view(record.score)
    return [score_summary(view)] + [f"- {penalty_text(p)}" for p in view.penalties]


def _health(health: EngineHealth | None) -> str:
    return "no reading yet" if health is None else engine_status_json(health.to_mapping())


def _peer(peer: PeerRecord) -> str:
    return f"{_name(peer)}: score {peer.score}, {_health(peer.engine_status)}"


def _name(peer: PeerRecord) -> str:
    return f"{peer.hostname or '?'} (id {peer.host_id})"


def _cluster(record: DecisionRecord) -> list[str]:
    cluster = record.inputs.cluster
    lines: list[str] = []
    if cluster.best_engine_host == record.host_id:
        lines += _field("best engine", "this host")
    else:
        names = {p.host_id: _name(p) for p in cluster.alive}
        where = names.get(cluster.best_engine_host, f"host id {cluster.best_engine_host}")
        lines += _field("best engine", f"{where}: {_health(cluster.best_engine)}")
    best = cluster.best_score_host
    best_text = f"{_name(best)}, score {best.score}" if best is not None else "none (no live peer scores above 0)"
    lines += _field("best peer", best_text)
    lines += _field("live peers", [_peer(p) for p in cluster.alive] or "none")
    others = [
        f"{what}: {', '.join(str(i) for i in ids)}"
        for what, ids in (
            ("silent (sanlock live, whiteboard not updated)", cluster.silent),
            ("fenced (sanlock dead)", cluster.fenced),
            ("unreadable slot", cluster.unreadable),
            ("newer metadata version", cluster.too_new),
        )
        if ids
    ]
    if others:
        lines += _field("other hosts", others)
    if not cluster.mature:
        lines += _field("view", "too young to judge liveness: no peer counts as alive yet")
    elif cluster.stale:
        age = "never read" if cluster.view_age is None else f"{cluster.view_age:.1f} s old"
        lines += _field("view", f"stale whiteboard ({age})")
    return lines


def _situation(record: DecisionRecord) -> list[str]:
    inputs = record.inputs
    lines: list[str] = []
    if inputs.lease_held_here:
        lease = "held by this host"
    elif inputs.lease_owner is not None:
        lease = f"held by host id {inputs.lease_owner}"
    elif inputs.lease_held_here is None:
        lease = "unknown (sanlock did not answer)"
    else:
        lease = "free"
    lines += _field("VM lease", lease)
    modes = [name for name, on in (("global", inputs.global_maintenance), ("local", inputs.local_maintenance)) if on]
    if modes:
        lines += _field("maintenance", " and ".join(modes))
    if inputs.storage_ok is not True:
        lines += _field("storage", "not usable here" if inputs.storage_ok is False else "state unknown")
    if inputs.result is not None:
        result = inputs.result
        reason = f" ({result.reason})" if result.reason else ""
        lines += _field("result", f"request {result.seq}: {result.outcome.value}{reason}")
    if inputs.start_failures:
        lines += _field("failed starts", f"{inputs.start_failures} inside the retry window")
    return lines
