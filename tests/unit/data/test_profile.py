"""Column profiles, checked against numpy on the same data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from shipyard.data.profile import (
    HISTOGRAM_BINS,
    QUANTILES,
    TOP_VALUES,
    Profile,
    profile,
    sampled_profile,
)

N = 5_000


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(50.0, 12.0, N)
    x[rng.random(N) < 0.1] = np.nan  # becomes null below: 10 % missing
    words = np.array([f"w{i:02d}" for i in range(30)])
    weights = np.arange(30, 0, -1, dtype=float)
    return pl.DataFrame(
        {
            "x": pl.Series(x).fill_nan(None),
            "n": rng.integers(-100, 1_000, N),
            "s": rng.choice(words, N, p=weights / weights.sum()),
            "d": [dt.date(2024, 1, 1) + dt.timedelta(days=int(k)) for k in rng.integers(0, 60, N)],
            "flag": rng.random(N) < 0.25,
        }
    )


@pytest.fixture(scope="module")
def prof(frame: pl.DataFrame) -> Profile:
    return profile(frame.lazy(), exact_distinct=True)


def test_numeric_statistics_match_numpy(frame: pl.DataFrame, prof: Profile) -> None:
    values = frame["x"].drop_nulls().to_numpy()
    col = prof.column("x")
    assert col.kind == "numeric"
    assert col.dtype == "float64"
    assert col.count == values.size
    assert col.nulls == N - values.size
    assert col.null_rate == pytest.approx((N - values.size) / N)
    assert col.min == values.min()
    assert col.max == values.max()
    assert col.mean == pytest.approx(values.mean(), rel=1e-12)
    assert col.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)  # sample std, ddof=1
    expected = np.quantile(values, QUANTILES)  # numpy's default: linear interpolation
    assert [col.quantiles[q] for q in QUANTILES] == pytest.approx(expected, rel=1e-12)
    assert col.distinct == np.unique(values).size


def test_histogram_matches_numpy(frame: pl.DataFrame, prof: Profile) -> None:
    for name in ("x", "n"):
        values = frame[name].drop_nulls().to_numpy().astype(float)
        col = prof.column(name)
        assert col.histogram is not None
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
        assert col.histogram.edges == pytest.approx(edges)
        assert list(col.histogram.counts) == counts.tolist()
        assert sum(col.histogram.counts) == col.count


def test_integer_columns_keep_exact_min_max(frame: pl.DataFrame, prof: Profile) -> None:
    col = prof.column("n")
    assert col.dtype == "int64"
    assert isinstance(col.min, int)
    assert (col.min, col.max) == (frame["n"].min(), frame["n"].max())
    assert col.distinct == frame["n"].n_unique()


def test_top_values_of_strings_and_booleans(frame: pl.DataFrame, prof: Profile) -> None:
    col = prof.column("s")
    assert col.kind == "categorical"
    values, counts = np.unique(frame["s"].to_numpy(), return_counts=True)
    pairs = zip(values.tolist(), counts.tolist(), strict=True)
    expected = sorted(pairs, key=lambda vc: (-vc[1], vc[0]))
    assert list(col.top_values) == expected[:TOP_VALUES]
    assert col.distinct == 30
    assert col.mean is None
    assert col.histogram is None
    flags = prof.column("flag")
    trues = int(frame["flag"].sum())
    assert dict(flags.top_values) == {True: trues, False: N - trues}


def test_dates_get_iso_min_and_max(frame: pl.DataFrame, prof: Profile) -> None:
    col = prof.column("d")
    assert col.kind == "temporal"
    assert col.min == frame["d"].min().isoformat()  # type: ignore[union-attr]
    assert col.max == frame["d"].max().isoformat()  # type: ignore[union-attr]


def test_row_count_and_column_order(frame: pl.DataFrame, prof: Profile) -> None:
    assert prof.row_count == N
    assert [c.name for c in prof.columns] == frame.columns
    assert prof.distinct_exact
    with pytest.raises(KeyError):
        prof.column("missing")


def test_json_roundtrip(prof: Profile) -> None:
    text = json.dumps(prof.to_dict(), allow_nan=False)
    assert Profile.from_dict(json.loads(text)) == prof


def test_nan_infinity_and_constant_columns() -> None:
    frame = pl.DataFrame(
        {
            "f": [1.0, 2.0, float("nan"), float("inf"), None, 3.0],
            "c": [5, 5, 5, 5, 5, 5],
            "only_nan": [float("nan")] * 6,
        }
    )
    prof = profile(frame)
    f = prof.column("f")
    assert (f.count, f.nulls, f.nan_count) == (5, 1, 1)
    assert f.max == float("inf")
    assert f.histogram is not None
    assert sum(f.histogram.counts) == 4  # NaN is left out, +inf falls in the last bin
    assert f.histogram.edges[0] == 1.0
    assert f.histogram.edges[-1] == 3.0
    c = prof.column("c")
    assert c.std == 0.0
    assert c.histogram is not None
    counts, edges = np.histogram(np.full(6, 5.0), bins=HISTOGRAM_BINS)  # numpy: 5 ± 0.5
    assert c.histogram.edges == pytest.approx(edges)
    assert list(c.histogram.counts) == counts.tolist()
    assert prof.column("only_nan").histogram is None
    text = json.dumps(prof.to_dict(), allow_nan=False)  # inf and nan travel as strings
    again = Profile.from_dict(json.loads(text))
    assert again.column("f").max == float("inf")
    assert np.isnan(again.column("f").std)  # type: ignore[arg-type]


def test_empty_frame_and_other_types() -> None:
    frame = pl.DataFrame(
        {"x": pl.Series([], dtype=pl.Float64), "l": pl.Series([], dtype=pl.List(pl.Int64))}
    )
    prof = profile(frame.lazy())
    assert prof.row_count == 0
    x = prof.column("x")
    assert (x.count, x.nulls, x.mean, x.histogram, x.null_rate) == (0, 0, None, None, None)
    assert prof.column("l").kind == "other"
    assert prof.column("l").distinct is None


def test_approximate_distinct_is_close() -> None:
    frame = pl.DataFrame({"k": np.arange(20_000) % 3_000})
    estimate = profile(frame).column("k").distinct
    assert estimate is not None
    # HyperLogLog under the streaming engine: measured within ~11 % (documented as approximate)
    assert abs(estimate - 3_000) / 3_000 < 0.2
    assert not profile(frame).distinct_exact


def test_a_column_named_like_the_count_field_still_works() -> None:
    frame = pl.DataFrame({"n": ["a", "b", "a"], "n#count": [1.0, 2.0, 3.0]})
    prof = profile(frame)
    assert prof.column("n").top_values == (("a", 2), ("b", 1))
    assert prof.column("n#count").histogram is not None


def test_sampled_profile_keeps_the_row_count_and_says_it_sampled() -> None:
    rows = 10_000
    lf = pl.LazyFrame({"i": range(rows), "s": [f"v{k % 7}" for k in range(rows)]})
    sampled = sampled_profile(lf, rows, size=1_000, runs=10)
    assert sampled.row_count == rows
    assert sampled.sample_rows == 1_000
    i = sampled.column("i")
    assert i.count == 1_000
    # ten runs of 100 rows spread over the whole frame: the first and the last tenth are seen
    assert i.min == 0
    assert i.max == 9_099
    again = Profile.from_dict(json.loads(json.dumps(sampled.to_dict())))
    assert again == sampled


def test_sampled_profile_of_a_small_frame_is_the_whole_profile() -> None:
    lf = pl.LazyFrame({"i": range(500)})
    whole = sampled_profile(lf, 500, size=1_000)
    assert whole.sample_rows is None
    assert whole == profile(lf, exact_distinct=True)
    assert "sample_rows" not in whole.to_dict()
