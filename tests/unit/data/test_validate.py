"""Validation: every check type, policies, dataset checks, outputs, and rows conserved."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.core.errors import InvalidArgument, InvalidData, ValidationFailed
from shipyard.data.contract import parse_contract
from shipyard.data.validate import FAILED, Output, ValidationResult, validate, validate_to_parquet

NOW = datetime(2024, 1, 10, 12, 0)


def run(data: dict[str, list[Any]], contract: dict[str, Any], **kwargs: Any) -> ValidationResult:
    return validate(pl.LazyFrame(data), parse_contract(contract), now=NOW, **kwargs)


def failed_lists(result: ValidationResult) -> list[list[str]]:
    return result.quarantined.collect()[FAILED].to_list()


def assert_conserved(result: ValidationResult) -> tuple[pl.DataFrame, pl.DataFrame]:
    accepted, quarantined = result.accepted.collect(), result.quarantined.collect()
    report = result.report()
    assert report.rows_in == report.rows_accepted + report.rows_quarantined
    assert (accepted.height, quarantined.height) == (report.rows_accepted, report.rows_quarantined)
    return accepted, quarantined


@pytest.mark.parametrize(
    ("rule", "values", "failing"),
    [
        ({"type": "int64", "nullable": False}, [1, None, 3], [1]),
        ({"type": "int64", "min": 2}, [1, 2, None], [0]),
        ({"type": "int64", "max": 2}, [1, 2, 3], [2]),
        ({"type": "float64", "min": 0.5}, [0.4, 0.5, 1.0], [0]),
        ({"type": "int64", "min": 0.5}, [0, 1, 2], [0]),
        ({"type": "string", "allowed": ["a", "b"]}, ["a", "c", None], [1]),
        ({"type": "category", "allowed": ["a", "b"]}, ["a", "c", "b"], [1]),
        ({"type": "string", "regex": "^[^@]+@[^@]+$"}, ["a@b", "ab", None], [1]),
        ({"type": "string", "regex": "x"}, ["axb", "ab", "x"], [1]),  # a search, not a match
        ({"type": "int64", "unique": True}, [1, 2, 1, None, None], [0, 2]),
        ({"type": "date", "min": date(2024, 1, 2)}, [date(2024, 1, 1), date(2024, 1, 2)], [0]),
        ({"type": "int64"}, ["1", "one", " 3 "], [1]),
    ],
)
def test_each_column_check_quarantines_exactly_the_failing_rows(
    rule: dict[str, Any], values: list[Any], failing: list[int]
) -> None:
    result = run({"x": values, "_row": list(range(len(values)))}, {"columns": {"x": rule}})
    accepted, quarantined = assert_conserved(result)
    assert quarantined["_row"].to_list() == failing
    assert accepted["_row"].to_list() == [i for i in range(len(values)) if i not in failing]
    for names in quarantined[FAILED].to_list():
        assert len(names) == 1
        assert names[0].startswith("x.")


def test_every_failed_check_of_a_row_is_listed_in_contract_order() -> None:
    result = run(
        {
            "order_id": ["1", "1", "x", None],
            "amount": ["-5", "10", "1e9", "3"],
            "status": ["lost", "new", "new", "new"],
            "email": ["nope", "a@b", "a@b", "a@b"],
            "shipped_at": ["2024-01-01", None, None, None],
            "ordered_at": ["2024-01-02", "2024-01-02", "2024-01-02", "2024-01-02"],
        },
        {
            "columns": {
                "order_id": {"type": "int64", "nullable": False, "unique": True},
                "amount": {"type": "float64", "min": 0, "max": 100000},
                "status": {"type": "string", "allowed": ["new", "paid"]},
                "email": {"type": "string", "regex": "@", "policy": "warn"},
                "shipped_at": {"type": "date"},
                "ordered_at": {"type": "date"},
            },
            "checks": [{"name": "shipped_after_ordered", "expr": "shipped_at >= ordered_at"}],
        },
    )
    assert failed_lists(result) == [
        [
            "order_id.unique",
            "amount.min",
            "status.allowed",
            "email.regex",
            "check.shipped_after_ordered",
        ],
        ["order_id.unique"],
        ["order_id.type", "amount.max"],
        ["order_id.not_null"],
    ]
    report = result.report()
    assert report.failures["order_id.unique"] == 2
    assert report.failures["email.regex"] == 1
    assert report.failures["amount.type"] == 0
    assert report.warnings == {"email.regex": 1}
    assert report.rows_accepted == 0


def test_string_input_is_cast_to_the_contract_types_and_quarantine_keeps_the_input_text() -> None:
    result = run(
        {
            "n": ["1", "two", "3", ""],
            "f": ["1.5", "2", "x", "4"],
            "b": ["true", "0", "yes", "FALSE"],
            "d": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-02-30"],
            "t": ["2024-01-01 10:00:00", "2024-01-01T11:00", "2024-01-01", "2024-01-01T10:00:00Z"],
            "extra": ["a", "b", "c", "d"],
        },
        {
            "columns": {
                "n": {"type": "int64"},
                "f": {"type": "float64"},
                "b": {"type": "bool"},
                "d": {"type": "date"},
                "t": {"type": "datetime"},
            }
        },
    )
    accepted, quarantined = assert_conserved(result)
    assert accepted.schema == pl.Schema(
        {
            "n": pl.Int64,
            "f": pl.Float64,
            "b": pl.Boolean,
            "d": pl.Date,
            "t": pl.Datetime("us"),
            "extra": pl.String,
        }
    )
    assert accepted.rows() == [(1, 1.5, True, date(2024, 1, 1), datetime(2024, 1, 1, 10), "a")]
    assert quarantined.drop(FAILED).rows() == [
        ("two", "2", "0", "2024-01-02", "2024-01-01T11:00", "b"),
        ("3", "x", "yes", "2024-01-03", "2024-01-01", "c"),
        ("", "4", "FALSE", "2024-02-30", "2024-01-01T10:00:00Z", "d"),
    ]
    assert quarantined[FAILED].to_list() == [["n.type"], ["f.type", "b.type"], ["d.type"]]
    assert quarantined.schema[FAILED] == pl.List(pl.String)


def test_blank_text_is_missing_so_only_not_null_fails_it() -> None:
    result = run({"n": ["", "  ", "1"]}, {"columns": {"n": {"type": "int64", "nullable": False}}})
    assert failed_lists(result) == [["n.not_null"], ["n.not_null"]]


def test_uniqueness_quarantines_every_occurrence_and_ignores_keys_with_nulls() -> None:
    result = run(
        {
            "a": [1, 1, 1, 2, None, None],
            "b": ["x", "x", "y", "x", "x", "x"],
            "_row": [0, 1, 2, 3, 4, 5],
        },
        {"columns": {}, "unique": [["a", "b"]]},
    )
    accepted, quarantined = assert_conserved(result)
    assert quarantined["_row"].to_list() == [0, 1]
    assert quarantined[FAILED].to_list() == [["unique(a,b)"], ["unique(a,b)"]]
    assert accepted["_row"].to_list() == [2, 3, 4, 5]


def test_sql_checks_treat_null_as_passing_like_sql_check_constraints() -> None:
    result = run(
        {"a": [1, 2, None], "b": [2, 1, 5]},
        {"checks": [{"name": "a_below_b", "expr": "a < b"}]},
    )
    assert failed_lists(result) == [["check.a_below_b"]]
    assert result.report().rows_accepted == 2


def test_sql_checks_see_the_typed_values_not_the_text() -> None:
    result = run(
        {"a": ["10", "9"], "b": ["9", "10"]},  # as text, "10" < "9"
        {
            "columns": {"a": {"type": "int64"}, "b": {"type": "int64"}},
            "checks": [{"name": "a_gt_b", "expr": "a > b"}],
        },
    )
    assert failed_lists(result) == [["check.a_gt_b"]]


def test_sql_checks_on_unknown_columns_or_of_non_boolean_type_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"check\.x: .*columns are a"):
        run({"a": [1]}, {"checks": [{"name": "x", "expr": "nope > 1"}]})
    with pytest.raises(InvalidArgument, match=r"check\.x: 'a \+ 1' gives Int64"):
        run({"a": [1]}, {"checks": [{"name": "x", "expr": "a + 1"}]})


def test_a_sql_check_never_touches_anything_but_the_frame(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    contract = {"checks": [{"name": "x", "expr": f"a <> '{canary}'"}]}
    result = run({"a": ["'; DROP TABLE t; --", 'x"; DROP TABLE t; --']}, contract)
    assert result.report().rows_accepted == 2
    assert not canary.exists()


def test_missing_contract_columns_are_named_with_the_columns_present() -> None:
    with pytest.raises(
        ValidationFailed, match=r"lacks contract column.s. amount, status; it has a, b"
    ):
        run(
            {"a": [1], "b": [2]},
            {"columns": {"amount": {"type": "float64"}, "status": {"type": "string"}}},
        )


def test_extra_columns_are_kept_in_input_order_and_types() -> None:
    result = run({"z": [1.5], "a": ["1"], "_row": [0]}, {"columns": {"a": {"type": "int64"}}})
    assert result.accepted.collect().schema == pl.Schema(
        {"z": pl.Float64, "a": pl.Int64, "_row": pl.Int64}
    )


def test_fail_policy_raises_with_names_counts_and_examples() -> None:
    data = {"amount": [-1.0, 5.0, -2.0, -3.0], "_row": [0, 1, 2, 3], "id": [1, 2, 3, 3]}
    contract = {
        "columns": {"amount": {"type": "float64", "min": 0, "policy": "fail"}},
        "unique": [["id"]],
    }
    with pytest.raises(ValidationFailed) as caught:
        run(data, contract)
    message = str(caught.value)
    assert "amount.min: 3 row(s)" in message
    assert "unique(id): " not in message  # quarantine-policy checks are not the failure
    assert message.count("example:") == 3
    assert "'_row': 0" in message
    assert "'amount.min'" in message


def test_fail_policy_examples_are_capped_at_five() -> None:
    with pytest.raises(ValidationFailed) as caught:
        run(
            {"a": list(range(20))},
            {"columns": {"a": {"type": "int64", "max": -1}}, "policy": "fail"},
        )
    assert "a.max: 20 row(s)" in str(caught.value)
    assert str(caught.value).count("example:") == 5


def test_warn_policy_keeps_the_row_and_counts_it() -> None:
    result = run(
        {"email": ["a@b", "nope", "x"], "n": [1, 2, -1]},
        {
            "columns": {
                "email": {"type": "string", "regex": "@", "policy": "warn"},
                "n": {"type": "int64", "min": 0},
            }
        },
    )
    accepted, quarantined = assert_conserved(result)
    assert accepted["email"].to_list() == ["a@b", "nope"]
    assert quarantined[FAILED].to_list() == [["email.regex", "n.min"]]
    assert result.report().warnings == {"email.regex": 2}
    assert not result.report().ok


def test_rows_failed_upstream_are_quarantined_with_their_names_first() -> None:
    upstream = pl.Series(FAILED, [[], ["harmonize.cast.a"], []], dtype=pl.List(pl.String))
    frame = pl.LazyFrame({"a": [1, None, -1]}).with_columns(upstream)
    result = validate(frame, parse_contract({"columns": {"a": {"type": "int64", "min": 0}}}))
    accepted, quarantined = assert_conserved(result)
    assert FAILED not in accepted.columns
    assert quarantined[FAILED].to_list() == [["harmonize.cast.a"], ["a.min"]]
    assert result.report().rows_failed_upstream == 1


def test_a_malformed_failed_checks_column_is_refused() -> None:
    with pytest.raises(InvalidData, match="must be list"):
        validate(pl.LazyFrame({FAILED: ["x"]}), parse_contract({}))


@pytest.mark.parametrize(
    ("bounds", "rows", "fails"),
    [({"min": 1}, 0, True), ({"min": 1}, 1, False), ({"max": 2}, 3, True), ({"max": 2}, 2, False)],
)
def test_row_count_bounds(bounds: dict[str, int], rows: int, fails: bool) -> None:
    contract = {"row_count": {**bounds, "policy": "warn"}}
    report = run({"a": list(range(rows))}, contract).report()
    assert [f.name for f in report.dataset_failures] == (["row_count"] if fails else [])
    assert report.rows_accepted == rows  # warn keeps everything
    with pytest.raises(ValidationFailed, match="row_count") if fails else _no_error():
        run({"a": list(range(rows))}, {"row_count": {**bounds, "policy": "fail"}})


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


@pytest.mark.parametrize(
    ("newest", "stale"),
    [
        (datetime(2024, 1, 8, 12, 0), False),  # exactly max_age old
        (datetime(2024, 1, 8, 11, 59), True),
        (datetime(2024, 1, 12), False),  # from the future: not stale
    ],
)
def test_freshness_against_an_explicit_now(newest: datetime, stale: bool) -> None:
    contract = {
        "columns": {"t": {"type": "datetime"}},
        "freshness": {"column": "t", "max_age": "2d", "policy": "warn"},
    }
    report = run({"t": [datetime(2023, 1, 1), newest]}, contract).report()
    assert [f.name for f in report.dataset_failures] == (["freshness"] if stale else [])


def test_freshness_of_dates_counts_from_midnight_utc_and_of_empty_columns_fails() -> None:
    contract = {
        "columns": {"d": {"type": "date"}},
        "freshness": {"column": "d", "max_age": "6h", "policy": "fail"},
    }
    with pytest.raises(ValidationFailed, match=r"freshness of 'd'.*12:00:00 old"):
        validate(
            pl.LazyFrame({"d": [date(2024, 1, 10)]}),
            parse_contract(contract),
            now=datetime(2024, 1, 10, 12, 0),
        )
    with pytest.raises(ValidationFailed, match="no values"):
        run({"d": [None]}, contract)


def test_freshness_with_quarantine_policy_holds_back_the_whole_batch() -> None:
    contract = {
        "columns": {"t": {"type": "datetime"}, "n": {"type": "int64", "min": 0}},
        "freshness": {"column": "t", "max_age": "1h"},
    }
    result = run({"t": ["2024-01-01T00:00", "2024-01-02T00:00"], "n": [1, -1]}, contract)
    accepted, quarantined = assert_conserved(result)
    assert accepted.height == 0
    assert quarantined[FAILED].to_list() == [["freshness"], ["n.min", "freshness"]]
    assert quarantined["t"].to_list() == ["2024-01-01T00:00", "2024-01-02T00:00"]


def test_validate_to_parquet_writes_what_validate_returns(tmp_path: Path) -> None:
    data = {"a": ["1", "x", "3", "-4"], "_row": [0, 1, 2, 3]}
    contract = parse_contract({"columns": {"a": {"type": "int64", "min": 0}}})
    result = validate(pl.LazyFrame(data), contract)
    report = validate_to_parquet(
        pl.LazyFrame(data), contract, tmp_path / "ok.parquet", tmp_path / "bad.parquet"
    )
    assert report == result.report()
    assert pl.read_parquet(tmp_path / "ok.parquet").equals(result.accepted.collect())
    assert pl.read_parquet(tmp_path / "bad.parquet").equals(result.quarantined.collect())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "ok.parquet"]


def test_validate_to_parquet_writes_nothing_when_a_fail_check_fails(tmp_path: Path) -> None:
    contract = parse_contract({"columns": {"a": {"type": "int64", "min": 0}}, "policy": "fail"})
    with pytest.raises(ValidationFailed, match=r"(?s)a\.min: 1 row.*example: \{'a': '-1'"):
        validate_to_parquet(
            pl.LazyFrame({"a": ["1", "-1"]}), contract, tmp_path / "a.pq", tmp_path / "q.pq"
        )
    assert list(tmp_path.iterdir()) == []


def test_validate_to_parquet_with_a_batch_level_quarantine(tmp_path: Path) -> None:
    contract = parse_contract({"columns": {"a": {"type": "int64"}}, "row_count": {"min": 5}})
    report = validate_to_parquet(
        pl.LazyFrame({"a": [1, 2]}), contract, tmp_path / "a.pq", tmp_path / "q.pq"
    )
    assert (report.rows_accepted, report.rows_quarantined) == (0, 2)
    assert pl.read_parquet(tmp_path / "q.pq")[FAILED].to_list() == [["row_count"]] * 2


def test_result_sink_parquet_writes_both_frames(tmp_path: Path) -> None:
    result = run({"a": [1, -1, 2]}, {"columns": {"a": {"type": "int64", "min": 0}}})
    result.sink_parquet(tmp_path / "a.pq", tmp_path / "q.pq")
    assert pl.read_parquet(tmp_path / "a.pq")["a"].to_list() == [1, 2]
    assert pl.read_parquet(tmp_path / "q.pq")[FAILED].to_list() == [["a.min"]]


def test_accepted_and_quarantined_stream_with_the_same_result(tmp_path: Path) -> None:
    csv = tmp_path / "orders.csv"
    pl.DataFrame({"id": [1, 2, 2, 4], "amount": ["1.5", "x", "3", "-1"]}).write_csv(csv)
    contract = parse_contract(
        {
            "columns": {
                "id": {"type": "int64", "unique": True},
                "amount": {"type": "float64", "min": 0},
            }
        }
    )
    result = validate(pl.scan_csv(csv, infer_schema=False), contract)
    streamed = result.quarantined.collect(engine="streaming")
    assert streamed.equals(result.quarantined.collect(engine="in-memory"))
    assert streamed[FAILED].to_list() == [
        ["id.unique", "amount.type"],
        ["id.unique"],
        ["amount.min"],
    ]


def test_the_report_is_json_ready() -> None:
    report = run(
        {"a": [1, -1]},
        {"columns": {"a": {"type": "int64", "min": 0}}, "row_count": {"min": 5, "policy": "warn"}},
    ).report()
    loaded = json.loads(json.dumps(report.to_dict()))
    assert loaded["failures"] == {"a.type": 0, "a.min": 1}
    assert loaded["dataset_failures"][0]["name"] == "row_count"


CONSERVATION_CONTRACT = parse_contract(
    {
        "columns": {
            "n": {"type": "int64", "nullable": False, "min": -5, "max": 5, "unique": True},
            "f": {"type": "float64", "min": 0.0, "policy": "warn"},
            "s": {"type": "string", "allowed": ["a", "b"], "regex": "^a"},
        },
        "unique": [["s", "f"]],
        "checks": [{"name": "n_vs_f", "expr": "n < f"}],
    }
)
_TEXT = st.one_of(
    st.none(),
    st.integers(-10, 10).map(str),
    st.sampled_from(["", " ", "x", "1.5", "nan", "1e3", "a", "b", "ab"]),
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_TEXT, _TEXT, _TEXT), max_size=30))
def test_rows_are_conserved_on_random_frames(rows: list[tuple[str | None, ...]]) -> None:
    frame = pl.LazyFrame(
        rows, schema={"n": pl.String, "f": pl.String, "s": pl.String}, orient="row"
    )
    frame = frame.with_row_index("_row")
    result = validate(frame, CONSERVATION_CONTRACT)
    accepted, quarantined = assert_conserved(result)
    assert accepted.height + quarantined.height == len(rows)
    assert sorted([*accepted["_row"], *quarantined["_row"]]) == list(range(len(rows)))
    assert all(names for names in quarantined[FAILED].to_list())
    report = result.report()
    for name, count in report.failures.items():
        listed = sum(name in names for names in quarantined[FAILED].to_list())
        if report.policies[name] == "warn":
            assert listed <= count
        else:
            assert listed == count
    # what was accepted obeys the contract
    assert accepted["n"].null_count() == 0
    assert accepted.filter((pl.col("n") < -5) | (pl.col("n") > 5)).height == 0
    assert accepted.filter(~pl.col("s").is_in(["a"]) & pl.col("s").is_not_null()).height == 0
    assert accepted["n"].is_duplicated().sum() == 0


def test_now_defaults_to_the_current_time() -> None:
    contract = {
        "columns": {"t": {"type": "datetime_utc"}},
        "freshness": {"column": "t", "max_age": "1h", "policy": "warn"},
    }
    fresh = datetime.now().astimezone() - timedelta(minutes=5)
    report = validate(pl.LazyFrame({"t": [fresh]}), parse_contract(contract)).report()
    assert report.dataset_failures == ()


def test_validate_to_parquet_shapes_the_accepted_rows_and_sets_the_options(tmp_path: Path) -> None:
    data = {"a": ["1", "x", "3"], "_row": [0, 1, 2]}
    contract = parse_contract({"columns": {"a": {"type": "int64"}}})
    earlier = pl.LazyFrame({"a": [100]})
    output = Output(
        lambda accepted: pl.concat([earlier, accepted.drop("_row")]),
        {"compression": "lz4", "row_group_size": 1},
    )
    report = validate_to_parquet(
        pl.LazyFrame(data), contract, tmp_path / "a.pq", tmp_path / "q.pq", output=output
    )
    assert (report.rows_accepted, report.rows_quarantined) == (2, 1)
    assert pl.read_parquet(tmp_path / "a.pq").to_dict(as_series=False) == {"a": [100, 1, 3]}
    assert pq.ParquetFile(tmp_path / "a.pq").metadata.num_row_groups == 3
    assert pq.ParquetFile(tmp_path / "q.pq").metadata.row_group(0).column(0).compression == "LZ4"
    assert pl.read_parquet(tmp_path / "q.pq")["_row"].to_list() == [1]
