"""Row-wise features: values, nulls, refusals, and determinism."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument
from shipyard.data.features import FeaturesSpec, add_features

TIMES = [datetime(2024, 1, 1, 5), datetime(2024, 12, 31, 23, 30), datetime(2021, 1, 3), None]


def one(data: dict[str, Any], feature: dict[str, Any]) -> list[Any]:
    spec = FeaturesSpec.model_validate({"out": feature})
    return add_features(pl.LazyFrame(data), spec).collect()["out"].to_list()


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("year", [2024, 2024, 2021, None]),
        ("month", [1, 12, 1, None]),
        ("day", [1, 31, 3, None]),
        ("hour", [5, 23, 0, None]),
        ("weekday", [1, 2, 7, None]),  # ISO: Monday 1, Sunday 7
        ("dayofyear", [1, 366, 3, None]),
        ("week", [1, 1, 53, None]),  # ISO weeks: 2024-12-31 is in 2025-W01, 2021-01-03 in 2020-W53
    ],
)
def test_date_parts_match_python_iso_calendar(part: str, expected: list[int | None]) -> None:
    assert one({"t": TIMES}, {"date_part": {"column": "t", "part": part}}) == expected
    python = {
        "weekday": lambda t: t.isoweekday(),
        "week": lambda t: t.isocalendar().week,
        "dayofyear": lambda t: t.timetuple().tm_yday,
    }
    if part in python:
        assert expected[:3] == [python[part](t) for t in TIMES[:3]]


def test_date_parts_of_dates_and_their_type() -> None:
    frame = add_features(
        pl.LazyFrame({"d": [date(2024, 2, 29)]}),
        FeaturesSpec.model_validate({"m": {"date_part": {"column": "d", "part": "month"}}}),
    ).collect()
    assert frame.schema["m"] == pl.Int32
    assert frame["m"].to_list() == [2]


def test_ratio_is_null_where_the_denominator_is_zero_or_null() -> None:
    out = one({"a": [1, 3, 5, None, 0], "b": [2, 0, None, 4, 0]}, {"ratio": ["a", "b"]})
    assert out == [0.5, None, None, None, None]


def test_logs_are_null_outside_their_domain_and_match_numpy() -> None:
    x = [-2.0, -1.0, -0.5, 0.0, 1.0, 10.0, None]
    log1p = one({"x": x}, {"log1p": "x"})
    log = one({"x": x}, {"log": "x"})
    assert log1p[:2] == [None, None]
    assert log1p[2:6] == pytest.approx(np.log1p([-0.5, 0.0, 1.0, 10.0]).tolist())
    assert log[:4] == [None, None, None, None]
    assert log[4:6] == pytest.approx([0.0, math.log(10)])
    assert log1p[6] is None
    assert log[6] is None


def test_bucket_labels_and_indexes_are_right_closed() -> None:
    x = [-5.0, 0.0, 5.0, 10.0, 99.5, 100.0, 1000.0, 5000.0, None]
    edges = [0, 10, 100, 1000]
    index = one({"x": x}, {"bucket": {"column": "x", "edges": edges, "output": "index"}})
    assert index == [0, 0, 1, 1, 2, 2, 3, 4, None]
    assert index[:8] == np.searchsorted(edges, x[:8], side="left").tolist()
    labels = one({"x": x}, {"bucket": {"column": "x", "edges": edges}})
    assert labels[:3] == ["(-inf, 0]", "(-inf, 0]", "(0, 10]"]
    assert labels[7:] == ["(1000, inf)", None]
    named = one(
        {"x": x},
        {"bucket": {"column": "x", "edges": [0, 100], "labels": ["neg", "small", "big"]}},
    )
    assert named == ["neg", "neg", "small", "small", "small", "small", "big", "big", None]


def test_text_length_counts_characters_and_contains_ignores_case() -> None:
    data = {"s": ["héllo", "", "日本語", None, "Hello World"]}
    assert one(data, {"text_length": "s"}) == [5, 0, 3, None, 11]
    assert one(data, {"contains": {"column": "s", "text": "WORLD"}}) == [
        False,
        False,
        False,
        None,
        True,
    ]
    assert one(data, {"contains": {"column": "s", "text": "World", "case_sensitive": True}}) == [
        False,
        False,
        False,
        None,
        True,
    ]
    assert one({"s": ["a.c", "abc"]}, {"contains": {"column": "s", "text": "."}}) == [True, False]


def test_all_features_in_one_spec_and_the_documented_example() -> None:
    spec = FeaturesSpec.model_validate(
        {
            "ordered_month": {"date_part": {"column": "ordered_at", "part": "month"}},
            "amount_log": {"log1p": "amount"},
            "amount_per_item": {"ratio": ["amount", "items"]},
            "amount_bucket": {"bucket": {"column": "amount", "edges": [0, 10, 100, 1000]}},
            "email_length": {"text_length": "email"},
        }
    )
    frame = pl.LazyFrame(
        {
            "ordered_at": [datetime(2024, 3, 1)],
            "amount": [50.0],
            "items": [2],
            "email": ["a@b.c"],
        }
    )
    out = add_features(frame, spec).collect()
    assert out.row(0, named=True) | {"amount_log": None} == {
        "ordered_at": datetime(2024, 3, 1),
        "amount": 50.0,
        "items": 2,
        "email": "a@b.c",
        "ordered_month": 3,
        "amount_log": None,
        "amount_per_item": 25.0,
        "amount_bucket": "(10, 100]",
        "email_length": 5,
    }
    assert out["amount_log"][0] == pytest.approx(math.log1p(50))


def test_features_are_deterministic_and_row_wise() -> None:
    spec = FeaturesSpec.model_validate({"r": {"ratio": ["a", "b"]}, "l": {"log": "a"}})
    frame = pl.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [2.0, 0.0, 1.0, 8.0]})
    whole = add_features(frame.lazy(), spec).collect()
    parts = pl.concat([add_features(frame[i : i + 1].lazy(), spec).collect() for i in range(4)])
    assert whole.equals(parts)  # one row's value never depends on the others
    assert whole.equals(add_features(frame.lazy(), spec).collect())


@pytest.mark.parametrize(
    "feature",
    [
        {"ratio": ["a", "b"], "log": "a"},
        {"nope": "a"},
        {},
        {"bucket": {"column": "a", "edges": [2, 1]}},
        {"bucket": {"column": "a", "edges": []}},
        {"bucket": {"column": "a", "edges": [1], "labels": ["x"]}},
        {"bucket": {"column": "a", "edges": [1], "labels": ["x", "x"]}},
        {"date_part": {"column": "a", "part": "minute"}},
        {"ratio": ["a"]},
        {"contains": {"column": "a", "text": ""}},
    ],
)
def test_malformed_features_are_refused(feature: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeaturesSpec.model_validate({"out": feature})


def test_reserved_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        FeaturesSpec.model_validate({"_x": {"log": "a"}})


@pytest.mark.parametrize(
    ("feature", "fragment"),
    [
        ({"log": "missing"}, r"feature out: no column 'missing'; columns are a, s, t"),
        ({"log": "s"}, r"feature out: column 's' is String, needs numeric"),
        ({"text_length": "a"}, r"column 'a' is Int64, needs text"),
        ({"date_part": {"column": "a", "part": "year"}}, r"needs temporal"),
        ({"date_part": {"column": "t", "part": "hour"}}, r"column 't' is Date, needs datetime"),
    ],
)
def test_features_on_missing_or_mistyped_columns_are_refused(
    feature: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        one({"a": [1], "s": ["x"], "t": [date(2024, 1, 1)]}, feature)


def test_a_feature_may_not_overwrite_a_column() -> None:
    spec = FeaturesSpec.model_validate({"a": {"log": "a"}})
    with pytest.raises(InvalidArgument, match="features a: already columns"):
        add_features(pl.LazyFrame({"a": [1.0]}), spec)
