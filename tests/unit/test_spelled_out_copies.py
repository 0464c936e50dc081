"""The per-tick copies written out field by field instead of ``dataclasses.replace`` (issue 16
item 4: ``replace`` cost ~7 % of a simulated step) must name every field of their dataclass:
a field added later with a default and forgotten there would be reset on every tick, silently."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from he_ha.fsm import FsmState, machine
from he_ha.supervisor.tick_snapshot import StatusSnapshot


@pytest.mark.parametrize(
    ("cls", "function", "passed_on"),
    [
        (StatusSnapshot, StatusSnapshot.with_board, set()),
        # _next_state passes the priority fields on with ** from a TypedDict of their names
        (FsmState, machine._next_state, set(machine._PriorityFields.__annotations__)),
    ],
)
def test_every_field_is_copied(cls: type, function: Callable[..., Any], passed_on: set[str]) -> None:
    source = inspect.getsource(function)
    missing = [
        field.name
        for field in dataclasses.fields(cls)
        if f"{field.name}=" not in source and field.name not in passed_on
    ]
    assert missing == [], f"{function.__qualname__} does not set {missing} of {cls.__name__}"
