"""Each transition's id, condition and target in one place (issue 15 item 2): every rule is
declared in the module that picks it, and every decision state has its logic."""

from __future__ import annotations

import pkgutil
from importlib import import_module
from types import ModuleType

from he_ha.fsm import machine, transitions
from he_ha.fsm.rules import DECISION_STATES, RULES, Rule
from he_ha.fsm.transitions import STATE_LOGIC


def _modules() -> list[ModuleType]:
    found = [import_module(f"{transitions.__name__}.{m.name}") for m in pkgutil.iter_modules(transitions.__path__)]
    return [*found, machine]


def _declared_in() -> dict[str, list[str]]:
    """Rule id → the modules that bind it to a module-level name (declared or imported)."""
    where: dict[str, list[str]] = {}
    for module in _modules():
        for value in vars(module).values():
            if isinstance(value, Rule) and module.__name__ not in where.get(value.id, []):
                where.setdefault(value.id, []).append(module.__name__)
    return where


def test_every_rule_is_declared_in_the_module_that_picks_it() -> None:
    where = _declared_in()
    # The guard and timeout rules are made from guards.py's STATE_GUARDS table, beside their check.
    generated = [r for r in RULES if r.startswith(("guard.", "timeout."))]
    assert generated and all(r not in where for r in generated)
    assert sorted(r for r in RULES if r not in where and r not in generated) == []


def test_every_decision_state_has_its_logic() -> None:
    assert set(STATE_LOGIC) == DECISION_STATES
