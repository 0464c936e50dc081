"""What a transition is, and the registry of them all by id.

A ``Rule`` is one transition: a stable id, the states it may fire in, the state it leads to
and a text. Each state's rules are declared in that state's module under
``he_ha/fsm/transitions/``, right beside the condition that picks them; ``rule()`` records
each one here once. ``he_ha.fsm`` imports ``step``, which imports every state's module, so
``RULES`` is complete as soon as any ``he_ha.fsm`` module is imported. The state diagram is
drawn from ``RULES``, and tests check every decision against it.

Guards are the original's decorators (spec §3.5): checks that run before a state's own
logic, outermost first; he_ha/fsm/transitions/guards.py gives each state's guards in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from he_ha.fsm.states import StateName as S

DECISION_STATES = frozenset(s for s in S if s is not S.AGENT_STOPPED)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    sources: frozenset[S]
    dest: S | None  # None: stay in the current state
    nowait: bool  # tick again at once (the original's NOWAIT)
    text: str

    def target(self, current: S) -> S:
        return current if self.dest is None else self.dest


RULES: dict[str, Rule] = {}


def rule(rule_id: str, sources: frozenset[S] | set[S], dest: S | None, text: str, *, nowait: bool = False) -> Rule:
    """Declare a rule: it is recorded in ``RULES`` (an id is declared once)."""
    if rule_id in RULES:
        raise ValueError(f"duplicate rule id {rule_id!r}")
    declared = Rule(rule_id, frozenset(sources), dest, nowait, text)
    RULES[rule_id] = declared
    return declared


class GuardKind(StrEnum):
    TIMEOUT = "timeout"
    GLOBAL = "global"  # global maintenance flag set
    LOCAL = "local"  # local maintenance flag set and no VM running here (see docs/fsm.md)
    VM_UNKNOWN = "vm-unknown"  # local engine health says vm "unknown"


@dataclass(frozen=True, slots=True)
class Guard:
    kind: GuardKind
    dest: S | None  # None: hold the current state
    timeout: str | None = None  # TimingConfig attribute holding the timeout
    # The timer counts engine silence only: it restarts whenever the local engine shows life
    # (healthy or answering but not ready), so slow is never taken for dead (issue 14).
    silence: bool = False


def guard_rule_id(state: S, guard: Guard) -> str:
    if guard.kind is GuardKind.TIMEOUT:
        return f"timeout.{state.value}"
    return f"guard.{guard.kind.value}" + (".hold" if guard.dest is None else "")


def guard_rule(state: S, guard: Guard) -> Rule:
    return RULES[guard_rule_id(state, guard)]
