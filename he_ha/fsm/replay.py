"""Decision-log entries and their replay: ``step`` is pure, so the recorded state and
observation reproduce the recorded decision exactly ("why did the VM move at 10:42?")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from he_ha.fsm.decision import DecisionRecord
from he_ha.fsm.machine import FsmState, step
from he_ha.fsm.observation import Observation
from he_ha.fsm.record_codec import CodecError, from_json, to_json


def log_entry(state: FsmState, observation: Observation, record: DecisionRecord) -> dict[str, Any]:
    """One JSON-serialisable decision-log entry: the inputs of ``step`` and its record."""
    return {"state": to_json(state), "observation": to_json(observation), "record": to_json(record)}


def replay(entry: Mapping[str, Any]) -> DecisionRecord:
    """Run ``step`` again on a logged entry's state and observation."""
    for key in ("state", "observation"):
        if key not in entry:
            raise CodecError("", f"decision-log entry has no {key!r}")
    state = from_json(FsmState, entry["state"], "state")
    observation = from_json(Observation, entry["observation"], "observation")
    return step(state, observation)[2]


def replay_matches(entry: Mapping[str, Any]) -> bool:
    """True when replaying the entry reproduces its recorded decision, field for field."""
    if "record" not in entry:
        raise CodecError("", "decision-log entry has no 'record'")
    return to_json(replay(entry)) == entry["record"]
