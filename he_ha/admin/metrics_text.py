"""The Prometheus exposition of a metric set, by prometheus_client, after our own checks.

prometheus_client writes the formats (text 0.0.4, or OpenMetrics 1.0 when the scraper asks
for it): escaping, float spelling, histogram series. What it does not check, and a scraper
or its own registry would reject, we refuse first with MetricsFormatError, so that a
scraper never gets output it would drop:
- a metric or label name outside the legacy character set, a reserved (``__``) or ``le``
  label name;
- one name with two types or two help texts, series of one name with different label names,
  the same series twice;
- a counter not named ``<base>_total``, or negative, or not finite;
- a histogram whose buckets are not cumulative, ascending and closed by +Inf;
- two families whose series names collide, e.g. a gauge ``x_seconds`` beside a counter
  ``x_seconds_total`` (the OpenMetrics parser and prometheus_client's registry reject the
  pair, since both claim ``x_seconds``), or a gauge ``x_count`` beside a histogram ``x``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric as Family

from he_ha.admin.contract import Metric

CONTENT_TYPE = CONTENT_TYPE_LATEST  # text/plain; version=0.0.4; charset=utf-8

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# The series names each kind of family writes (or reserves: a counter's base name, _created).
_SUFFIXES = {"gauge": ("",), "counter": ("", "_created"), "histogram": ("", "_bucket", "_count", "_sum", "_created")}


class MetricsFormatError(ValueError):
    """The metric set cannot be exposed correctly."""


def render(metrics: Iterable[Metric]) -> str:
    """The text format 0.0.4; families in order of first appearance."""
    return encode(metrics, "")[0].decode("utf-8")


def encode(metrics: Iterable[Metric], accept: str) -> tuple[bytes, str]:
    """(body, content type) for a scraper's Accept header: OpenMetrics when it asks for it."""
    families = list(_families(_grouped(metrics)))
    encoder, content_type = choose_encoder(accept)
    return encoder(_Snapshot(families)), content_type


class _Snapshot:
    """A collector over families already built (prometheus_client's encoders call collect())."""

    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Family]:
        return iter(self._families)


def _grouped(metrics: Iterable[Metric]) -> dict[str, list[Metric]]:
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
            if sorted(metric.labels) != sorted(first.labels):
                raise MetricsFormatError(
                    f"metric {metric.name}: label names {sorted(metric.labels)} and "
                    f"{sorted(first.labels)} in one family"
                )
        series = (metric.name, tuple(sorted(metric.labels.items())))
        if series in seen:
            raise MetricsFormatError(f"metric {metric.name}: series {metric.labels} given twice")
        seen.add(series)
        family.append(metric)
    _check_clashes(families)
    return families


def _check(metric: Metric) -> None:
    name = metric.name
    if not _METRIC_NAME.fullmatch(name):
        raise MetricsFormatError(f"invalid metric name {name!r}")
    for label in metric.labels:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise MetricsFormatError(f"metric {name}: invalid label name {label!r}")
    if metric.kind == "counter":
        if not name.endswith("_total") or name == "_total":
            raise MetricsFormatError(f"counter {name}: a counter's name ends in _total")
        if not math.isfinite(metric.value) or metric.value < 0:
            raise MetricsFormatError(
                f"counter {name}{metric.labels or ''}: {metric.value} (a counter is finite and never negative)"
            )
    if metric.kind == "histogram":
        _check_histogram(metric)


def _check_histogram(metric: Metric) -> None:
    name, buckets = metric.name, metric.buckets
    if "le" in metric.labels:
        raise MetricsFormatError(f"histogram {name}: 'le' is the bucket label")
    bounds = [b for b, _ in buckets]
    counts = [c for _, c in buckets]
    if not buckets or bounds[-1] != math.inf or bounds != sorted(set(bounds)):
        raise MetricsFormatError(f"histogram {name}: bucket bounds must ascend and end with +Inf")
    if counts != sorted(counts) or counts[0] < 0 or counts[-1] != metric.value:
        raise MetricsFormatError(f"histogram {name}: bucket counts must be cumulative up to the count")
    if not math.isfinite(metric.sum) or metric.sum < 0:
        raise MetricsFormatError(f"histogram {name}: sum {metric.sum} (durations are never negative)")


def _check_clashes(families: dict[str, list[Metric]]) -> None:
    owner: dict[str, str] = {}
    for name, family in families.items():
        kind = family[0].kind
        base = name.removesuffix("_total") if kind == "counter" else name
        claimed = {base + suffix for suffix in _SUFFIXES[kind]} | {name}
        for series in sorted(claimed):
            other = owner.setdefault(series, name)
            if other != name:
                raise MetricsFormatError(f"metrics {other} and {name} both claim the name {series}")


def _families(grouped: dict[str, list[Metric]]) -> Iterator[Family]:
    for name, series in grouped.items():
        first = series[0]
        labels = list(first.labels)
        family: GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily
        if first.kind == "gauge":
            family = GaugeMetricFamily(name, first.help, labels=labels)
        elif first.kind == "counter":
            family = CounterMetricFamily(name, first.help, labels=labels)  # writes <base>_total
        else:
            family = HistogramMetricFamily(name, first.help, labels=labels)
        for metric in series:
            values = [metric.labels[label] for label in labels]
            if isinstance(family, HistogramMetricFamily):
                buckets = [(_bound(bound), count) for bound, count in metric.buckets]
                family.add_metric(values, buckets, metric.sum)
            else:
                family.add_metric(values, metric.value)
        yield family


def _bound(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))
