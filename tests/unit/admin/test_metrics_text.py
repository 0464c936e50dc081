from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from he_ha.admin.contract import Metric
from he_ha.admin.metrics_text import MetricsFormatError, escape_help, escape_label_value, format_value, render
from tests.unit.admin.prom_parser import parse_exposition


def gauge(name: str = "he_ha_score", value: float = 1, help: str = "h", **labels: str) -> Metric:
    return Metric(name=name, kind="gauge", help=help, value=value, labels=labels)


def test_help_and_type_once_per_name_samples_grouped() -> None:
    text = render(
        [
            gauge(value=3400, host="1"),
            Metric(name="he_ha_transitions_total", kind="counter", help="transitions", value=3),
            gauge(value=0, host="2"),
        ]
    )
    assert text == (
        "# HELP he_ha_score h\n"
        "# TYPE he_ha_score gauge\n"
        'he_ha_score{host="1"} 3400\n'
        'he_ha_score{host="2"} 0\n'
        "# HELP he_ha_transitions_total transitions\n"
        "# TYPE he_ha_transitions_total counter\n"
        "he_ha_transitions_total 3\n"
    )


def test_empty_set_renders_nothing() -> None:
    assert render([]) == ""


def test_label_values_escape_backslash_quote_newline() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    line = render([gauge(reason='disk "full"\n\\dev')]).splitlines()[2]
    assert line == 'he_ha_score{reason="disk \\"full\\"\\n\\\\dev"} 1'


def test_help_escapes_backslash_and_newline_but_not_quotes() -> None:
    assert escape_help('a\\b\n"c"') == 'a\\\\b\\n"c"'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3400.0, "3400"),
        (-2.0, "-2"),
        (0.25, "0.25"),
        (1e20, "1e+20"),
        (1e300, "1e+300"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (2.0**53, "9007199254740992.0"),
    ],
)
def test_values_are_go_floats(value: float, text: str) -> None:
    assert format_value(value) == text


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
        render([gauge(host="1"), Metric(name="he_ha_score", kind="counter", help="h", value=1, labels={"host": "2"})])


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
