"""The contract model: parsing, check names and policies, and refusing bad configuration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument
from shipyard.data.contract import Contract, lenient_cast, parse_check, parse_contract

DOC_EXAMPLE: dict[str, Any] = {
    "columns": {
        "order_id": {"type": "int64", "nullable": False, "unique": True},
        "amount": {"type": "float64", "min": 0, "max": 100000},
        "status": {"type": "string", "allowed": ["new", "paid", "shipped"]},
        "email": {"type": "string", "regex": "^[^@]+@[^@]+$", "policy": "warn"},
        "ordered_at": {"type": "datetime"},
    },
    "unique": [["customer_id", "ordered_at"]],
    "checks": [{"name": "shipped_after_ordered", "expr": "shipped_at >= ordered_at"}],
    "row_count": {"min": 1},
    "freshness": {"column": "ordered_at", "max_age": "2d"},
    "policy": "quarantine",
}


def test_the_documented_example_parses_with_stable_check_names() -> None:
    contract = parse_contract(DOC_EXAMPLE)
    names = [c.name for c in contract.row_checks()]
    assert names == [
        "order_id.type",
        "order_id.not_null",
        "order_id.unique",
        "amount.type",
        "amount.min",
        "amount.max",
        "status.type",
        "status.allowed",
        "email.type",
        "email.regex",
        "ordered_at.type",
        "unique(customer_id,ordered_at)",
        "check.shipped_after_ordered",
    ]
    assert contract.freshness is not None
    assert contract.freshness.max_age == timedelta(days=2)
    assert contract.dataset_checks() == {"row_count": "quarantine", "freshness": "quarantine"}


def test_policies_resolve_check_then_column_then_contract() -> None:
    contract = parse_contract(
        {
            "columns": {
                "a": {"type": "int64", "min": 0, "policy": "warn"},
                "b": {"type": "int64", "max": 1},
            },
            "checks": [
                {"name": "x", "expr": "a < b", "policy": "fail"},
                {"name": "y", "expr": "a > 0"},
            ],
            "row_count": {"min": 1, "policy": "warn"},
            "freshness": None,
            "policy": "fail",
        }
    )
    policies = {c.name: c.policy for c in contract.row_checks()}
    assert policies == {
        "a.type": "warn",
        "a.min": "warn",
        "b.type": "fail",
        "b.max": "fail",
        "check.x": "fail",
        "check.y": "fail",
    }
    assert contract.dataset_checks() == {"row_count": "warn"}


def test_the_default_policy_is_quarantine() -> None:
    assert Contract().policy == "quarantine"
    assert Contract().row_checks() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("6h", timedelta(hours=6)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1.5h", timedelta(minutes=90)),
        ("P2D", timedelta(days=2)),
        (3600, timedelta(hours=1)),
    ],
)
def test_freshness_max_age_durations(value: object, expected: timedelta) -> None:
    contract = parse_contract(
        {
            "columns": {"t": {"type": "datetime"}},
            "freshness": {"column": "t", "max_age": value},
        }
    )
    assert contract.freshness is not None
    assert contract.freshness.max_age == expected


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"columns": {"amount": {"type": "int65"}}}, "columns.amount: unknown type 'int65'"),
        ({"columns": {"amount": {"type": "int64", "min": 5, "max": 1}}}, "columns.amount: min 5"),
        ({"columns": {"email": {"type": "string", "regex": "(["}}}, "columns.email: regex"),
        ({"columns": {"email": {"type": "int64", "regex": "x"}}}, "columns.email: regex needs"),
        ({"columns": {"n": {"type": "string", "min": 1}}}, "columns.n: min/max need"),
        ({"columns": {"n": {"type": "int64", "allowed": ["x"]}}}, "columns.n: allowed values"),
        ({"columns": {"n": {"type": "int64", "allowed": [1.5]}}}, "columns.n: allowed values"),
        ({"columns": {"n": {"type": "int64", "allowed": []}}}, "columns.n.allowed"),
        ({"columns": {"n": {"type": "int64", "colour": "red"}}}, "columns.n.colour"),
        ({"columns": {"n": {"type": "int64", "policy": "ignore"}}}, "columns.n.policy"),
        ({"columns": {"__x": {"type": "int64"}}}, "reserved"),
        ({"unique": [[]]}, "contract: unique []: list one or more"),
        ({"unique": [["a", "a"]]}, "distinct"),
        ({"checks": [{"name": "x", "expr": "a +"}]}, "check 'x': SQL expression 'a +'"),
        ({"checks": [{"name": "bad name", "expr": "a > 1"}]}, "check name 'bad name'"),
        (
            {"checks": [{"name": "x", "expr": "a > 1"}, {"name": "x", "expr": "a > 2"}]},
            "repeated: x",
        ),
        ({"row_count": {"min": 5, "max": 1}}, "row_count: min 5 is greater than max 1"),
        ({"row_count": {"min": -1}}, "row_count.min"),
        ({"freshness": {"column": "t", "max_age": "2d"}}, "freshness column 't' must be listed"),
        (
            {"columns": {"t": {"type": "int64"}}, "freshness": {"column": "t", "max_age": "1d"}},
            "freshness column 't'",
        ),
        (
            {"columns": {"t": {"type": "date"}}, "freshness": {"column": "t", "max_age": "2x"}},
            "freshness.max_age",
        ),
        (
            {"columns": {"t": {"type": "date"}}, "freshness": {"column": "t", "max_age": "-1d"}},
            "max_age must be positive",
        ),
        ({"policy": "ignore"}, "contract.policy"),
    ],
)
def test_invalid_configuration_is_refused_naming_where(
    config: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidArgument, match="invalid contract") as caught:
        parse_contract(config)
    assert fragment in str(caught.value)


def test_direct_construction_raises_pydantic_errors_with_the_column_in_the_location() -> None:
    with pytest.raises(ValidationError) as caught:
        Contract.model_validate({"columns": {"amount": {"type": "int65"}}})
    assert caught.value.errors()[0]["loc"] == ("columns", "amount")


@pytest.mark.parametrize(
    "sql",
    [
        "1; DROP TABLE x",
        "a > 1; DROP TABLE orders; --",
        "x = 'a'; delete from t",
        "a > (SELECT max(a) FROM orders)",
        "a IN (SELECT a FROM t)",
        "",
        "DROP TABLE x",
    ],
)
def test_sql_injection_shaped_checks_are_refused(sql: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_contract({"checks": [{"name": "x", "expr": sql}]})
    with pytest.raises(ValueError, match="SQL expression"):
        parse_check(sql)


def test_a_harmless_sql_expression_becomes_a_polars_expression() -> None:
    expr = parse_check("a >= 1 AND b IN ('x', 'y') AND c IS NOT NULL")
    frame = pl.DataFrame({"a": [1, 0], "b": ["x", "x"], "c": [1, 1]})
    assert frame.select(expr.alias("ok"))["ok"].to_list() == [True, False]


def test_bounds_and_allowed_values_may_be_dates() -> None:
    contract = parse_contract(
        {"columns": {"d": {"type": "date", "min": date(2024, 1, 1), "allowed": [date(2024, 1, 2)]}}}
    )
    assert contract.columns["d"].min == date(2024, 1, 1)


def cast(values: list[str | None], target: pl.DataType) -> pl.DataFrame:
    frame = pl.LazyFrame(
        {"x": values, "keep": range(len(values))}, schema_overrides={"x": pl.String}
    )
    return lenient_cast(frame, {"x": target}, {"x": "bad"}).collect()


@pytest.mark.parametrize(
    ("values", "target", "expected", "failed"),
    [
        ([" 12 ", "x", "", None, "1.5"], pl.Int64(), [12, None, None, None, None], [0, 1, 0, 0, 1]),
        (["1.5", "1e3", "nan?"], pl.Float64(), [1.5, 1000.0, None], [0, 0, 1]),
        (
            ["TRUE", "false", "1", "0", "yes"],
            pl.Boolean(),
            [True, False, True, False, None],
            [0, 0, 0, 0, 1],
        ),
        (
            ["2024-01-02", "2024-13-01", "02/01/2024"],
            pl.Date(),
            [date(2024, 1, 2), None, None],
            [0, 1, 1],
        ),
        (["a", " b ", ""], pl.Categorical(), ["a", "b", None], [0, 0, 0]),
    ],
)
def test_lenient_cast_reads_csv_text(
    values: list[str | None], target: pl.DataType, expected: list[object], failed: list[int]
) -> None:
    out = cast(values, target)
    assert out.columns == ["x", "keep", "bad"]  # no temporary columns left
    assert out.schema["x"] == target
    assert out["x"].to_list() == expected
    assert out["bad"].cast(pl.Int8).to_list() == failed


def test_lenient_cast_of_non_text_columns_uses_polars_casts() -> None:
    frame = pl.LazyFrame({"x": [1.0, 2.5, None, 1e30]})
    out = lenient_cast(frame, {"x": pl.Int32()}, {"x": "bad"}).collect()
    assert out["x"].to_list() == [1, 2, None, None]
    assert out["bad"].to_list() == [False, False, False, True]


def test_lenient_cast_reads_iso_datetimes_and_converts_offsets_to_utc() -> None:
    texts = [
        "2024-01-02 10:00:00",
        "2024-01-02T10:00",
        " 2024-01-02 10:00 ",
        "2024-01-02T12:00:00+02:00",
        "2024-01-02T10:00:00.5Z",
        "2024-01-02",
        "soon",
        "2024-01-02 25:00",
        None,
    ]
    naive = cast(texts, pl.Datetime("us"))
    expected = [
        datetime(2024, 1, 2, 10),
        datetime(2024, 1, 2, 10),
        datetime(2024, 1, 2, 10),
        datetime(2024, 1, 2, 10),
        datetime(2024, 1, 2, 10, 0, 0, 500000),
        datetime(2024, 1, 2),
        None,
        None,
        None,
    ]
    assert naive["x"].to_list() == expected
    assert naive["bad"].to_list() == [False] * 6 + [True, True, False]
    aware = cast(texts, pl.Datetime("us", "UTC"))
    assert aware["x"].to_list() == [None if e is None else e.replace(tzinfo=UTC) for e in expected]
