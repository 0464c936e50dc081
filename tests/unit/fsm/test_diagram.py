"""The checked-in state diagram is exactly what the rule table generates."""

from __future__ import annotations

from pathlib import Path

from he_ha.fsm.diagram import render
from he_ha.fsm.rules import RULES
from he_ha.fsm.states import StateName

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_checked_in_diagram_is_generated_from_the_code() -> None:
    checked_in = (DOCS / "state-diagram.dot").read_text(encoding="utf-8")
    assert checked_in == render(), "regenerate: python -m he_ha.fsm.diagram > docs/state-diagram.dot"


def test_diagram_shows_every_state_and_every_moving_rule() -> None:
    text = render()
    assert all(f'"{state.value}";' in text for state in StateName)
    moving = [rule.id for rule in RULES.values() if rule.dest is not None and rule.sources != {rule.dest}]
    missing = [rule_id for rule_id in moving if rule_id not in text]
    assert missing == []


def test_docs_name_every_rule() -> None:
    text = (DOCS / "fsm.md").read_text(encoding="utf-8")
    missing = [
        r for r in RULES if f"`{r}`" not in text and not (r.startswith("timeout.") and "`timeout.<State>`" in text)
    ]
    assert missing == []
