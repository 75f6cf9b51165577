from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.combine import CombineSpec, combine
from shipyard.data.harmonize import HarmonizeResult, HarmonizeSpec, harmonize


def source(name: str, data: dict[str, list[Any]], **overrides: Any) -> pl.LazyFrame:
    frame = pl.DataFrame(data, schema_overrides=overrides)
    return frame.lazy().with_columns(_source=pl.lit(name), _row=pl.int_range(pl.len()))


def run(lf: pl.LazyFrame, name: str = "orders", **spec: Any) -> HarmonizeResult:
    return harmonize(lf, HarmonizeSpec.model_validate(spec), source=name)


def column(result: HarmonizeResult | pl.LazyFrame, name: str) -> list[Any]:
    frame = result.frame if isinstance(result, HarmonizeResult) else result
    return frame.collect()[name].to_list()


# ── combine: union ────────────────────────────────────────────────────────────────────────


def test_two_date_formats_in_two_sources_become_one_datetime_column() -> None:
    eu = source("eu", {"id": [1, 2], "ordered_at": ["05/03/2024", "31/12/2023"]})
    us = source("us", {"ordered_at": ["2024-03-05T14:30:00", "2024-01-02 08:00"], "id": [3, 4]})
    eu_h = run(eu, "eu", cast={"ordered_at": {"type": "datetime", "format": "%d/%m/%Y"}})
    us_h = run(us, "us", cast={"ordered_at": "datetime"})  # ISO 8601 without a format
    out = combine({"eu": eu_h.frame, "us": us_h.frame}, CombineSpec(union=["eu", "us"])).collect()
    assert out.schema["ordered_at"] == pl.Datetime("us")
    assert out["ordered_at"].to_list() == [
        datetime(2024, 3, 5),
        datetime(2023, 12, 31),
        datetime(2024, 3, 5, 14, 30),
        datetime(2024, 1, 2, 8, 0),
    ]
    assert out["id"].to_list() == [1, 2, 3, 4]
    assert out["_source"].to_list() == ["eu", "eu", "us", "us"]


def test_union_of_three_sources_with_different_column_orders() -> None:
    frames = {
        "a": source("a", {"id": [1], "amount": [1.5], "status": ["new"]}),
        "b": source("b", {"status": ["paid", "new"], "id": [2, 3]}),
        "c": source("c", {"amount": [7], "id": [4], "coupon": ["X"]}),
    }
    out = combine(frames, CombineSpec(union=["a", "b", "c"])).collect()
    assert out.columns == ["id", "amount", "status", "_source", "_row", "coupon"]
    assert out.schema["amount"] == pl.Float64  # int64 + float64 → float64
    assert out.rows() == [
        (1, 1.5, "new", "a", 0, None),
        (2, None, "paid", "b", 0, None),
        (3, None, "new", "b", 1, None),
        (4, 7.0, None, "c", 0, "X"),
    ]


def test_union_type_conflict_names_both_sources() -> None:
    frames = {"a": source("a", {"id": [1]}), "b": source("b", {"id": ["x"]})}
    with pytest.raises(InvalidData) as info:
        combine(frames, CombineSpec(union=["a", "b"]))
    assert str(info.value) == (
        "combine.union: column 'id' is int64 in source 'a' but string in source 'b'; "
        "add `id: int64` under sources.b.harmonize.cast"
    )


def test_union_fills_missing_failed_checks_with_empty_lists() -> None:
    frames = {
        "a": run(source("a", {"n": ["x"]}), "a", cast={"n": "int64"}).frame,
        "b": source("b", {"n": [2]}),
    }
    out = combine(frames, CombineSpec(union=["a", "b"]))
    assert column(out, "_failed_checks") == [["harmonize.cast.n"], []]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=4))
def test_union_row_count_is_sum_of_inputs(sizes: list[int]) -> None:
    frames = {
        f"s{i}": source(f"s{i}", {"id": list(range(n)), f"only_{i}": [i] * n})
        for i, n in enumerate(sizes)
    }
    out = combine(frames, CombineSpec(union=list(frames))).collect()
    assert out.height == sum(sizes)


def test_combine_refuses_unknown_and_reused_sources() -> None:
    frames = {"a": source("a", {"id": [1]})}
    with pytest.raises(InvalidArgument, match="unknown source 'z'"):
        combine(frames, CombineSpec(union=["z"]))
    spec = CombineSpec.model_validate({"union": ["a"], "join": [{"source": "a", "on": "id"}]})
    with pytest.raises(InvalidArgument, match="source 'a' is used twice"):
        combine(frames, spec)


# ── combine: join ─────────────────────────────────────────────────────────────────────────


ORDERS = {"order_id": [1, 2, 3], "customer_id": [10, 20, 99]}


def join_spec(**join: Any) -> CombineSpec:
    return CombineSpec.model_validate({"union": ["orders"], "join": [join]})


def test_left_join_keeps_rows_and_order() -> None:
    frames = {
        "orders": source("orders", ORDERS),
        "customers": source("customers", {"customer_id": [20, 10], "name": ["b", "a"]}),
    }
    out = combine(frames, join_spec(source="customers", on="customer_id")).collect()
    assert out.select("order_id", "name", "_source", "_row").rows() == [
        (1, "a", "orders", 0),
        (2, "b", "orders", 1),
        (3, None, "orders", 2),
    ]


def test_left_join_with_duplicate_right_keys_is_refused() -> None:
    frames = {
        "orders": source("orders", ORDERS),
        "customers": source("customers", {"customer_id": [10, 10, 20], "name": ["a", "A", "b"]}),
    }
    with pytest.raises(InvalidData) as info:
        combine(frames, join_spec(source="customers", on="customer_id"))
    message = str(info.value)
    assert "key ['customer_id'] is not unique in source 'customers'" in message
    assert "customer_id=10 (2 rows)" in message
    assert "validate: m:m" in message


def test_validate_m_m_allows_row_multiplication() -> None:
    frames = {
        "orders": source("orders", ORDERS),
        "customers": source("customers", {"customer_id": [10, 10], "name": ["a", "A"]}),
    }
    spec = join_spec(source="customers", on="customer_id", validate="m:m")
    assert combine(frames, spec).collect().height == 4


def test_inner_and_outer_joins() -> None:
    frames = {
        "orders": source("orders", ORDERS),
        "customers": source("customers", {"customer_id": [10, 50], "name": ["a", "e"]}),
    }
    inner = combine(frames, join_spec(source="customers", on="customer_id", how="inner"))
    assert column(inner, "order_id") == [1]
    outer = combine(frames, join_spec(source="customers", on="customer_id", how="outer"))
    rows = outer.collect().select("order_id", "customer_id", "name", "_source", "_row").rows()
    assert rows == [
        (1, 10, "a", "orders", 0),
        (2, 20, None, "orders", 1),
        (3, 99, None, "orders", 2),
        (None, 50, "e", "customers", 1),
    ]


def test_join_merges_failed_checks_and_suffixes_clashing_columns() -> None:
    customers = run(
        source("customers", {"customer_id": [10, 20], "age": ["x", "30"], "status": ["a", "b"]}),
        "customers",
        cast={"age": "int64"},
    )
    frames = {
        "orders": source("orders", {**ORDERS, "status": ["new", "paid", "new"]}),
        "customers": customers.frame,
    }
    out = combine(frames, join_spec(source="customers", on="customer_id")).collect()
    assert out["_failed_checks"].to_list() == [["harmonize.cast.age"], [], []]
    assert out["status_customers"].to_list() == ["a", "b", None]
    assert "_source_customers" not in out.columns


def test_join_key_type_mismatch_says_which_cast_to_add() -> None:
    frames = {
        "orders": source("orders", ORDERS),
        "customers": source("customers", {"customer_id": ["10"], "name": ["a"]}),
    }
    with pytest.raises(
        InvalidData, match=re.escape("add `customer_id: int64` under sources.customers")
    ):
        combine(frames, join_spec(source="customers", on="customer_id"))


def test_join_key_missing_is_invalid_data() -> None:
    frames = {"orders": source("orders", ORDERS), "customers": source("customers", {"id": [1]})}
    with pytest.raises(InvalidData, match="source 'customers' has no column 'customer_id'"):
        combine(frames, join_spec(source="customers", on="customer_id"))


# ── combine: as-of join ───────────────────────────────────────────────────────────────────


def asof_frames() -> dict[str, pl.LazyFrame]:
    t = datetime(2024, 1, 1, 10, 0)
    orders = source(
        "orders",
        {
            "order_id": [1, 2, 3, 4, 5],
            "customer_id": [10, 10, 20, 20, 10],
            "ordered_at": [
                t.replace(minute=10),  # last event of 10 at 10:06 → 4 min → match
                t,  # event of 10 at 09:58 → 2 min → match
                t,  # event of 20 at 09:50 → 10 min → outside tolerance
                None,  # no time: no match
                t.replace(hour=11),  # last event of 10 at 10:06 → 54 min → outside
            ],
        },
    )
    events = source(
        "events",
        {
            "customer_id": [10, 20, 10, 10],
            "event_time": [
                datetime(2024, 1, 1, 9, 58),
                datetime(2024, 1, 1, 9, 50),
                datetime(2024, 1, 1, 10, 6),
                None,
            ],
            "page": ["cart", "home", "pay", "lost"],
        },
    ).rename({"event_time": "ordered_at"})
    return {"orders": orders, "events": events}


def asof_spec(**asof: Any) -> CombineSpec:
    return CombineSpec.model_validate({"union": ["orders"], "asof": [asof]})


def test_asof_join_matches_within_tolerance_only() -> None:
    spec = asof_spec(source="events", on="ordered_at", by="customer_id", tolerance="5m")
    out = combine(asof_frames(), spec).collect()
    assert out["order_id"].to_list() == [1, 2, 3, 4, 5]  # left order kept
    assert out["page"].to_list() == ["pay", "cart", None, None, None]
    assert out["ordered_at_events"].to_list() == [
        datetime(2024, 1, 1, 10, 6),
        datetime(2024, 1, 1, 9, 58),
        None,
        None,
        None,
    ]
    assert out["_source"].to_list() == ["orders"] * 5
    assert "_source_events" not in out.columns


def test_asof_tolerance_is_inclusive_and_strategies() -> None:
    frames = asof_frames()
    wide = asof_spec(source="events", on="ordered_at", by="customer_id", tolerance="10m")
    assert column(combine(frames, wide), "page") == ["pay", "cart", "home", None, None]
    forward = asof_spec(
        source="events", on="ordered_at", by="customer_id", tolerance="6m", strategy="forward"
    )
    assert column(combine(frames, forward), "page") == [None, "pay", None, None, None]
    nearest = asof_spec(source="events", on="ordered_at", strategy="nearest")
    assert column(combine(frames, nearest), "page") == ["pay", "cart", "cart", None, "pay"]


def test_asof_tolerance_must_be_a_duration() -> None:
    with pytest.raises(ValidationError, match="use a duration like"):
        asof_spec(source="events", on="ordered_at", tolerance="5 minutes")
    spec = asof_spec(source="events", on="ordered_at", tolerance=5)
    with pytest.raises(InvalidData, match="use a duration for times"):
        combine(asof_frames(), spec)


def test_outer_join_rows_from_the_right_get_an_empty_failed_checks_list() -> None:
    orders = run(
        source("orders", {"order_id": ["1"], "customer_id": [10]}), cast={"order_id": "int64"}
    )
    frames = {
        "orders": orders.frame,
        "customers": source("customers", {"customer_id": [10, 50], "name": ["a", "e"]}),
    }
    out = combine(frames, join_spec(source="customers", on="customer_id", how="outer"))
    assert column(out, "_failed_checks") == [[], []]
