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
module prepares the reference once, feeds columns in bounded 2-D blocks, and has
``shipyard.monitor.drift_judge`` judge the results against ``DriftConfig`` thresholds. KS and
chi-square p-values form one family per window, Bonferroni-corrected by default, so that a
report over 25 features does not raise a false alarm in a fifth of all windows.

A full-reference comparison (exact KS and Wasserstein against every training row, issue #17)
never holds either table: the reference and the window may be Parquet paths or lazy frames
(``shipyard.monitor.drift_sources``), read one column at a time as each block is reached.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.monitor import drift_stats
from shipyard.monitor.drift_config import DriftConfig, FeatureThresholds
from shipyard.monitor.drift_judge import Judge
from shipyard.monitor.drift_report import PREDICTION, PROBABILITY, DriftReport
from shipyard.monitor.drift_sources import ColumnSource
from shipyard.train.reference import FeatureReference, ReferenceProfile, build_reference

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from shipyard.monitor.drift_sources import Columns
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
"""Numeric columns are sorted in blocks of about this size (window and streamed reference
values together), so memory stays a few columns."""


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
        full_reference: The full reference rows, read one column at a time when a window is
            checked (exact KS and Wasserstein against every training row); None: the bounded
            sample in ``numeric`` is used.
    """

    features: Mapping[str, FeatureReference]
    numeric: Mapping[str, drift_stats.NumericReference]
    known_categories: Mapping[str, frozenset[str]]
    has_sample: bool
    full_reference: ColumnSource | None = None

    @classmethod
    def from_profile(
        cls,
        profile: ReferenceProfile,
        *,
        outputs: ReferenceProfile | None = None,
        known_categories: Mapping[str, Sequence[str]] | None = None,
        full_reference: Columns | None = None,
    ) -> DriftReference:
        """Prepare ``profile`` (and an output profile, if given) for drift checks.

        Args:
            profile: The training profile (bins, shares, range, bounded sample).
            outputs: The profile of the model's outputs on its reference sample.
            known_categories: Every training category per categorical feature, where known.
            full_reference: The full training rows (a Parquet path or a frame) for exact KS
                and Wasserstein against all of them. Nothing is read here: each window check
                reads one reference column at a time and lets it go, so memory stays a few
                columns however large the reference. Features it lacks use the sample.

        Raises:
            InvalidArgument: ``full_reference`` is a path that does not exist.
        """
        full = ColumnSource(full_reference) if full_reference is not None else None
        streamed = set(full.columns) if full is not None else set()
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
            if name in frame.columns and not (name in streamed and name in profile.features):
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
            has_sample=bool(streamed & set(profile.features))
            or (bool(profile.sample.height) and bool(profile.sample.width)),
            full_reference=full,
        )

    @classmethod
    def from_bundle(
        cls, bundle: Bundle, *, outputs: bool = True, full_reference: Columns | None = None
    ) -> DriftReference:
        """Read the bundle's reference; with ``outputs``, add the model's output reference.

        ``full_reference`` (the training rows, e.g. a Parquet path) asks for exact KS and
        Wasserstein against all of them instead of the bundle's bounded sample; see
        ``from_profile``.

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
        return cls.from_profile(
            profile, outputs=output, known_categories=categories, full_reference=full_reference
        )

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
    frame: Columns,
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
            A LazyFrame or the path of a Parquet file is read one column at a time, never
            whole.
        config: Thresholds; the defaults when None.
        model: Model name, for the report and its observations.
        version: Model version that served the window, if one.
        variant: Serving variant, if one.
        window_start_ms: Window start; default: the smallest ``ts_ms`` (or 0).
        window_end_ms: Window end (exclusive); default: the largest ``ts_ms`` + 1 (or 0).

    Returns:
        The judged report.

    Raises:
        InvalidArgument: The window has no rows, or a numeric feature holds text, or a
            path does not exist.
    """
    config = config or DriftConfig()
    source = ColumnSource(frame)
    rows = source.height
    if rows == 0:
        raise InvalidArgument(
            "the window has no rows, so there is no distribution to compare; choose a longer "
            "window or check that the model served requests in it"
        )
    start, end = _bounds(source, window_start_ms, window_end_ms)
    names = [n for n in reference.features if not config.skips(n)]
    numeric = _numeric(reference, source, [n for n in names if n in reference.numeric])
    categorical = _categorical(
        reference, source, [n for n in names if reference.features[n].kind == "categorical"]
    )
    tests = sum(np.isfinite(c.ks_pvalue) for c in numeric.values()) + sum(
        "chi2_pvalue" in c for c in categorical.values()
    )
    alpha_per_test = (
        config.alpha / tests if config.correction == "bonferroni" and tests else config.alpha
    )
    judge = Judge(config, alpha_per_test, rows)
    results = tuple(
        judge.numeric(name, reference, numeric[name], name in source.columns)
        if name in numeric
        else judge.categorical(name, reference, categorical[name], name in source.columns)
        for name in names
    )
    return DriftReport(
        model=model,
        version=version,
        variant=variant,
        window_start_ms=start,
        window_end_ms=end,
        rows=rows,
        features=results,
        tests=int(tests),
        correction=config.correction,
        alpha=config.alpha,
        alpha_per_test=alpha_per_test,
        notes=_notes(reference, config, rows),
    )


def _bounds(source: ColumnSource, start: int | None, end: int | None) -> tuple[int, int]:
    low, high = source.time_bounds() or (0, 0)
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


def _numeric(
    reference: DriftReference, source: ColumnSource, names: Sequence[str]
) -> dict[str, drift_stats.NumericColumn]:
    """Numeric statistics of ``names``, in blocks of at most ``BLOCK_BYTES`` of values.

    A block holds a few window columns (copied and sorted in one call) and, with a full
    reference, the same columns of the reference (read and sorted as the block is reached,
    dropped after it), so memory is bounded by the block, not by either table.
    """
    n = source.height
    full = reference.full_reference
    present = [name for name in names if name in source.columns]
    out = {name: _absent(n, reference.numeric[name]) for name in names if name not in present}
    per_column = n + (full.height if full is not None else 0)
    per_block = max(1, BLOCK_BYTES // (8 * max(per_column, 1)))
    for i in range(0, len(present), per_block):
        chunk = present[i : i + per_block]
        refs = [_prepared(reference, name) for name in chunk]
        block = drift_stats.sorted_block((source.floats(name) for name in chunk), len(chunk))
        results = drift_stats.numeric_columns(block, refs)
        del block, refs
        out.update(zip(chunk, results, strict=True))
    return out


def _prepared(reference: DriftReference, name: str) -> drift_stats.NumericReference:
    """The numeric reference of ``name``, its full column read and sorted when streamed.

    ``from_profile`` leaves the sample out exactly for the features it streams (the model's
    outputs keep theirs), so a missing sample plus a column in the full reference means stream.
    """
    ref = reference.numeric[name]
    full = reference.full_reference
    if full is None or ref.sample is not None or name not in full.columns:
        return ref
    return replace(ref, sample=drift_stats.SortedSample.of(full.floats(name)))


def _absent(rows: int, ref: drift_stats.NumericReference) -> drift_stats.NumericColumn:
    bins = np.zeros(ref.edges.size + 1, dtype=np.int64)
    return drift_stats.NumericColumn(rows, rows, 0, 0, 0, bins, np.nan, np.nan, "", np.nan)


def _categorical(
    reference: DriftReference, source: ColumnSource, names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Counts per category (``__other__`` last) and, where both sides have values, statistics."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        ref = reference.features[name]
        categories = ref.categories or []
        counts = np.zeros(len(categories) + 1, dtype=np.float64)
        unseen = np.nan
        present = 0
        if name in source.columns:
            values = source.series(name).cast(pl.String).drop_nulls()
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
