"""JSON encoding of FSM values and replay of decision-log entries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from he_ha.fsm import (
    CodecError,
    FsmState,
    LeaseStatus,
    Observation,
    Outcome,
    PeerFault,
    SanlockHost,
    from_json,
    log_entry,
    replay,
    replay_matches,
    step,
    to_json,
)
from he_ha.fsm import StateName as S
from he_ha.fsm.decision import DecisionRecord
from tests.unit.fsm.builders import DOWN, POWERING_UP, T0, UP_GOOD, obs, peer, pending, result, state_in


def _roundtrip(tp: type, value: object) -> object:
    return from_json(tp, json.loads(json.dumps(to_json(value))))


def _samples() -> list[tuple[FsmState, Observation]]:
    faulty = (peer(2), PeerFault(3, "too_new", "x1"), PeerFault(4, "corrupt", "y"))
    return [
        (state_in(S.ENGINE_DOWN, peers=faulty, start_failures=(T0 - 3.25,)), obs(DOWN, peers=faulty)),
        (
            state_in(S.ENGINE_START, pending=pending("start")),
            obs(POWERING_UP, result=result(Outcome.OK), lease=LeaseStatus(1, True), sanlock={2: SanlockHost.LIVE}),
        ),
        (state_in(S.ENGINE_UP, outranked_since=T0 - 1 / 3), obs(UP_GOOD, network=0.0, cpu_load=0.123456789)),
        (state_in(S.ENGINE_UP), obs(UP_GOOD, local_maintenance=True)),
        (state_in(S.REINITIALIZE), obs(None, peers=None)),
    ]


@pytest.mark.parametrize("index", range(len(_samples())))
def test_state_observation_and_record_roundtrip(index: int) -> None:
    state, observation = _samples()[index]
    assert _roundtrip(FsmState, state) == state
    assert _roundtrip(Observation, observation) == observation
    record = step(state, observation)[2]
    assert _roundtrip(DecisionRecord, record) == record


@pytest.mark.parametrize("index", range(len(_samples())))
def test_replay_reproduces_the_record(index: int) -> None:
    state, observation = _samples()[index]
    record = step(state, observation)[2]
    entry = json.loads(json.dumps(log_entry(state, observation, record)))
    assert replay_matches(entry)
    assert replay(entry) == record


def test_replay_detects_a_different_record() -> None:
    state, observation = _samples()[0]
    entry = json.loads(json.dumps(log_entry(state, observation, step(state, observation)[2])))
    entry["record"]["rule"] = "down.better-host"
    assert not replay_matches(entry)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.update(now="soon"), "now: expected float"),
        (lambda o: o["local"].update(network=True), "local.network"),
        (lambda o: o.update(colour="red"), "unknown field(s) for Observation: colour"),
        (lambda o: o.pop("local"), "missing field 'local'"),
        (lambda o: o["whiteboard"]["peers"][0].update(type="Nonsense"), "whiteboard.peers[0]"),
        (lambda o: o["local"]["engine_health"].update(vm=3), "local.engine_health.vm"),
    ],
)
def test_bad_input_names_the_path(mutate: Callable[[Any], object], message: str) -> None:
    data = to_json(obs(DOWN))
    mutate(data)
    with pytest.raises(CodecError, match=re.escape(message)):
        from_json(Observation, data)


def test_bad_enum_and_bad_state_config() -> None:
    data = to_json(state_in(S.ENGINE_DOWN))
    data["name"] = "EngineSideways"
    with pytest.raises(CodecError, match="name: not a valid StateName"):
        from_json(FsmState, data)
    data = to_json(state_in(S.ENGINE_DOWN))
    data["config"]["timing"]["liveness"] = -1.0
    with pytest.raises(CodecError, match=re.escape("config.timing: invalid TimingConfig")):
        from_json(FsmState, data)
    data = to_json(state_in(S.ENGINE_DOWN))
    data["config"]["score"]["base_score"] = -5
    with pytest.raises(CodecError, match=re.escape("config.score: invalid ScoreConfig")):
        from_json(FsmState, data)


def test_replay_entry_without_inputs() -> None:
    with pytest.raises(CodecError, match="no 'observation'"):
        replay({"state": {}})
