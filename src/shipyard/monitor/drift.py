"""Data and prediction drift of one window of served rows against the model's training data.

The reference is what the bundle carries (``shipyard.train.reference``): quantile bins, category
shares, missing share and range per feature, plus a bounded sample of training rows. Monitoring
never reloads the training data. Per window and feature:

* numeric: PSI on the training quantile bins, two-sample Kolmogorov-Smirnov and Wasserstein
  distance against the reference sample, missing rate, out-of-range rate (outside the training
  [min, max]);
* categorical: PSI on the category shares, chi-square (2 x categories table) and
  Jensen-Shannon distance against the shares, missing rate, out-of-domain rate (values never
  seen in training);
* the model's output, as two more columns: ``__prediction__`` (labels, or values for
  regression) and, for binary models, ``__probability__``. Their reference comes from the
  bundle predicting its own reference sample (``DriftReference.from_bundle``), so it is the
  output distribution on training-like inputs, computed once per bundle.

The computation lives in ``shipyard.monitor.drift_stats`` (vectorized, pinned to scipy); this
module prepares the reference once, feeds columns in bounded 2-D blocks, and judges the results
against ``DriftConfig`` thresholds. KS and chi-square p-values form one family per window,
Bonferroni-corrected by default, so that a report over 25 features does not raise a false alarm
in a fifth of all windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.monitor import drift_stats
from shipyard.monitor.drift_config import DriftConfig, FeatureThresholds
from shipyard.monitor.drift_report import (
    PREDICTION,
    PROBABILITY,
    DriftReport,
    FeatureDrift,
    FeatureStatus,
    StatisticResult,
)
from shipyard.train.reference import FeatureReference, ReferenceProfile, build_reference

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from shipyard.monitor.windows import Window
    from shipyard.registry.bundle import Bundle

__all__ = [
    "DriftConfig",
    "DriftReference",
    "FeatureThresholds",
    "compute_drift",
    "drift_for_window",
    "output_profile",
]

BLOCK_BYTES = 32 << 20
"""Numeric columns are sorted in blocks of about this size, so memory stays a few columns."""


@dataclass(frozen=True)
class DriftReference:
    """A reference profile prepared for repeated drift checks (samples sorted once).

    Build it once per model version and reuse it for every window.

    Attributes:
        features: Feature (and output) name to its training profile, in order.
        numeric: Prepared numeric references (edges, range, sorted sample) by name.
        known_categories: All training categories of a categorical feature, where known
            (the bundle's contract lists them); otherwise the out-of-domain rate is read
            from the ``__other__`` bin when training had no other values.
        has_sample: Whether a reference sample was available (KS and Wasserstein need it).
    """

    features: Mapping[str, FeatureReference]
    numeric: Mapping[str, drift_stats.NumericReference]
    known_categories: Mapping[str, frozenset[str]]
    has_sample: bool

    @classmethod
    def from_profile(
        cls,
        profile: ReferenceProfile,
        *,
        outputs: ReferenceProfile | None = None,
        known_categories: Mapping[str, Sequence[str]] | None = None,
    ) -> DriftReference:
        """Prepare ``profile`` (and an output profile, if given) for drift checks."""
        features = dict(profile.features)
        samples = dict.fromkeys(profile.features, profile.sample)
        if outputs is not None:
            features.update(outputs.features)
            samples.update(dict.fromkeys(outputs.features, outputs.sample))
        numeric: dict[str, drift_stats.NumericReference] = {}
        for name, ref in features.items():
            if ref.kind != "numeric":
                continue
            frame = samples[name]
            sample = None
            if name in frame.columns:
                values = frame.get_column(name).cast(pl.Float64).to_numpy()
                sample = drift_stats.SortedSample.of(values)
            numeric[name] = drift_stats.NumericReference(
                edges=np.asarray(ref.edges or [], dtype=np.float64),
                low=ref.min,
                high=ref.max,
                sample=sample,
            )
        return cls(
            features=features,
            numeric=numeric,
            known_categories={k: frozenset(v) for k, v in (known_categories or {}).items()},
            has_sample=bool(profile.sample.height) and bool(profile.sample.width),
        )

    @classmethod
    def from_bundle(cls, bundle: Bundle, *, outputs: bool = True) -> DriftReference:
        """Read the bundle's reference; with ``outputs``, add the model's output reference.

        Raises:
            InvalidArgument: The bundle carries no reference profile.
        """
        data = bundle.reference()
        if data is None:
            raise InvalidArgument(
                f"bundle {bundle.sha256[:12]} has no reference profile, so drift has nothing "
                "to compare with; bundles written by `shipyard train` carry one"
            )
        sample = bundle.reference_sample()
        profile = ReferenceProfile.from_dict(data, sample)
        # the stored profile's keys may be sorted; reports follow the model's feature order
        order = {name: i for i, name in enumerate(bundle.manifest.feature_names)}
        ranked = sorted(profile.features.items(), key=lambda kv: order.get(kv[0], len(order)))
        profile.features = dict(ranked)
        categories = {f.name: f.categories for f in bundle.manifest.features if f.categories}
        output = output_profile(bundle, profile) if outputs and profile.sample.height else None
        return cls.from_profile(profile, outputs=output, known_categories=categories)

    def schema(self) -> dict[str, pl.DataType]:
        """Column types a window should be decoded to: Float64 numeric, String categorical."""
        return {
            name: pl.Float64() if ref.kind == "numeric" else pl.String()
            for name, ref in self.features.items()
        }


def output_profile(bundle: Bundle, profile: ReferenceProfile) -> ReferenceProfile:
    """Profile what the model predicts for its own reference sample.

    Labels are profiled as text (the prediction log stores them as JSON, read back as text), so
    class ``1`` and ``"1"`` compare equal; regression values as numbers.
    """
    predicted = bundle.predict(profile.sample)
    columns: dict[str, pl.Series] = {}
    if bundle.manifest.task == "regression":
        columns[PREDICTION] = pl.Series(PREDICTION, predicted.labels, dtype=pl.Float64)
    else:
        columns[PREDICTION] = pl.Series(PREDICTION, predicted.labels.tolist(), strict=False).cast(
            pl.String
        )
        if bundle.manifest.task == "binary" and predicted.proba is not None:
            columns[PROBABILITY] = pl.Series(PROBABILITY, predicted.proba[:, -1])
    frame = pl.DataFrame(columns)
    return build_reference(
        frame, frame.columns, bins=profile.bins, sample_size=frame.height, top_k=profile.top_k
    )


def drift_for_window(
    reference: DriftReference,
    window: Window,
    *,
    model: str,
    config: DriftConfig | None = None,
    variant: str | None = None,
) -> DriftReport:
    """``compute_drift`` over a window of ``shipyard.monitor.windows``, with its bounds."""
    return compute_drift(
        reference,
        window.frame,
        config=config,
        model=model,
        version=window.version,
        variant=variant,
        window_start_ms=window.start_ms,
        window_end_ms=window.end_ms,
    )


def compute_drift(
    reference: DriftReference,
    frame: pl.DataFrame,
    *,
    config: DriftConfig | None = None,
    model: str = "",
    version: int | None = None,
    variant: str | None = None,
    window_start_ms: int | None = None,
    window_end_ms: int | None = None,
) -> DriftReport:
    """Compare one window of rows with the reference, feature by feature.

    Args:
        reference: The prepared reference (``DriftReference.from_bundle``).
        frame: The window's rows: one column per feature (``shipyard.monitor.windows``
            decodes the prediction log into this); missing columns count as all missing.
        config: Thresholds; the defaults when None.
        model: Model name, for the report and its observations.
        version: Model version that served the window, if one.
        variant: Serving variant, if one.
        window_start_ms: Window start; default: the smallest ``ts_ms`` (or 0).
        window_end_ms: Window end (exclusive); default: the largest ``ts_ms`` + 1 (or 0).

    Returns:
        The judged report.

    Raises:
        InvalidArgument: The window has no rows, or a numeric feature holds text.
    """
    config = config or DriftConfig()
    if frame.height == 0:
        raise InvalidArgument(
            "the window has no rows, so there is no distribution to compare; choose a longer "
            "window or check that the model served requests in it"
        )
    start, end = _bounds(frame, window_start_ms, window_end_ms)
    names = [n for n in reference.features if not config.skips(n)]
    numeric = _numeric(reference, frame, [n for n in names if n in reference.numeric])
    categorical = _categorical(
        reference, frame, [n for n in names if reference.features[n].kind == "categorical"]
    )
    tests = sum(np.isfinite(c.ks_pvalue) for c in numeric.values()) + sum(
        "chi2_pvalue" in c for c in categorical.values()
    )
    alpha_per_test = (
        config.alpha / tests if config.correction == "bonferroni" and tests else config.alpha
    )
    judge = _Judge(config, alpha_per_test, frame.height)
    rows = tuple(
        judge.numeric(name, reference, numeric[name], name in frame.columns)
        if name in numeric
        else judge.categorical(name, reference, categorical[name], name in frame.columns)
        for name in names
    )
    return DriftReport(
        model=model,
        version=version,
        variant=variant,
        window_start_ms=start,
        window_end_ms=end,
        rows=frame.height,
        features=rows,
        tests=int(tests),
        correction=config.correction,
        alpha=config.alpha,
        alpha_per_test=alpha_per_test,
        notes=_notes(reference, config, frame.height),
    )


def _bounds(frame: pl.DataFrame, start: int | None, end: int | None) -> tuple[int, int]:
    if "ts_ms" in frame.columns and frame.get_column("ts_ms").null_count() < frame.height:
        ts = frame.get_column("ts_ms")
        low, high = int(ts.min()), int(ts.max()) + 1  # type: ignore[arg-type]
    else:
        low = high = 0
    return (low if start is None else start), (high if end is None else end)


def _notes(reference: DriftReference, config: DriftConfig, rows: int) -> tuple[str, ...]:
    notes = []
    if not reference.has_sample:
        notes.append("the reference has no sample: KS and Wasserstein were skipped")
    if rows < config.min_rows:
        notes.append(
            f"the window has {rows} rows, fewer than min_rows={config.min_rows}: "
            "statistics were measured but not judged"
        )
    unknown = sorted(set(config.features) - set(reference.features))
    if unknown:
        notes.append(f"thresholds given for features the reference lacks: {', '.join(unknown)}")
    return tuple(notes)


def _float_column(frame: pl.DataFrame, name: str) -> NDArray[np.float64]:
    series = frame.get_column(name)
    if not (series.dtype.is_numeric() or series.dtype == pl.Boolean or series.dtype == pl.Null):
        raise InvalidArgument(
            f"feature {name!r} is numeric in the reference but the window holds "
            f"{series.dtype}; decode the window with DriftReference.schema()"
        )
    return np.asarray(series.cast(pl.Float64).to_numpy(), dtype=np.float64)


def _numeric(
    reference: DriftReference, frame: pl.DataFrame, names: Sequence[str]
) -> dict[str, drift_stats.NumericColumn]:
    """Numeric statistics of ``names``, sorted in blocks of at most ``BLOCK_BYTES``."""
    n = frame.height
    present = [name for name in names if name in frame.columns]
    out = {name: _absent(n, reference.numeric[name]) for name in names if name not in present}
    per_block = max(1, BLOCK_BYTES // (8 * n))
    for i in range(0, len(present), per_block):
        chunk = present[i : i + per_block]
        block = drift_stats.sorted_block([_float_column(frame, name) for name in chunk])
        results = drift_stats.numeric_columns(block, [reference.numeric[c] for c in chunk])
        del block
        out.update(zip(chunk, results, strict=True))
    return out


def _absent(rows: int, ref: drift_stats.NumericReference) -> drift_stats.NumericColumn:
    bins = np.zeros(ref.edges.size + 1, dtype=np.int64)
    return drift_stats.NumericColumn(rows, rows, 0, 0, 0, bins, np.nan, np.nan, "", np.nan)


def _categorical(
    reference: DriftReference, frame: pl.DataFrame, names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Counts per category (``__other__`` last) and, where both sides have values, statistics."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        ref = reference.features[name]
        categories = ref.categories or []
        counts = np.zeros(len(categories) + 1, dtype=np.float64)
        unseen = np.nan
        present = 0
        if name in frame.columns:
            values = frame.get_column(name).cast(pl.String).drop_nulls()
            present = values.len()
            tally = values.value_counts(name="n")
            codes = tally.get_column(name).replace_strict(
                categories,
                list(range(len(categories))),
                default=len(categories),
                return_dtype=pl.Int64,
            )
            counts = np.bincount(
                codes.to_numpy(), weights=tally.get_column("n").to_numpy(), minlength=counts.size
            ).astype(np.float64)
            unseen = _unseen(reference, name, ref, tally, counts)
        out[name] = {"counts": counts, "present": present, "unseen": unseen}
    comparable = [n for n in names if out[n]["present"] and reference.features[n].count]
    if comparable:
        width = max(out[n]["counts"].size for n in comparable)
        counts = np.zeros((len(comparable), width))
        shares = np.zeros((len(comparable), width))
        for i, n in enumerate(comparable):
            counts[i, : out[n]["counts"].size] = out[n]["counts"]
            fractions = reference.features[n].fractions
            shares[i, : len(fractions)] = fractions
        ref_n = np.array([reference.features[n].count for n in comparable])
        result = drift_stats.categorical_columns(counts, shares, ref_n)
        for i, n in enumerate(comparable):
            out[n].update(
                chi2=float(result.chi2[i]),
                chi2_pvalue=float(result.chi2_pvalue[i]),
                dof=int(result.dof[i]),
                jensen_shannon=float(result.jensen_shannon[i]),
                psi=float(result.psi[i]),
            )
    return out


def _unseen(
    reference: DriftReference,
    name: str,
    ref: FeatureReference,
    tally: pl.DataFrame,
    counts: NDArray[np.float64],
) -> float:
    """Share of present values never seen in training; NaN when training's domain is unknown."""
    total = float(counts.sum())
    if not total:
        return np.nan
    known = reference.known_categories.get(name)
    if known is not None:
        outside = ~tally.get_column(name).is_in(list(known))
        return float(tally.get_column("n").filter(outside).sum()) / total
    if ref.fractions and ref.fractions[-1] == 0.0:  # every training value had its own bin
        return float(counts[-1]) / total
    return np.nan


class _Judge:
    """Turns measured numbers into StatisticResults with thresholds and verdicts."""

    def __init__(self, config: DriftConfig, alpha_per_test: float, rows: int) -> None:
        self.config = config
        self.alpha_per_test = alpha_per_test
        self.rows = rows

    def _status(self, in_frame: bool, present: int) -> FeatureStatus:
        if not in_frame:
            return "absent"
        if present == 0:
            return "all_missing"
        return "few_rows" if present < self.config.min_rows else "ok"

    def _rates(
        self, name: str, ref: FeatureReference, missing: int, outside: float
    ) -> list[StatisticResult]:
        judged = self.rows >= self.config.min_rows
        rate = missing / self.rows
        limit = min(1.0, ref.null_fraction + self.config.limit(name, "missing_increase"))
        out = [
            StatisticResult(
                "missing_rate",
                rate,
                limit,
                judged and rate > limit,
                detail={"reference": ref.null_fraction},
            )
        ]
        if np.isfinite(outside):
            cut = self.config.limit(name, "out_of_range")
            out.append(StatisticResult("out_of_range_rate", outside, cut, judged and outside > cut))
        return out

    def _limit(
        self, name: str, statistic: str, value: float, judged: bool, **detail: Any
    ) -> StatisticResult:
        cut = self.config.limit(name, statistic)
        return StatisticResult(statistic, value, cut, judged and value > cut, detail=detail)

    def _test(
        self, statistic: str, value: float, pvalue: float, judged: bool, **detail: Any
    ) -> StatisticResult:
        return StatisticResult(
            statistic,
            value,
            None,
            judged and pvalue < self.alpha_per_test,
            p_value=pvalue,
            detail={"alpha": self.alpha_per_test, **detail},
        )

    def numeric(
        self,
        name: str,
        reference: DriftReference,
        column: drift_stats.NumericColumn,
        in_frame: bool,
    ) -> FeatureDrift:
        ref = reference.features[name]
        present = column.rows - column.missing
        status = self._status(in_frame, present)
        judged = status == "ok" and self.rows >= self.config.min_rows
        outside = (column.below + column.above) / present if present else np.nan
        stats = self._rates(name, ref, column.missing, outside)
        if present and ref.count:
            shares = column.bin_counts / present
            value = float(drift_stats.psi(shares, np.asarray(ref.fractions)))
            stats.insert(0, self._limit(name, "psi", value, judged))
        if np.isfinite(column.ks):
            test = self._test("ks", column.ks, column.ks_pvalue, judged, method=column.ks_method)
            stats.insert(1, test)
            std = ref.std or 0.0
            cut = self.config.limit(name, "wasserstein") * std if std > 0 else None
            w = column.wasserstein
            stats.insert(
                2,
                StatisticResult(
                    "wasserstein",
                    w,
                    cut,
                    judged
                    and present >= self.config.wasserstein_min_rows
                    and cut is not None
                    and w > cut,
                    detail={"std_units": w / std if std > 0 else None},
                ),
            )
        return FeatureDrift(name, "numeric", status, column.rows, present, tuple(stats))

    def categorical(
        self, name: str, reference: DriftReference, column: Mapping[str, Any], in_frame: bool
    ) -> FeatureDrift:
        ref = reference.features[name]
        present = int(column["present"])
        status = self._status(in_frame, present)
        judged = status == "ok" and self.rows >= self.config.min_rows
        stats = self._rates(name, ref, self.rows - present, column["unseen"])
        if "chi2" in column:
            other = float(column["counts"][-1] / present)  # window share of `__other__`
            stats[:0] = [
                self._limit(name, "psi", column["psi"], judged, other_share=other),
                self._test(
                    "chi2", column["chi2"], column["chi2_pvalue"], judged, dof=column["dof"]
                ),
                self._limit(name, "jensen_shannon", column["jensen_shannon"], judged),
            ]
        return FeatureDrift(name, "categorical", status, self.rows, present, tuple(stats))
