"""A strict line-by-line parser of the Prometheus text format 0.0.4, written independently
of he_ha.admin.metrics_text so the tests check the renderer against the format itself."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"({_NAME})(\{{.*\}})? (\S+)( -?\d+)?")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class FormatViolation(AssertionError):
    pass


@dataclass
class Family:
    kind: str | None = None
    help: str | None = None
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _value(text: str) -> float:
    special = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}
    if text in special:
        return special[text]
    if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        raise FormatViolation(f"bad sample value {text!r}")
    return float(text)


def _labels(text: str) -> dict[str, str]:
    inner, labels, pos = text[1:-1], {}, 0
    while pos < len(inner):
        match = _LABEL.match(inner, pos)
        if match is None:
            raise FormatViolation(f"bad label set {text!r} at {pos}")
        name = match.group(1)
        if name in labels or name.startswith("__"):
            raise FormatViolation(f"label {name!r} repeated or reserved")
        labels[name] = re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], match.group(2))
        pos = match.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise FormatViolation(f"expected ',' in {text!r} at {pos}")
            pos += 1
    return labels


def parse_exposition(text: str) -> dict[str, Family]:
    if text and not text.endswith("\n"):
        raise FormatViolation("the last line does not end with a line feed")
    families: dict[str, Family] = {}
    closed: set[str] = set()
    current: str | None = None

    def enter(name: str) -> Family:
        nonlocal current
        if name != current:
            if name in closed:
                raise FormatViolation(f"lines of {name} are not contiguous")
            if current is not None:
                closed.add(current)
            current = name
        return families.setdefault(name, Family())

    # Lines end with "\n" only: other characters str.splitlines() would split on (\r,
    # \x1c, U+2028, ...) are ordinary text in HELP and label values.
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            keyword, name, rest = line[2:6], *line[7:].split(" ", 1)
            if not re.fullmatch(_NAME, name):
                raise FormatViolation(f"line {number}: bad metric name {name!r}")
            family = enter(name)
            if family.samples:
                raise FormatViolation(f"line {number}: {keyword} of {name} after its samples")
            if keyword == "HELP":
                if family.help is not None:
                    raise FormatViolation(f"line {number}: second HELP for {name}")
                family.help = re.sub(r"\\[\\n]", lambda m: _UNESCAPE[m.group(0)], rest)
            else:
                if family.kind is not None:
                    raise FormatViolation(f"line {number}: second TYPE for {name}")
                if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise FormatViolation(f"line {number}: unknown type {rest!r}")
                family.kind = rest
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line)
        if match is None:
            raise FormatViolation(f"line {number}: not a sample: {line!r}")
        name, label_text, value, _ = match.groups()
        labels = _labels(label_text) if label_text else {}
        family = enter(name)
        if any(existing == labels for existing, _ in family.samples):
            raise FormatViolation(f"line {number}: series {name}{labels} repeated")
        family.samples.append((labels, _value(value)))
    return families
