"""The reference profile of the training data that a model bundle carries for drift monitoring.

Drift is a comparison: what the model sees in production against what it was trained on. The
bundle therefore stores, per feature, how the training rows were distributed, in a form the
monitor can compare new data with (population stability index, chi-squared, KS on the sample):

* numeric features: quantile bin edges learned from the training rows and the share of rows
  per bin. The first and last bins are open-ended, so later values outside the training range
  still land in a bin (and show up as drift instead of vanishing);
* categorical features (strings, categoricals, booleans): the shares of the ``top_k`` most
  frequent categories and one ``__other__`` share for the rest, unseen ones included;
* both: the share of missing values (null, or NaN for floats), reported apart from the bins;
* a bounded, seeded uniform sample of feature rows for tests that need raw values.

Bin shares are over the non-missing rows and sum to 1; ``bin_fractions`` bins new values with
the stored edges or categories so the two sides line up.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

OTHER = "__other__"
_CATEGORICAL_DTYPES = (pl.String, pl.Categorical, pl.Enum, pl.Boolean)


@dataclass(frozen=True)
class FeatureReference:
    """How one feature was distributed in the training rows.

    Attributes:
        name: The feature column.
        kind: ``numeric`` (binned by quantile edges) or ``categorical`` (by category).
        count: Non-missing training rows.
        null_fraction: Share of training rows that were missing (null or NaN).
        fractions: Share of the non-missing rows per bin; sums to 1 (all zeros when no row
            was present). Numeric: ``len(edges) + 1`` bins. Categorical: one per category, then
            the ``__other__`` share last.
        edges: Numeric only: inner bin edges, increasing. Bin ``i`` holds
            ``edges[i-1] <= x < edges[i]``; the first bin is open below, the last above.
        categories: Categorical only: the most frequent categories as text, in order of
            frequency.
        mean: Numeric only: mean of the finite values.
        std: Numeric only: standard deviation (``ddof=1``) of the finite values.
        min: Numeric only: smallest finite value.
        max: Numeric only: largest finite value.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    count: int
    null_fraction: float
    fractions: list[float]
    edges: list[float] | None = None
    categories: list[str] | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None

    @property
    def bin_labels(self) -> list[str]:
        """Readable names of the bins, aligned with ``fractions``."""
        if self.kind == "categorical":
            return [*(self.categories or []), OTHER]
        bounds = ["-inf", *(f"{e:.6g}" for e in self.edges or []), "inf"]
        return [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(bounds)]


@dataclass
class ReferenceProfile:
    """The reference profile of a model's training data.

    Attributes:
        n_rows: Training rows profiled.
        features: Feature name to its reference, in the order given.
        sample: A uniform sample of at most ``sample_size`` rows of the features. Kept out of
            ``to_dict``: the bundle writer stores it as Parquet next to the profile.
        bins: Quantile bins asked for (numeric features may get fewer: edges are unique).
        top_k: Categories kept per categorical feature.
        seed: Seed of the sample.
    """

    n_rows: int
    features: dict[str, FeatureReference]
    sample: pl.DataFrame
    bins: int
    top_k: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe profile without the sample."""
        return {
            "n_rows": self.n_rows,
            "bins": self.bins,
            "top_k": self.top_k,
            "seed": self.seed,
            "sample_rows": self.sample.height,
            "features": {name: asdict(ref) for name, ref in self.features.items()},
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], sample: pl.DataFrame | None = None
    ) -> ReferenceProfile:
        """Rebuild a profile from ``to_dict`` output and the separately stored sample.

        Raises:
            InvalidArgument: The dict is not a reference profile.
        """
        try:
            features = {name: FeatureReference(**ref) for name, ref in data["features"].items()}
            return cls(
                n_rows=int(data["n_rows"]),
                features=features,
                sample=sample if sample is not None else pl.DataFrame(),
                bins=int(data["bins"]),
                top_k=int(data["top_k"]),
                seed=int(data["seed"]),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidArgument(f"not a reference profile: {e!r}") from e


def _kind(dtype: pl.DataType, name: str) -> Literal["numeric", "categorical"]:
    if isinstance(dtype, _CATEGORICAL_DTYPES):
        return "categorical"
    if dtype.is_numeric():
        return "numeric"
    raise InvalidArgument(
        f"feature {name!r} has type {dtype}; a reference profile takes numbers, strings, "
        "categoricals and booleans: cast it or leave it out of the features"
    )


def _as_series(values: pl.Series | Sequence[Any] | NDArray[Any]) -> pl.Series:
    return values if isinstance(values, pl.Series) else pl.Series(values=values, strict=False)


def _numeric_values(series: pl.Series, name: str) -> NDArray[np.float64]:
    """Non-missing values as floats (NaN counts as missing; infinities are kept)."""
    try:
        floats = series.cast(pl.Float64).to_numpy()
    except pl.exceptions.PolarsError as e:
        raise InvalidArgument(f"feature {name!r} should be numeric: {e}") from e
    return np.asarray(floats[~np.isnan(floats)], dtype=np.float64)


def _categorical_values(series: pl.Series) -> pl.Series:
    return series.cast(pl.String).drop_nulls()


def _numeric_fractions(values: NDArray[np.float64], edges: Sequence[float]) -> list[float]:
    bounds = np.r_[-np.inf, np.asarray(edges, dtype=np.float64), np.inf]
    counts, _ = np.histogram(values, bins=bounds)
    return _shares(counts, values.size)


def _categorical_fractions(values: pl.Series, categories: Sequence[str]) -> list[float]:
    counts = dict(values.value_counts().iter_rows())
    known = [counts.get(c, 0) for c in categories]
    return _shares(np.array([*known, values.len() - sum(known)]), values.len())


def _shares(counts: NDArray[np.int64], total: int) -> list[float]:
    if total == 0:
        return [0.0] * len(counts)
    return [float(c) / total for c in counts]


def _numeric_reference(name: str, series: pl.Series, bins: int, n: int) -> FeatureReference:
    values = _numeric_values(series, name)
    finite = values[np.isfinite(values)]
    reference = FeatureReference(
        name=name,
        kind="numeric",
        count=int(values.size),
        null_fraction=(n - values.size) / n if n else 0.0,
        fractions=_numeric_fractions(values, []),
        edges=[],
    )
    if not finite.size:
        return reference
    inner = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = [float(e) for e in np.unique(inner)]
    return replace(
        reference,
        fractions=_numeric_fractions(values, edges),
        edges=edges,
        mean=float(finite.mean()),
        std=float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        min=float(finite.min()),
        max=float(finite.max()),
    )


def _categorical_reference(name: str, series: pl.Series, top_k: int, n: int) -> FeatureReference:
    values = _categorical_values(series)
    counts = values.value_counts()
    value_col, count_col = counts.columns
    # Most frequent first; ties broken by the category so the profile is deterministic.
    ranked = counts.sort([count_col, value_col], descending=[True, False]).head(top_k)
    categories = [str(v) for v in ranked[value_col].to_list()]
    return FeatureReference(
        name=name,
        kind="categorical",
        count=values.len(),
        null_fraction=(n - values.len()) / n if n else 0.0,
        fractions=_categorical_fractions(values, categories),
        categories=categories,
    )


def build_reference(
    frame: pl.DataFrame,
    features: Sequence[str],
    *,
    bins: int = 10,
    sample_size: int = 5000,
    top_k: int = 50,
    seed: int = 0,
) -> ReferenceProfile:
    """Profile the training rows of a model for later drift checks.

    Args:
        frame: The training rows.
        features: The model's feature columns.
        bins: Quantile bins per numeric feature (fewer when values repeat).
        sample_size: Rows kept in the sample at most.
        top_k: Categories kept per categorical feature; the rest share ``__other__``.
        seed: Seed of the sample; equal seeds and data give equal samples.

    Returns:
        The profile, with the sample attached.

    Raises:
        InvalidArgument: A feature is missing or of an unsupported type, or a count is out of
            range.
    """
    if bins < 1 or top_k < 1 or sample_size < 0:
        raise InvalidArgument("bins and top_k must be >= 1 and sample_size >= 0")
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InvalidArgument(f"feature(s) {', '.join(missing)} not in the training frame")
    n = frame.height
    references: dict[str, FeatureReference] = {}
    for name in features:
        series = frame.get_column(name)
        if _kind(series.dtype, name) == "numeric":
            references[name] = _numeric_reference(name, series, bins, n)
        else:
            references[name] = _categorical_reference(name, series, top_k, n)
    sample = frame.select(list(features)).sample(n=min(sample_size, n), seed=seed)
    return ReferenceProfile(n, references, sample, bins, top_k, seed)


def bin_fractions(
    reference_feature: FeatureReference, values: pl.Series | Sequence[Any] | NDArray[Any]
) -> list[float]:
    """Bin new values of a feature like the reference did; shares of the non-missing values.

    Args:
        reference_feature: The feature's reference.
        values: New values of the feature (serving inputs, a later dataset).

    Returns:
        Share per bin, aligned with ``reference_feature.fractions``; all zeros when every
        value is missing.

    Raises:
        InvalidArgument: Values of a numeric feature that are not numbers.
    """
    series = _as_series(values)
    if reference_feature.kind == "numeric":
        numbers = _numeric_values(series, reference_feature.name)
        return _numeric_fractions(numbers, reference_feature.edges or [])
    return _categorical_fractions(_categorical_values(series), reference_feature.categories or [])
