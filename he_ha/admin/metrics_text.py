"""Prometheus text exposition format (version 0.0.4), written by hand.

Rules applied (https://prometheus.io/docs/instrumenting/exposition_formats/):
- samples of one metric name form one group, preceded once by ``# HELP`` and ``# TYPE``;
- metric names match ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names ``[a-zA-Z_][a-zA-Z0-9_]*``
  and must not start with ``__`` (reserved);
- label values escape backslash, double quote and line feed; HELP text escapes backslash
  and line feed;
- values are Go-style floats: ``NaN``, ``+Inf``, ``-Inf``; every line ends with ``\\n``.
A metric set that breaks them (bad name, one name with two types or two help texts, the
same series twice) raises MetricsFormatError rather than producing output a scraper rejects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from he_ha.admin.contract import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MetricsFormatError(ValueError):
    """The metric set cannot be exposed in the text format."""


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # "3400", not "3400.0": exact and easier to read
    return repr(value)


def _check(metric: Metric) -> None:
    if not _METRIC_NAME.fullmatch(metric.name):
        raise MetricsFormatError(f"invalid metric name {metric.name!r}")
    for label in metric.labels:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise MetricsFormatError(f"metric {metric.name}: invalid label name {label!r}")


def _sample_line(metric: Metric) -> str:
    labels = ",".join(f'{key}="{escape_label_value(value)}"' for key, value in metric.labels.items())
    series = f"{metric.name}{{{labels}}}" if labels else metric.name
    return f"{series} {format_value(metric.value)}\n"


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text; metric families in order of first appearance."""
    families: dict[str, list[Metric]] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for metric in metrics:
        _check(metric)
        family = families.setdefault(metric.name, [])
        if family:
            first = family[0]
            if metric.kind != first.kind:
                raise MetricsFormatError(f"metric {metric.name}: declared both {first.kind} and {metric.kind}")
            if metric.help != first.help:
                raise MetricsFormatError(f"metric {metric.name}: two different help texts")
        series = (metric.name, tuple(sorted(metric.labels.items())))
        if series in seen:
            raise MetricsFormatError(f"metric {metric.name}: series {metric.labels} given twice")
        seen.add(series)
        family.append(metric)
    out: list[str] = []
    for name, family in families.items():
        out.append(f"# HELP {name} {escape_help(family[0].help)}\n")
        out.append(f"# TYPE {name} {family[0].kind}\n")
        out.extend(_sample_line(metric) for metric in family)
    return "".join(out)
