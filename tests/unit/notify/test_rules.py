from __future__ import annotations

import pytest

from he_ha.config import NotifyConfig
from he_ha.notify.mail_rules import RuleError, TransitionRule, describe_transitions, transition_detail


def test_default_rule_matches_the_usual_transitions() -> None:
    rule = TransitionRule(NotifyConfig().state_transition)
    assert rule.matches("EngineDown-EngineStart")
    assert rule.matches("EngineUp-LocalMaintenance")


@pytest.mark.parametrize(
    ("pattern", "detail", "expected"),
    [
        ("maintenance", "EngineUp-LocalMaintenance", True),
        ("maintenance", "EngineUp-EngineStop", False),
        ("ENGINEUP", "EngineStarting-EngineUp", True),  # upper-case rule, mixed-case detail
        ("engineup", "EngineStarting-EngineUp", True),
        ("[A-Z]+down$", "EngineUp-EngineDown", True),
        ("^enginedown-", "EngineUp-EngineDown", False),  # a search, so anchors still anchor
        ("up-", "EngineUp-EngineDown", True),  # unanchored search inside the detail
    ],
)
def test_rule_is_a_case_insensitive_search(pattern: str, detail: str, expected: bool) -> None:
    assert TransitionRule(pattern).matches(detail) is expected


def test_escape_classes_keep_their_meaning() -> None:
    # The original lower-cased the pattern, turning \D (non-digit) into \d (digit).
    assert TransitionRule(r"^\D+-\D+$").matches("EngineUp-EngineDown")


def test_empty_rule_disables_mail() -> None:
    rule = TransitionRule("  ")
    assert rule.disabled
    assert not rule.matches("EngineUp-EngineDown")


def test_invalid_rule_is_a_typed_error() -> None:
    with pytest.raises(RuleError, match=r"state_transition='up\(' is not a valid regular expression"):
        TransitionRule("up(")


def test_details() -> None:
    assert transition_detail("EngineDown", "EngineStart") == "EngineDown-EngineStart"
    assert describe_transitions([("A", "B")]) == "A-B"
    assert describe_transitions([("A", "B"), ("B", "C"), ("C", "D")]) == "A-B-C-D"
    assert describe_transitions([("A", "B"), ("X", "Y"), ("Y", "Z"), ("A", "B")]) == "A-B, X-Y-Z, A-B"
