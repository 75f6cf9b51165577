"""The reference profile of training data, checked against numpy and polars on the same data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.train.reference import OTHER, ReferenceProfile, bin_fractions, build_reference

N = 4000


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(11)
    x = rng.normal(50.0, 10.0, N)
    x[:200] = np.nan  # NaN counts as missing, like null
    words = np.array([f"w{i:02d}" for i in range(40)])
    weights = np.arange(40, 0, -1, dtype=float)
    return pl.DataFrame(
        {
            "x": x,
            "count": rng.poisson(2.0, N),  # few distinct values: edges collapse
            "word": pl.Series(rng.choice(words, N, p=weights / weights.sum())),
            "flag": rng.random(N) < 0.3,
            "maybe": pl.Series([None if i % 4 == 0 else float(i) for i in range(N)]),
            "target": rng.integers(0, 2, N),
        }
    ).with_columns(pl.col("word").cast(pl.Categorical))


FEATURES = ["x", "count", "word", "flag", "maybe"]


@pytest.fixture(scope="module")
def profile(frame: pl.DataFrame) -> ReferenceProfile:
    return build_reference(frame, FEATURES, bins=10, sample_size=500, top_k=10, seed=3)


def test_numeric_feature(frame: pl.DataFrame, profile: ReferenceProfile) -> None:
    ref = profile.features["x"]
    values = frame["x"].to_numpy()
    present = values[~np.isnan(values)]
    assert ref.kind == "numeric"
    assert ref.count == present.size == N - 200
    assert ref.null_fraction == pytest.approx(200 / N)
    assert ref.edges == pytest.approx(list(np.quantile(present, np.linspace(0, 1, 11)[1:-1])))
    assert len(ref.fractions) == len(ref.edges or []) + 1 == 10
    assert sum(ref.fractions) == pytest.approx(1.0)
    assert ref.fractions == pytest.approx([0.1] * 10, abs=0.002)  # quantile bins: equal shares
    assert ref.mean == pytest.approx(present.mean())
    assert ref.std == pytest.approx(present.std(ddof=1))
    assert (ref.min, ref.max) == (present.min(), present.max())
    assert ref.bin_labels[0].startswith("[-inf")
    assert ref.bin_labels[-1].endswith("inf)")


def test_repeated_values_give_fewer_bins(frame: pl.DataFrame, profile: ReferenceProfile) -> None:
    ref = profile.features["count"]
    edges = ref.edges or []
    assert edges == sorted(set(edges))
    assert len(edges) < 9
    # Left-closed bins: the share of rows below the first edge is exact.
    counts = frame["count"].to_numpy()
    assert ref.fractions[0] == pytest.approx(np.mean(counts < edges[0]))
    assert sum(ref.fractions) == pytest.approx(1.0)
    assert profile.features["maybe"].null_fraction == pytest.approx(0.25)


def test_categorical_features(frame: pl.DataFrame, profile: ReferenceProfile) -> None:
    ref = profile.features["word"]
    counts = frame["word"].cast(pl.String).value_counts(sort=True)
    top = counts.head(10)
    assert ref.kind == "categorical"
    assert ref.categories == top["word"].to_list()
    assert ref.fractions[:-1] == pytest.approx((top["count"] / N).to_list())
    assert ref.fractions[-1] == pytest.approx(1 - top["count"].sum() / N)  # __other__
    assert ref.bin_labels[-1] == OTHER
    flag = profile.features["flag"]
    assert flag.kind == "categorical"
    assert set(flag.categories or []) == {"true", "false"}
    assert flag.fractions[-1] == 0.0
    for feature in profile.features.values():
        assert sum(feature.fractions) == pytest.approx(1.0)


def test_bin_fractions_of_training_data_reproduce_the_profile(
    frame: pl.DataFrame, profile: ReferenceProfile
) -> None:
    for name, ref in profile.features.items():
        assert bin_fractions(ref, frame[name]) == pytest.approx(ref.fractions), name
    # Plain sequences and numpy arrays work as well as Series.
    assert bin_fractions(profile.features["x"], frame["x"].to_numpy()) == pytest.approx(
        profile.features["x"].fractions
    )
    assert bin_fractions(profile.features["word"], frame["word"].cast(pl.String).to_list()) == (
        pytest.approx(profile.features["word"].fractions)
    )


def test_bin_fractions_of_new_data(profile: ReferenceProfile) -> None:
    x = profile.features["x"]
    far = bin_fractions(x, [-1e9, 1e9, 1e9, float("inf"), None, float("nan")])
    assert far[0] == pytest.approx(0.25)  # open-ended bins
    assert far[-1] == pytest.approx(0.75)
    word = profile.features["word"]
    unseen = bin_fractions(word, ["never-seen", "w00", None, "w00"])
    assert unseen[-1] == pytest.approx(1 / 3)  # unseen categories land in __other__
    assert unseen[word.categories.index("w00")] == pytest.approx(2 / 3)  # type: ignore[union-attr]
    assert bin_fractions(x, [None, None]) == [0.0] * 10
    with pytest.raises(InvalidArgument, match="numeric"):
        bin_fractions(x, ["a", "b"])


def test_sample_is_bounded_and_seeded(frame: pl.DataFrame, profile: ReferenceProfile) -> None:
    assert profile.sample.columns == FEATURES
    assert profile.sample.height == 500
    again = build_reference(frame, FEATURES, sample_size=500, seed=3)
    assert again.sample.equals(profile.sample)
    assert again.to_dict()["features"]["x"] == profile.to_dict()["features"]["x"]
    other = build_reference(frame, FEATURES, sample_size=500, seed=4)
    assert not other.sample.equals(profile.sample)
    assert build_reference(frame, ["x"], sample_size=10 * N).sample.height == N
    assert build_reference(frame, ["x"], sample_size=0).sample.height == 0


def test_round_trip_through_json(profile: ReferenceProfile) -> None:
    data = profile.to_dict()
    assert "sample" not in data
    assert data["sample_rows"] == 500
    restored = ReferenceProfile.from_dict(
        json.loads(json.dumps(data, allow_nan=False)), profile.sample
    )
    assert restored.features == profile.features
    assert restored.sample.equals(profile.sample)
    assert (restored.n_rows, restored.bins, restored.top_k, restored.seed) == (N, 10, 10, 3)
    assert ReferenceProfile.from_dict(data).sample.height == 0
    with pytest.raises(InvalidArgument, match="not a reference profile"):
        ReferenceProfile.from_dict({"n_rows": 1})


def test_edge_cases() -> None:
    empty = build_reference(pl.DataFrame({"x": pl.Series([], dtype=pl.Float64)}), ["x"])
    assert empty.features["x"].fractions == [0.0]
    assert empty.features["x"].mean is None
    nulls = build_reference(pl.DataFrame({"s": [None, None]}, schema={"s": pl.String}), ["s"])
    assert nulls.features["s"].null_fraction == 1.0
    assert nulls.features["s"].fractions == [0.0]
    with pytest.raises(InvalidArgument, match="not in the training frame"):
        build_reference(pl.DataFrame({"x": [1.0]}), ["y"])
    with pytest.raises(InvalidArgument, match="cast it"):
        build_reference(pl.DataFrame({"d": [dt.date(2024, 1, 1)]}), ["d"])
    with pytest.raises(InvalidArgument, match="bins"):
        build_reference(pl.DataFrame({"x": [1.0]}), ["x"], bins=0)
