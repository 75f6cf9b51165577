"""Performance on feedback labels, and concept drift in the stream of prediction errors.

Input drift says the world changed; only labels say the model got worse. Given predictions
joined to their labels (``shipyard.monitor.feedback.join_labels``), this module computes, per
model version and serving variant, over windows of a fixed number of labels or of a fixed
time span (by prediction time):

* classifiers: accuracy and error rate with Wilson score intervals
  (``scipy.stats.binomtest(...).proportion_ci``); binary classifiers with a logged
  positive-class probability also ROC AUC (interval by Hanley & McNeil's standard error, 1982),
  log loss and Brier score (intervals of a mean, Student's t);
* regressors: MAE and RMSE (t intervals of the mean absolute and squared error; RMSE's is the
  square root of the MSE interval).

Each becomes an ``Observation`` of kind ``performance``; the bundle's test metric is the
``threshold`` and the window is ``breached`` when its whole interval lies on the worse side of
it, i.e. the drop is more than noise.

Concept drift runs river's ADWIN and Page-Hinkley detectors over the per-prediction error
(0/1 for classifiers, absolute error over the test MAE for regressors), in prediction order.
Every firing is a ``concept`` observation with the label index where it fired and the mean
error over the recent labels before it against the labels before those; it counts as
``breached`` (worse) only when the error went up and is above the bundle's test error. A
detector that never fired leaves one observation with value 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
from scipy import stats

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.signals import Observation

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from shipyard.registry.manifest import BundleManifest

Task = Literal["binary", "multiclass", "regression"]
HIGHER_IS_BETTER = {
    "accuracy": True,
    "error_rate": False,
    "roc_auc": True,
    "log_loss": False,
    "brier": False,
    "mae": False,
    "rmse": False,
}
_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] for log loss, like scikit-learn


@dataclass(frozen=True)
class ModelFacts:
    """What the monitor needs to know about the model behind the predictions.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        positive_label: Binary only: the class whose probability the log holds (the last),
            canonicalized; None otherwise.
        baseline: Test metrics of the bundle, by name (``error_rate`` derived from accuracy).
    """

    task: Task
    positive_label: str | None = None
    baseline: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: BundleManifest) -> ModelFacts:
        """Read task, positive class and test metrics from a bundle's manifest."""
        baseline: dict[str, float] = {}
        test = manifest.metrics.get("test") if isinstance(manifest.metrics, dict) else None
        for name, entry in (test or {}).items():
            value = entry.get("value") if isinstance(entry, dict) else entry
            if isinstance(value, int | float) and math.isfinite(value):
                baseline[name] = float(value)
        if "accuracy" in baseline:
            baseline["error_rate"] = 1.0 - baseline["accuracy"]
        positive = None
        if manifest.task == "binary" and manifest.classes:
            positive = canonical_label(manifest.classes[-1])
        return cls(manifest.task, positive, baseline)


def canonical_label(value: Any) -> str:
    """One text per label value: numbers by value (``1``, ``1.0`` -> ``1``), booleans lower case."""
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return repr(number)


def _canonical(frame: pl.DataFrame, column: str) -> pl.Series:
    """The column's labels canonicalized (each distinct value once, not once per row)."""
    values = frame.get_column(column).cast(pl.String)
    mapping = {v: canonical_label(v) for v in values.unique().drop_nulls().to_list()}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String)


def with_errors(joined: pl.DataFrame, facts: ModelFacts) -> pl.DataFrame:
    """Add per-row outcome columns to labelled predictions.

    Classifiers get ``correct`` (1.0/0.0) and ``error`` (its complement); binary classifiers
    with probabilities also ``y`` (1.0 for the positive class) and ``p``. Regressors get
    ``residual``; ``error`` is the absolute residual (over the test MAE when known). Rows whose
    label or prediction is unusable (a regression label that is not a number) are dropped.
    """
    if facts.task == "regression":
        frame = joined.with_columns(
            (
                pl.col("prediction").cast(pl.Float64, strict=False)
                - pl.col("label").cast(pl.Float64, strict=False)
            ).alias("residual")
        ).filter(pl.col("residual").is_finite())
        scale = facts.baseline.get("mae") or 1.0
        return frame.with_columns((pl.col("residual").abs() / scale).alias("error"))
    frame = joined.filter(pl.col("prediction").is_not_null())
    label = _canonical(frame, "label")
    frame = frame.with_columns(
        (_canonical(frame, "prediction") == label).cast(pl.Float64).alias("correct")
    ).with_columns((1.0 - pl.col("correct")).alias("error"))
    if facts.task == "binary" and facts.positive_label is not None:
        frame = frame.with_columns(
            (label == facts.positive_label).cast(pl.Float64).alias("y"),
            pl.col("probability").alias("p"),
        )
    return frame


# -- intervals ---------------------------------------------------------------------------------


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    ci = stats.binomtest(successes, n).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mean_interval(values: np.ndarray[Any, Any], confidence: float) -> tuple[float, float] | None:
    """Student's t interval of the mean; None for fewer than two values."""
    if values.size < 2:
        return None
    sem = float(stats.sem(values))
    if sem == 0:
        mean = float(values.mean())
        return mean, mean
    low, high = stats.t.interval(confidence, values.size - 1, loc=float(values.mean()), scale=sem)
    return float(low), float(high)


def auc_interval(
    auc: float, positives: int, negatives: int, confidence: float
) -> tuple[float, float]:
    """Normal interval of ROC AUC with Hanley & McNeil's (1982) standard error, within [0, 1]."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


# -- windows -----------------------------------------------------------------------------------


def _windows(
    frame: pl.DataFrame, window_labels: int | None, window_ms: int | None
) -> Iterator[pl.DataFrame]:
    """Tumbling windows of one group's rows (sorted by prediction time)."""
    if window_labels is not None:
        for start in range(0, frame.height, window_labels):
            yield frame.slice(start, window_labels)
    elif window_ms is not None:
        keyed = frame.with_columns((pl.col("ts_ms") // window_ms).alias("_w"))
        for _, part in keyed.group_by("_w", maintain_order=True):
            yield part.drop("_w")
    else:
        yield frame


def _groups(frame: pl.DataFrame) -> Iterator[tuple[int | None, str | None, pl.DataFrame]]:
    for (version, variant), part in frame.sort("ts_ms").group_by(
        ["version", "variant"], maintain_order=True
    ):
        yield (
            None if version is None else int(version),
            None if variant is None else str(variant),
            part,
        )


def performance_observations(
    joined: pl.DataFrame,
    *,
    model: str,
    facts: ModelFacts,
    window_labels: int | None = None,
    window_ms: int | None = None,
    confidence: float = 0.95,
) -> list[Observation]:
    """Metrics with intervals per version, variant and window, as ``performance`` observations.

    Args:
        joined: Labelled predictions of one model (``join_labels``).
        model: The model's name (for the observations).
        facts: Task, positive class and test-metric baseline.
        window_labels: Windows of this many labels (in prediction order); the last may be
            shorter.
        window_ms: Windows of this many milliseconds of prediction time (epoch-aligned).
            With neither, one window over everything.
        confidence: Level of the intervals.

    Raises:
        InvalidArgument: Both or non-positive window sizes, or a confidence outside (0, 1).
    """
    if window_labels is not None and window_ms is not None:
        raise InvalidArgument("give a window by labels or by time, not both")
    if (window_labels is not None and window_labels < 1) or (
        window_ms is not None and window_ms < 1
    ):
        raise InvalidArgument("window sizes must be positive")
    if not 0 < confidence < 1:
        raise InvalidArgument(f"confidence must be in (0, 1), not {confidence}")
    frame = with_errors(joined, facts)
    out: list[Observation] = []
    for version, variant, group in _groups(frame):
        for window in _windows(group, window_labels, window_ms):
            start, end = int(window["ts_ms"].min()), int(window["ts_ms"].max()) + 1  # type: ignore[arg-type]
            if window_ms is not None:
                start = start // window_ms * window_ms
                end = start + window_ms
            for name, value, interval, n in _metrics(window, facts, confidence):
                out.append(
                    _observation(
                        model,
                        version,
                        variant,
                        name,
                        value,
                        interval,
                        n,
                        start,
                        end,
                        facts,
                        confidence,
                    )
                )
    return out


def _metrics(
    window: pl.DataFrame, facts: ModelFacts, confidence: float
) -> Iterator[tuple[str, float, tuple[float, float] | None, int]]:
    n = window.height
    if facts.task == "regression":
        residual = window["residual"].to_numpy()
        yield "mae", float(np.abs(residual).mean()), mean_interval(np.abs(residual), confidence), n
        squared = residual**2
        mse_ci = mean_interval(squared, confidence)
        rmse_ci = None if mse_ci is None else (math.sqrt(max(mse_ci[0], 0.0)), math.sqrt(mse_ci[1]))
        yield "rmse", math.sqrt(float(squared.mean())), rmse_ci, n
        return
    right = int(window["correct"].sum())
    low, high = wilson(right, n, confidence)
    yield "accuracy", right / n, (low, high), n
    yield "error_rate", 1 - right / n, (1 - high, 1 - low), n
    if "p" not in window.columns:
        return
    scored = window.filter(pl.col("p").is_not_null() & pl.col("p").is_finite())
    if scored.height == 0:
        return
    y, p = scored["y"].to_numpy(), np.clip(scored["p"].to_numpy(), _EPS, 1 - _EPS)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives and negatives:
        # AUC is the Mann-Whitney U of the positives' scores over all pairs (ties count half).
        auc = float(stats.mannwhitneyu(p[y == 1], p[y == 0]).statistic) / (positives * negatives)
        yield "roc_auc", auc, auc_interval(auc, positives, negatives, confidence), y.size
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    yield "log_loss", float(losses.mean()), mean_interval(losses, confidence), y.size
    squares = (p - y) ** 2
    yield "brier", float(squares.mean()), mean_interval(squares, confidence), y.size


def _observation(
    model: str,
    version: int | None,
    variant: str | None,
    name: str,
    value: float,
    interval: tuple[float, float] | None,
    n: int,
    start: int,
    end: int,
    facts: ModelFacts,
    confidence: float,
) -> Observation:
    baseline = facts.baseline.get(name)
    higher = HIGHER_IS_BETTER[name]
    breached = False
    if baseline is not None and interval is not None:
        breached = interval[1] < baseline if higher else interval[0] > baseline
    return Observation(
        model=model,
        version=version,
        kind="performance",
        statistic=name,
        subject="*",
        value=value,
        window_start_ms=start,
        window_end_ms=end,
        threshold=baseline,
        breached=breached,
        variant=variant,
        detail={
            "n": n,
            "low": None if interval is None else interval[0],
            "high": None if interval is None else interval[1],
            "confidence": confidence,
            "baseline": baseline,
            "higher_is_better": higher,
        },
    )


# -- concept drift -----------------------------------------------------------------------------


def default_detectors() -> dict[str, Any]:
    """Fresh detectors with the settings the label-flip test measured (see docs/monitoring.md).

    ADWIN checks for a cut after every label (``clock=1``) instead of every 32, trading a
    little CPU for detecting sooner; Page-Hinkley watches for increases only (``mode="up"``):
    a falling error rate is not a problem to page anyone about. river is imported here, not
    at module level: ``river.drift`` pulls in its datasets and scikit-learn (seconds).
    """
    from river import drift

    return {
        "adwin": drift.ADWIN(delta=0.002, clock=1),  # type: ignore[no-untyped-call]
        "page_hinkley": drift.PageHinkley(min_instances=30, delta=0.005, threshold=20.0, mode="up"),
    }


def concept_drift(
    joined: pl.DataFrame,
    *,
    model: str,
    facts: ModelFacts,
    detectors: Mapping[str, Any] | None = None,
    recent: int = 30,
) -> list[Observation]:
    """Run drift detectors over each version's and variant's error stream.

    Args:
        joined: Labelled predictions of one model (``join_labels``).
        model: The model's name.
        facts: Task and baseline (the test error rate, or the MAE that scales regression
            errors).
        detectors: Name to a factory of a river drift detector (called per stream); the
            default is ``default_detectors``.
        recent: Labels before a firing whose mean error is compared with the earlier ones.

    Returns:
        One ``concept`` observation per firing (value 1), or one with value 0 per detector
        and stream where nothing fired.
    """
    frame = with_errors(joined, facts)
    baseline = (
        facts.baseline.get("error_rate")
        if facts.task != "regression"
        else (1.0 if "mae" in facts.baseline else None)
    )
    subject = "abs_error_over_test_mae" if facts.task == "regression" else "error_rate"
    out: list[Observation] = []
    for version, variant, group in _groups(frame):
        errors = group["error"].to_numpy()
        stamps = group["ts_ms"].to_numpy()
        fresh = default_detectors() if detectors is None else {k: f() for k, f in detectors.items()}
        for name, detector in fresh.items():
            firings = _run(detector, errors)
            quiet = Observation(
                model=model,
                version=version,
                kind="concept",
                statistic=name,
                subject=subject,
                value=0.0,
                window_start_ms=int(stamps[0]),
                window_end_ms=int(stamps[-1]) + 1,
                threshold=baseline,
                variant=variant,
                detail={"labels": int(errors.size)},
            )
            if not firings:
                out.append(quiet)
            segment_start = 0
            for index in firings:
                after = errors[max(segment_start, index - recent + 1) : index + 1]
                before = errors[segment_start : max(segment_start, index - recent + 1)]
                error_after = float(after.mean())
                error_before = float(before.mean()) if before.size else None
                worse = (error_before is None or error_after > error_before) and (
                    baseline is None or error_after > baseline
                )
                fired = {
                    "label_index": index,
                    "request_id": group["request_id"][index],
                    "error_before": error_before,
                    "error_after": error_after,
                    "baseline_error": baseline,
                }
                out.append(
                    replace(
                        quiet,
                        value=1.0,
                        window_start_ms=int(stamps[segment_start]),
                        window_end_ms=int(stamps[index]) + 1,
                        breached=worse,
                        detail=fired,
                    )
                )
                segment_start = index + 1
    return out


def _run(detector: Any, errors: np.ndarray[Any, Any]) -> list[int]:
    """Indices (0-based, in the stream) at which the detector reported drift."""
    fired = []
    for i, x in enumerate(errors.tolist()):
        detector.update(x)
        if detector.drift_detected:
            fired.append(i)
    return fired
