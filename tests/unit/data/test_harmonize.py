from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.harmonize import CONVERSIONS, HarmonizeResult, HarmonizeSpec, harmonize


def source(name: str, data: dict[str, list[Any]], **overrides: Any) -> pl.LazyFrame:
    frame = pl.DataFrame(data, schema_overrides=overrides)
    return frame.lazy().with_columns(_source=pl.lit(name), _row=pl.int_range(pl.len()))


def run(lf: pl.LazyFrame, name: str = "orders", **spec: Any) -> HarmonizeResult:
    return harmonize(lf, HarmonizeSpec.model_validate(spec), source=name)


def column(result: HarmonizeResult | pl.LazyFrame, name: str) -> list[Any]:
    frame = result.frame if isinstance(result, HarmonizeResult) else result
    return frame.collect()[name].to_list()


# ── rename / defaults / fill_null / select / drop ─────────────────────────────────────────


def test_rename_gives_canonical_names() -> None:
    result = run(source("orders", {"OrderID": [1], "amt": [2]}), rename={"OrderID": "order_id"})
    assert result.frame.collect_schema().names() == [
        "order_id",
        "amt",
        "_source",
        "_row",
        "_failed_checks",
    ]


def test_rename_of_missing_column_says_how_to_fix() -> None:
    lf = source("orders", {"order_ref": [1], "amount": [2]})
    with pytest.raises(InvalidData) as info:
        run(lf, rename={"OrderID": "order_id"})
    message = str(info.value)
    assert message.startswith("source 'orders': harmonize.rename expects column 'OrderID'")
    assert "(columns: order_ref, amount, _source, _row)" in message
    assert "sources.orders.harmonize.rename" in message
    assert message.endswith("or set on_schema_drift: adapt")


def test_missing_columns_under_adapt_are_skipped_with_a_warning() -> None:
    lf = source("orders", {"order_ref": [1]})
    spec = HarmonizeSpec(rename={"OrderID": "order_id"}, cast={"amount": "float64"})
    result = harmonize(lf, spec, source="orders", on_schema_drift="adapt")
    assert column(result, "order_ref") == [1]
    assert len(result.report.warnings) == 2
    assert "harmonize.rename expects column 'OrderID'" in result.report.warnings[0]
    assert "harmonize.cast expects column 'amount'" in result.report.warnings[1]


def test_rename_onto_an_existing_column_is_refused() -> None:
    with pytest.raises(InvalidData, match=r"duplicate columns \['id'\]"):
        run(source("orders", {"a": [1], "id": [2]}), rename={"a": "id"})


def test_rename_can_swap_columns() -> None:
    result = run(source("o", {"a": [1], "b": [2]}), rename={"a": "b", "b": "a"})
    assert column(result, "a") == [2]
    assert column(result, "b") == [1]


def test_defaults_add_missing_columns_only_and_fill_null_fills() -> None:
    lf = source("orders", {"region": ["eu", None]})
    result = run(
        lf,
        defaults={"channel": "web", "region": "us", "items": "1"},
        cast={"items": "int64"},
        fill_null={"region": "unknown"},
    )
    frame = result.frame.collect()
    assert frame["channel"].to_list() == ["web", "web"]
    assert frame["items"].to_list() == [1, 1]  # a default goes through cast like source data
    assert frame["region"].to_list() == ["eu", "unknown"]  # present: not defaulted
    assert result.report.added == ("channel", "items")


def test_select_and_drop_keep_bookkeeping_columns() -> None:
    lf = source("orders", {"a": [1], "b": [2], "c": [3]})
    assert run(lf, drop=["b", "gone"]).frame.collect_schema().names() == [
        "a",
        "c",
        "_source",
        "_row",
        "_failed_checks",
    ]
    assert run(lf, select=["c", "a"]).frame.collect_schema().names() == [
        "c",
        "a",
        "_source",
        "_row",
        "_failed_checks",
    ]
    with pytest.raises(InvalidData, match=re.escape("harmonize.select expects column 'z'")):
        run(lf, select=["z"])


def test_bookkeeping_names_are_reserved() -> None:
    with pytest.raises(InvalidArgument, match="'_row' is a bookkeeping column"):
        run(source("o", {"a": [1]}), rename={"a": "_row"})


# ── cast ──────────────────────────────────────────────────────────────────────────────────


def test_several_formats_first_that_parses_wins() -> None:
    lf = source("o", {"d": ["05/03/2024", "2024-03-06", "03.07.2024", "nope"]})
    result = run(lf, cast={"d": {"type": "date", "format": ["%d/%m/%Y", "%Y-%m-%d", "%m.%d.%Y"]}})
    assert column(result, "d") == [date(2024, 3, 5), date(2024, 3, 6), date(2024, 3, 7), None]
    assert result.report.cast_failures == {"d": 1}


def test_iso_offsets_are_converted_to_utc() -> None:
    values = ["2024-01-05T10:00:00+02:00", "2024-01-05T10:00:00Z", "2024-01-05T10:00:00.5"]
    lf = source("o", {"naive": values, "utc": values})
    result = run(lf, cast={"naive": "datetime", "utc": "datetime_utc"})
    assert column(result, "naive") == [
        datetime(2024, 1, 5, 8),
        datetime(2024, 1, 5, 10),
        datetime(2024, 1, 5, 10, 0, 0, 500_000),
    ]
    assert column(result, "utc")[0] == datetime(2024, 1, 5, 8, tzinfo=UTC)
    assert result.report.cast_failures == {"naive": 0, "utc": 0}


def test_cast_failures_are_counted_and_listed_per_row() -> None:
    lf = source(
        "orders",
        {
            "amount": ["12.5", "abc", None, " 7 ", ""],
            "ordered_at": ["2024-01-01", "2024-01-02", "yesterday", None, "2024-13-01"],
        },
    )
    result = run(lf, cast={"amount": "float64", "ordered_at": "date"})
    frame = result.frame.collect()
    assert frame["amount"].to_list() == [12.5, None, None, 7.0, None]
    assert frame["ordered_at"].to_list() == [date(2024, 1, 1), date(2024, 1, 2), None, None, None]
    assert frame["_failed_checks"].to_list() == [
        [],
        ["harmonize.cast.amount"],
        ["harmonize.cast.ordered_at"],
        [],
        ["harmonize.cast.ordered_at"],  # a blank string is missing, not a failure
    ]
    assert result.report.cast_failures == {"amount": 1, "ordered_at": 2}
    assert result.report.failed_values == 3
    assert result.report.rows == 5


def test_existing_failed_checks_are_kept() -> None:
    lf = source("o", {"n": ["x"]}).with_columns(_failed_checks=pl.lit(["earlier"]))
    assert column(run(lf, cast={"n": "int64"}), "_failed_checks") == [
        ["earlier", "harmonize.cast.n"]
    ]


def test_casts_and_maps_add_no_columns_and_evaluate_each_cast_once() -> None:
    lf = source("o", {"n": ["1", "x"], "m": ["a", "b"], "__harmonize_cast_0": ["kept", "kept"]})
    result = run(lf, cast={"n": "int64"}, map={"m": {"a": "A"}})
    frame = result.frame.collect()
    assert frame.columns == ["n", "m", "__harmonize_cast_0", "_source", "_row", "_failed_checks"]
    assert frame["__harmonize_cast_0"].to_list() == ["kept", "kept"]
    assert frame["_failed_checks"].to_list() == [[], ["harmonize.map.m", "harmonize.cast.n"]]
    # The flag reads the cast column, not a second copy of the cast expression.
    plan = result.frame.explain()
    assert 'col("n").is_null()' in plan
    assert ".cast(Int64).is_null()" not in plan


def test_numeric_casts_from_numbers_count_overflow() -> None:
    lf = source("o", {"n": [1, 300, None]})
    result = run(lf, cast={"n": "int8"})
    assert column(result, "n") == [1, None, None]
    assert result.report.cast_failures == {"n": 1}


def test_decimal_comma_and_bool_text() -> None:
    lf = source("o", {"price": ["1.234,5", "0,25", "12"], "ok": ["TRUE", "false", "maybe"]})
    result = run(lf, cast={"price": {"type": "float64", "decimal_comma": True}, "ok": "bool"})
    assert column(result, "price") == [1234.5, 0.25, 12.0]
    assert column(result, "ok") == [True, False, None]
    assert result.report.cast_failures == {"price": 0, "ok": 1}


def test_without_count_the_report_has_no_counts() -> None:
    lf = source("o", {"n": ["x"]})
    spec = HarmonizeSpec(cast={"n": "int64"})
    report = harmonize(lf, spec, source="o", count=False).report
    assert report.rows is None
    assert report.cast_failures == {}


@pytest.mark.parametrize(
    ("cast", "match"),
    [
        ({"a": "decimal128"}, "cast.a: unknown type 'decimal128'"),
        ({"a": {"type": "int64", "format": "%Y"}}, "format needs type date or datetime"),
        ({"a": {"type": "date", "decimal_comma": True}}, "decimal_comma needs a numeric type"),
    ],
)
def test_bad_cast_rules_are_invalid_arguments(cast: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        run(source("o", {"a": ["1"]}), cast=cast)


# ── map ───────────────────────────────────────────────────────────────────────────────────


GIFT = {"Y": True, "yes": True, "1": True, "N": False, "no": False, "0": False}


def test_boolean_mapping_y_yes_1() -> None:
    lf = source("orders", {"is_gift": ["Y", "yes", "1", "N", "no", "0", "maybe", None]})
    result = run(lf, map={"is_gift": GIFT})
    frame = result.frame.collect()
    assert frame.schema["is_gift"] == pl.Boolean
    assert frame["is_gift"].to_list() == [True, True, True, False, False, False, None, None]
    assert frame["_failed_checks"].to_list()[6] == ["harmonize.map.is_gift"]
    assert sum(len(checks) for checks in frame["_failed_checks"]) == 1
    assert result.report.unmapped == {"is_gift": 1}


def test_map_uses_the_text_form_of_numbers() -> None:
    result = run(source("o", {"flag": [1, 0, 2]}), map={"flag": {"1": True, "0": False}})
    assert column(result, "flag") == [True, False, None]


def test_map_default_keep_keeps_unmapped_text() -> None:
    lf = source("o", {"status": ["PAID", "Paid", "new"]})
    result = run(lf, map={"status": {"PAID": "paid", "Paid": "paid"}}, map_default="keep")
    assert column(result, "status") == ["paid", "paid", "new"]
    assert result.report.unmapped == {"status": 0}


def test_map_default_keep_needs_string_values() -> None:
    with pytest.raises(InvalidArgument, match="map_default keep needs string values"):
        run(source("o", {"g": ["Y"]}), map={"g": GIFT}, map_default="keep")


def test_map_values_of_mixed_types_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="mix of value types"):
        run(source("o", {"g": ["Y"]}), map={"g": {"Y": True, "N": "no"}})


def test_unquoted_yaml_keys_get_a_hint() -> None:
    with pytest.raises(ValidationError, match="quote them in YAML"):
        HarmonizeSpec.model_validate({"map": {"g": {True: True}}})


# ── units ─────────────────────────────────────────────────────────────────────────────────


def test_unit_conversions_are_exact() -> None:
    lf = source(
        "o",
        {
            "price": [1234, 5, 99],
            "weight": [1500, 1, 250],
            "mass": [1.0, 10.0, 0.0],
            "temp": [212.0, 32.0, -40.0],
            "latency": [1500, 1, 0],
            "back": [100.0, 0.0, 37.0],
            "scaled": [3, 10, 0],
        },
    )
    result = run(
        lf,
        units={
            "price": {"from": "cents", "to": "units"},
            "weight": {"from": "g", "to": "kg"},
            "mass": {"from": "lb", "to": "kg"},
            "temp": {"from": "F", "to": "C"},
            "latency": {"from": "ms", "to": "s"},
            "back": {"from": "C", "to": "F"},
            "scaled": {"multiply": 0.5},
        },
    )
    frame = result.frame.collect()
    assert frame["price"].to_list() == [12.34, 0.05, 0.99]
    assert frame["weight"].to_list() == [1.5, 0.001, 0.25]
    assert frame["mass"].to_list() == [0.45359237, 4.5359237, 0.0]
    assert frame["temp"].to_list() == [100.0, 0.0, -40.0]
    assert frame["latency"].to_list() == [1.5, 0.001, 0.0]
    assert frame["back"].to_list() == [212.0, 32.0, 98.6]
    assert frame["scaled"].to_list() == [1.5, 5.0, 0.0]


def test_units_run_after_cast() -> None:
    lf = source("o", {"amt_cents": ["1234", "x"]})
    result = run(
        lf,
        rename={"amt_cents": "amount"},
        cast={"amount": "int64"},
        units={"amount": {"from": "cents", "to": "units"}},
    )
    assert column(result, "amount") == [12.34, None]


def test_every_conversion_has_its_inverse() -> None:
    assert all((to, frm) in CONVERSIONS for frm, to in CONVERSIONS)


def test_unknown_conversion_lists_known_ones() -> None:
    with pytest.raises(InvalidArgument) as info:
        run(source("o", {"w": [1.0]}), "o", units={"w": {"from": "stone", "to": "kg"}})
    message = str(info.value)
    assert "source 'o': harmonize.units.w: unknown conversion 'stone' -> 'kg'" in message
    assert "cents->units" in message
    assert "lb->kg" in message
    assert "F->C" in message


def test_units_on_text_say_to_cast_first() -> None:
    with pytest.raises(
        InvalidData, match=re.escape("add `w: float64` under sources.o.harmonize.cast")
    ):
        run(source("o", {"w": ["1"]}), "o", units={"w": {"multiply": 2}})


def test_harmonize_a_scanned_csv(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("OrderID,amt_cents,ordered_at,is_gift\n1,1234,05/03/2024 14:30,Y\n2,x,bad,no\n")
    lf = pl.scan_csv(path, infer_schema=False).with_columns(
        _source=pl.lit("orders"), _row=pl.int_range(pl.len())
    )
    spec = HarmonizeSpec.model_validate(
        {
            "rename": {"OrderID": "order_id", "amt_cents": "amount"},
            "cast": {
                "order_id": "int64",
                "amount": "float64",
                "ordered_at": {"type": "datetime", "format": "%d/%m/%Y %H:%M"},
            },
            "map": {"is_gift": GIFT},
            "units": {"amount": {"from": "cents", "to": "units"}},
            "defaults": {"channel": "web"},
        }
    )
    result = harmonize(lf, spec, source="orders")
    assert result.frame.collect().drop("_failed_checks").rows() == [
        (1, 12.34, datetime(2024, 3, 5, 14, 30), True, "orders", 0, "web"),
        (2, None, None, False, "orders", 1, "web"),
    ]
    assert result.report.cast_failures == {"order_id": 0, "amount": 1, "ordered_at": 1}
    assert result.report.unmapped == {"is_gift": 0}
