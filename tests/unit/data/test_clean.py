"""The clean step: its math checked against numpy/scipy, dedup rules, counts that add up."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.stats import median_abs_deviation

from shipyard.core.errors import InvalidArgument
from shipyard.data.clean import CleanResult, CleanSpec, clean

FAILED = "_failed_checks"
RNG = np.random.default_rng(7)
VALUES = np.round(np.concatenate([RNG.normal(50, 10, 200), [400.0, -300.0, 180.0]]), 3)


def run(data: dict[str, Any] | pl.DataFrame, spec: dict[str, Any]) -> CleanResult:
    frame = data if isinstance(data, pl.DataFrame) else pl.DataFrame(data)
    result = clean(frame.lazy(), CleanSpec.model_validate(spec))
    report = result.report
    assert report.rows_in == report.rows_out + report.rows_quarantined + report.rows_deduplicated
    assert result.frame.collect().height == report.rows_out
    assert result.quarantined.collect().height == report.rows_quarantined
    return result


def test_the_documented_step_parses() -> None:
    spec = CleanSpec.model_validate(
        {
            "impute": {
                "amount": "median",
                "channel": {"constant": "web"},
                "price": {"ffill_by": "product_id"},
            },
            "outliers": {"amount": {"method": "iqr", "k": 3, "action": "clip"}},
            "dedup": {"key": ["order_id"], "keep_latest_by": "updated_at"},
            "normalize": {"email": {"trim": True, "case": "lower", "unicode": "NFKC"}},
        }
    )
    assert spec.outliers["amount"].k == 3


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"coerce": {"a": "int65"}}, "coerce.a: unknown type"),
        ({"dedup": {"keep_latest_by": "t"}}, "keep_latest_by needs a key"),
        ({"impute": {"a": "average"}}, "impute.a"),
        ({"outliers": {"a": {"method": "iqr", "k": 0}}}, "outliers.a.k"),
        ({"outliers": {"a": {"action": "drop"}}}, "outliers.a.action"),
        ({"normalize": {"a": {"unicode": "NFX"}}}, "normalize.a.unicode"),
        ({"imputee": {}}, "imputee"),
    ],
)
def test_invalid_specs_are_refused(bad: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match="validation error") as caught:
        CleanSpec.model_validate(bad)
    text = str(caught.value).replace("\n  ", ".").replace("\n", " ")
    assert fragment in text or fragment in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"impute": {"nope": "mean"}}, r"clean\.impute: no column 'nope'; columns are a, s"),
        ({"impute": {"s": "median"}}, r"clean\.impute\.s: median needs a numeric"),
        ({"impute": {"a": {"constant": "web"}}}, r"clean\.impute\.a: 'web' does not fit"),
        ({"outliers": {"s": {}}}, r"clean\.outliers\.s: needs a numeric column"),
        ({"normalize": {"a": {"trim": True}}}, r"clean\.normalize\.a: needs a string"),
        ({"dedup": {"key": "nope"}}, r"clean\.dedup: no column 'nope'"),
        ({"impute": {"a": {"ffill_by": "s"}}}, r"clean\.impute\.a: no column '_row'"),
    ],
)
def test_specs_that_do_not_fit_the_frame_name_the_column(
    spec: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        run({"a": [1.0, None], "s": ["x", None]}, spec)


def test_mean_median_and_constant_imputation_match_numpy() -> None:
    values = [3.0, None, 1.0, 10.0, None, 4.0]
    present = np.array([v for v in values if v is not None])
    result = run(
        {"mean": values, "median": values, "const": values},
        {"impute": {"mean": "mean", "median": "median", "const": {"constant": -1}}},
    )
    frame = result.frame.collect()
    assert frame["mean"][1] == pytest.approx(np.mean(present))
    assert frame["median"][4] == pytest.approx(np.median(present))
    assert frame["const"].to_list() == [3.0, -1.0, 1.0, 10.0, -1.0, 4.0]
    assert result.report.imputed == {"mean": 2, "median": 2, "const": 2}
    assert result.report.statistics["impute.median"] == {"value": pytest.approx(3.5)}


def test_integer_columns_keep_their_type_with_a_rounded_statistic() -> None:
    frame = run({"n": [1, 2, None, 5]}, {"impute": {"n": "mean"}}).frame.collect()
    assert frame.schema["n"] == pl.Int64
    assert frame["n"].to_list() == [1, 2, round(8 / 3), 5]


def test_mode_picks_the_smallest_of_tied_values_and_works_on_strings() -> None:
    frame = run(
        {"s": ["b", "a", None, "b", "a", "c"], "n": [2, 2, 1, 1, None, 3]},
        {"impute": {"s": "mode", "n": "mode"}},
    ).frame.collect()
    assert frame["s"][2] == "a"
    assert frame["n"][4] == 1


def test_forward_fill_by_key_in_row_order_or_a_given_order() -> None:
    data = {
        "_row": [0, 1, 2, 3, 4, 5],
        "t": [5, 4, 3, 2, 1, 0],
        "product": ["p", "q", "p", "q", "p", "p"],
        "price": [1.0, None, None, 7.0, 2.0, None],
    }
    by_row = run(data, {"impute": {"price": {"ffill_by": "product"}}})
    assert by_row.frame.collect()["price"].to_list() == [1.0, None, 1.0, 7.0, 2.0, 2.0]
    assert by_row.report.imputed == {"price": 2}
    by_t = run(data, {"impute": {"price": {"ffill_by": ["product"], "order_by": "t"}}})
    # in t order, p is row5 (None), row4 (2.0), row2 (None), row0; q is row3 (7.0), row1 (None)
    assert by_t.frame.collect()["price"].to_list() == [1.0, 7.0, 2.0, 7.0, 2.0, None]


def test_iqr_bounds_match_numpy_quantiles_and_clip() -> None:
    k, values = 1.5, VALUES
    q1, q3 = np.quantile(values, [0.25, 0.75])
    low, high = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    result = run({"x": VALUES}, {"outliers": {"x": {"method": "iqr", "k": k, "action": "clip"}}})
    stats = result.report.statistics["outliers.x"]
    assert (stats["q1"], stats["q3"]) == (pytest.approx(q1), pytest.approx(q3))
    assert (stats["lower"], stats["upper"]) == (pytest.approx(low), pytest.approx(high))
    assert result.report.outliers == {"x": int(((values < low) | (values > high)).sum())}
    clipped = result.frame.collect()["x"].to_numpy()
    assert np.allclose(clipped, np.clip(VALUES, low, high))


def test_outlier_bounds_are_fitted_on_observed_values_not_imputed_ones() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 100.0] + [None] * 20
    observed = np.array([v for v in values if v is not None])
    result = run(
        {"x": values},
        {"impute": {"x": "median"}, "outliers": {"x": {"method": "iqr", "action": "flag"}}},
    )
    q1, q3 = np.quantile(observed, [0.25, 0.75])
    stats = result.report.statistics["outliers.x"]
    assert (stats["q1"], stats["q3"]) == (q1, q3)
    flags = result.frame.collect()["x_outlier"].to_list()
    assert flags == [False, False, False, False, True] + [False] * 20  # 20 imputed 3.0s are fine
    assert result.report.outliers == {"x": 1}


def test_robust_z_matches_scipy_median_abs_deviation_and_flags() -> None:
    threshold = 3.5
    z = (VALUES - np.median(VALUES)) / median_abs_deviation(VALUES, scale="normal")
    expected = np.abs(z) > threshold
    result = run(
        {"x": VALUES},
        {"outliers": {"x": {"method": "robust_z", "threshold": threshold, "action": "flag"}}},
    )
    frame = result.frame.collect()
    assert frame["x_outlier"].to_list() == expected.tolist()
    assert frame["x"].to_list() == VALUES.tolist()  # flag changes no value
    stats = result.report.statistics["outliers.x"]
    assert stats["mad"] == pytest.approx(median_abs_deviation(VALUES))
    assert result.report.outliers == {"x": int(expected.sum())}


def test_quarantine_action_moves_rows_and_names_every_outlier_column() -> None:
    data = {
        "_row": list(range(10)),
        "a": [1.0, 2, 3, 2, 1, 2, 3, 2, 100, 2],
        "b": [5.0, 6, 4, 5, 6, 4, 5, -90, 5, 6],
        "c": [1.0, 1, 1, 1, 1, 1, 1, 1, 1, 1000],
    }
    result = run(
        data,
        {
            "outliers": {
                "a": {"action": "quarantine"},
                "b": {"action": "quarantine", "method": "robust_z"},
                "c": {"action": "clip", "method": "robust_z"},  # MAD 0: nothing is an outlier
            }
        },
    )
    quarantined = result.quarantined.collect()
    assert quarantined["_row"].to_list() == [7, 8]
    assert quarantined[FAILED].to_list() == [["outlier.b"], ["outlier.a"]]
    assert result.report.outliers == {"a": 1, "b": 1, "c": 0}
    assert result.frame.collect()["c"].to_list()[-1] == 1000
    assert FAILED not in result.frame.collect().columns


def test_clipping_an_integer_column_stays_inside_the_bounds() -> None:
    values = [10, 11, 12, 13, 14, 15, 16, 100, -50]
    result = run({"n": values}, {"outliers": {"n": {"action": "clip", "k": 0.4}}})
    stats = result.report.statistics["outliers.n"]
    clipped = result.frame.collect()["n"]
    assert clipped.dtype == pl.Int64
    assert clipped.max() == math.floor(stats["upper"])
    assert clipped.min() == math.ceil(stats["lower"])


def test_exact_duplicates_ignore_bookkeeping_columns_and_keep_the_first() -> None:
    result = run(
        {
            "_row": [0, 1, 2, 3],
            "_source": ["a", "b", "a", "a"],
            "x": [1, 1, 2, 1],
            "y": ["p", "p", "p", "q"],
        },
        {"dedup": {}},
    )
    assert result.frame.collect()["_row"].to_list() == [0, 2, 3]
    assert result.report.rows_deduplicated == 1


def test_dedup_by_key_keeps_the_first_or_the_latest() -> None:
    data = {
        "_row": [0, 1, 2, 3, 4, 5, 6],
        "id": [1, 2, 1, 3, 2, 1, 3],
        "updated": [5, 1, 9, None, 1, 7, 2],
    }
    first = run(data, {"dedup": {"key": "id"}})
    assert first.frame.collect()["_row"].to_list() == [0, 1, 3]
    latest = run(data, {"dedup": {"key": ["id"], "keep_latest_by": "updated"}})
    # id 1: updated 9 wins; id 2: a tie at 1, the later row wins; id 3: null is oldest
    assert latest.frame.collect()["_row"].to_list() == [2, 4, 6]
    assert latest.report.rows_deduplicated == 4


def test_coercion_counts_values_that_became_null() -> None:
    result = run({"n": ["1", "x", "", None, " 7 "]}, {"coerce": {"n": "int64"}})
    assert result.frame.collect()["n"].to_list() == [1, None, None, None, 7]
    assert result.report.coerced_to_null == {"n": 1}


def test_coerced_columns_can_then_be_imputed() -> None:
    result = run({"n": ["1", "x", "3"]}, {"coerce": {"n": "float64"}, "impute": {"n": "mean"}})
    assert result.frame.collect()["n"].to_list() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        ({"trim": True}, "  a b \t", "a b"),
        ({"case": "lower"}, "ÄbC", "äbc"),
        ({"case": "upper"}, "straße", "STRASSE"),
        ({"unicode": "NFKC"}, "\uff21\uff42", "Ab"),
        ({"unicode": "NFC"}, "e\u0301", "\u00e9"),
        ({"unicode": "NFKC", "trim": True, "case": "lower"}, "\u3000\uff21B ", "ab"),
    ],
)
def test_string_normalization(rule: dict[str, Any], text: str, expected: str) -> None:
    frame = run({"s": [text, None]}, {"normalize": {"s": rule}}).frame.collect()
    assert frame["s"].to_list() == [expected, None]
    if "unicode" in rule and "case" not in rule and "trim" not in rule:
        assert expected == unicodedata.normalize(rule["unicode"], text)


def test_normalization_happens_before_dedup() -> None:
    result = run(
        {"email": ["A@x.com", " a@x.com", "b@x.com"]},
        {"normalize": {"email": {"trim": True, "case": "lower"}}, "dedup": {"key": "email"}},
    )
    assert result.frame.collect()["email"].to_list() == ["a@x.com", "b@x.com"]


_NUM = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1e9]))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 5), _NUM, st.integers(0, 3)), max_size=40),
    action=st.sampled_from(["clip", "flag", "quarantine"]),
    method=st.sampled_from(["iqr", "robust_z"]),
)
def test_rows_are_conserved_on_random_frames(
    rows: list[tuple[int, float | None, int]], action: str, method: str
) -> None:
    frame = pl.DataFrame(
        rows, schema={"id": pl.Int64, "x": pl.Float64, "t": pl.Int64}, orient="row"
    )
    result = run(
        frame.with_row_index("_row"),
        {
            "dedup": {"key": "id", "keep_latest_by": "t"},
            "impute": {"x": "median"},
            "outliers": {"x": {"method": method, "action": action, "k": 1.0, "threshold": 2.0}},
        },
    )
    report = result.report
    assert report.rows_in == len(rows)
    assert report.rows_deduplicated == len(rows) - len({r[0] for r in rows})
    out = result.frame.collect()
    assert out["id"].is_duplicated().sum() == 0
    if action == "quarantine":
        assert all(
            names == ["outlier.x"] for names in result.quarantined.collect()[FAILED].to_list()
        )


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 4)),
            st.one_of(st.none(), st.integers(0, 2)),
            st.one_of(st.none(), st.integers(0, 3)),
        ),
        max_size=40,
    ),
    parts=st.integers(1, 3),
    latest=st.booleans(),
)
def test_dedup_matches_a_window_over_the_key(
    rows: list[tuple[int | None, int | None, int | None]],
    parts: int,
    latest: bool,
) -> None:
    # The key search may be split into parts (bounded memory); the rows kept must not change.
    import shipyard.data.clean as module

    frame = pl.DataFrame(
        rows, schema={"a": pl.Int64, "b": pl.Int64, "t": pl.Int64}, orient="row"
    ).with_row_index("_row")
    rule: dict[str, Any] = {"key": ["a", "b"]} | ({"keep_latest_by": "t"} if latest else {})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "_PART", max(1, math.ceil(len(rows) / parts)))
        out = run(frame, {"dedup": rule}).frame.collect()
    i = pl.col("_row")
    kept = i.sort_by(["t", "_row"], nulls_last=False).last() if latest else i.min()
    expected = frame.filter(i == kept.over(["a", "b"]))
    assert out.equals(expected)
