"""Which state transitions are mailed: broker.conf ``[notify] state_transition`` (spec §8).

The rule is a regular expression searched (not anchored) in the detail ``Old-New``, case
insensitively, as the original did. The original lower-cased both the pattern and the
detail; lower-casing a pattern turns ``\\D``, ``\\S``, ``\\W`` and ``\\B`` into their
opposites, so we search with ``re.IGNORECASE`` instead, which gives the same result for every
pattern made of letters, alternations and classes, without corrupting the escapes.
An empty rule means "mail nothing": the one clear way to switch notifications off.
"""

from __future__ import annotations

import re


class RuleError(ValueError):
    """The [notify] rule is not a valid regular expression."""


class TransitionRule:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._regex = re.compile(pattern, re.IGNORECASE) if pattern.strip() else None
        except re.error as exc:
            raise RuleError(f"[notify] state_transition={pattern!r} is not a valid regular expression: {exc}") from None

    @property
    def disabled(self) -> bool:
        return self._regex is None

    def matches(self, detail: str) -> bool:
        return self._regex is not None and self._regex.search(detail) is not None


def transition_detail(old: str, new: str) -> str:
    """The original's detail text for one transition: ``Old-New``."""
    return f"{old}-{new}"


def describe_transitions(transitions: list[tuple[str, str]]) -> str:
    """The detail of a mail that carries several transitions, chains collapsed.

    ``[(A, B), (B, C), (X, Y)]`` gives ``A-B-C, X-Y``: lossless, and as short as a Subject
    line can reasonably be. One transition gives the original's ``A-B``.
    """
    parts: list[str] = []
    previous_new: str | None = None
    for old, new in transitions:
        if parts and old == previous_new:
            parts[-1] += f"-{new}"
        else:
            parts.append(transition_detail(old, new))
        previous_new = new
    return ", ".join(parts)
