from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from he_ha.admin.contract import Metric
from he_ha.admin.metrics_text import MetricsFormatError, encode, render
from he_ha.durations import DurationHistogram
from tests.unit.admin.prom_parser import parse_exposition


def gauge(name: str = "he_ha_score", value: float = 1, help: str = "h", **labels: str) -> Metric:
    return Metric(name=name, kind="gauge", help=help, value=value, labels=labels)


def counter(name: str = "he_ha_ticks_total", value: float = 1, **labels: str) -> Metric:
    return Metric(name=name, kind="counter", help="c", value=value, labels=labels)


def histogram(name: str = "he_ha_tick_duration_seconds", *seconds: float, **labels: str) -> Metric:
    h = DurationHistogram(bounds=(0.1, 1.0))
    for value in seconds:
        h.observe(value)
    return Metric(
        name=name, kind="histogram", help="d", value=h.count, labels=labels, buckets=h.cumulative(), sum=h.sum
    )


def test_help_and_type_once_per_name_samples_grouped() -> None:
    text = render([gauge(value=3400, host="1"), counter("he_ha_transitions_total", 3), gauge(value=0, host="2")])
    assert text == (
        "# HELP he_ha_score h\n"
        "# TYPE he_ha_score gauge\n"
        'he_ha_score{host="1"} 3400.0\n'
        'he_ha_score{host="2"} 0.0\n'
        "# HELP he_ha_transitions_total c\n"
        "# TYPE he_ha_transitions_total counter\n"
        "he_ha_transitions_total 3.0\n"
    )


def test_a_histogram_has_cumulative_buckets_sum_and_count() -> None:
    text = render([histogram("he_ha_tick_duration_seconds", 0.05, 0.5, 7.0, op="read")])
    assert text.splitlines()[2:] == [
        'he_ha_tick_duration_seconds_bucket{le="0.1",op="read"} 1.0',
        'he_ha_tick_duration_seconds_bucket{le="1.0",op="read"} 2.0',
        'he_ha_tick_duration_seconds_bucket{le="+Inf",op="read"} 3.0',
        'he_ha_tick_duration_seconds_count{op="read"} 3.0',
        'he_ha_tick_duration_seconds_sum{op="read"} 7.55',
    ]
    (family,) = parse_text(text)
    assert family.type == "histogram" and len(family.samples) == 5


def test_openmetrics_when_the_scraper_asks_and_its_parser_accepts_it() -> None:
    metrics = [gauge(), counter(), histogram("he_ha_tick_duration_seconds", 0.2)]
    body, content_type = encode(metrics, "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    families = {f.name: f.type for f in parse_openmetrics(body.decode())}
    assert families == {"he_ha_score": "gauge", "he_ha_ticks": "counter", "he_ha_tick_duration_seconds": "histogram"}
    assert encode(metrics, "")[1] == "text/plain; version=0.0.4; charset=utf-8"


def test_empty_set_renders_nothing() -> None:
    assert render([]) == ""


def test_label_values_escape_backslash_quote_newline() -> None:
    line = render([gauge(reason='disk "full"\n\\dev')]).splitlines()[2]
    assert line == 'he_ha_score{reason="disk \\"full\\"\\n\\\\dev"} 1.0'


def test_help_escapes_backslash_and_newline_but_not_quotes() -> None:
    assert render([gauge(help='a\\b\n"c"')]).splitlines()[0] == '# HELP he_ha_score a\\\\b\\n"c"'


@pytest.mark.parametrize("name", ["he_ha_ticks", "he_ha_total_ticks", "_total"])
def test_a_counter_not_named_total_is_refused(name: str) -> None:
    with pytest.raises(MetricsFormatError, match="ends in _total"):
        render([counter(name)])


@pytest.mark.parametrize("value", [-1.0, -0.5, math.nan, math.inf])
def test_a_negative_or_infinite_counter_is_refused(value: float) -> None:
    with pytest.raises(MetricsFormatError, match="never negative"):
        render([counter(value=value, monitor="cpu")])


@pytest.mark.parametrize(
    ("first", "second", "claimed"),
    [
        (
            gauge("he_ha_tick_duration_seconds"),
            counter("he_ha_tick_duration_seconds_total"),
            "he_ha_tick_duration_seconds",
        ),
        (histogram("he_ha_probe_seconds"), gauge("he_ha_probe_seconds_count"), "he_ha_probe_seconds_count"),
        (counter("he_ha_mails_total"), gauge("he_ha_mails_created"), "he_ha_mails_created"),
    ],
)
def test_families_whose_series_names_collide_are_refused(first: Metric, second: Metric, claimed: str) -> None:
    with pytest.raises(MetricsFormatError, match=f"both claim the name {claimed}$"):
        render([first, second])


@pytest.mark.parametrize(
    ("buckets", "count"),
    [
        (((1.0, 1), (0.5, 1), (math.inf, 1)), 1),  # bounds not ascending
        (((1.0, 1),), 1),  # no +Inf bucket
        (((1.0, 2), (math.inf, 1)), 1),  # not cumulative
        (((1.0, 1), (math.inf, 2)), 3),  # +Inf is not the count
    ],
)
def test_a_malformed_histogram_is_refused(buckets: tuple[tuple[float, int], ...], count: int) -> None:
    with pytest.raises(MetricsFormatError, match="histogram he_ha_x"):
        render([Metric(name="he_ha_x", kind="histogram", help="h", value=count, buckets=buckets, sum=1.0)])


def test_series_of_one_family_with_different_label_names_are_refused() -> None:
    with pytest.raises(MetricsFormatError, match="label names"):
        render([gauge(host="1"), gauge(name="he_ha_score", node="2")])


@pytest.mark.parametrize("name", ["1abc", "he-ha", "he ha", "", "é"])
def test_invalid_metric_name_is_refused(name: str) -> None:
    with pytest.raises(MetricsFormatError, match="invalid metric name"):
        render([gauge(name=name)])


@pytest.mark.parametrize("label", ["__name", "1x", "a-b", ""])
def test_invalid_or_reserved_label_name_is_refused(label: str) -> None:
    with pytest.raises(MetricsFormatError, match="invalid label name"):
        render([Metric(name="m", kind="gauge", help="h", value=1, labels={label: "v"})])


def test_one_name_with_two_types_is_refused() -> None:
    with pytest.raises(MetricsFormatError, match="both gauge and counter"):
        render([gauge("he_ha_x_total", host="1"), counter("he_ha_x_total", host="2")])


def test_one_name_with_two_help_texts_is_refused() -> None:
    with pytest.raises(MetricsFormatError, match="two different help texts"):
        render([gauge(host="1"), gauge(help="other", host="2")])


def test_the_same_series_twice_is_refused_whatever_the_label_order() -> None:
    first = Metric(name="m", kind="gauge", help="h", value=1, labels={"a": "1", "b": "2"})
    second = Metric(name="m", kind="gauge", help="h", value=2, labels={"b": "2", "a": "1"})
    with pytest.raises(MetricsFormatError, match="given twice"):
        render([first, second])


def test_colons_allowed_in_metric_names() -> None:
    assert parse_exposition(render([gauge(name="he_ha:score_avg")]))["he_ha:score_avg"].samples == [({}, 1.0)]


_label_text = st.text(st.characters(codec="utf-8"), max_size=20)


@given(
    values=st.lists(st.floats(allow_nan=False), min_size=1, max_size=5),
    label_values=st.lists(_label_text, min_size=1, max_size=5, unique=True),
    help_text=_label_text,
)
def test_any_label_value_and_help_round_trip_through_a_strict_parser(
    values: list[float], label_values: list[str], help_text: str
) -> None:
    metrics = [
        Metric(name="he_ha_x", kind="gauge", help=help_text, value=value, labels={"v": label})
        for value, label in zip(values, label_values, strict=False)
    ]
    family = parse_exposition(render(metrics))["he_ha_x"]
    assert family.help == help_text and family.kind == "gauge"
    assert family.samples == [({"v": m.labels["v"]}, m.value) for m in metrics]
