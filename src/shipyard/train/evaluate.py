"""The evaluation report of a model on held-out data, and the check for over-fitting.

``evaluate`` turns a model's predictions on the test set into what a reviewer needs: every
metric of the task with a bootstrap 95% interval (imbalance-aware ones first), the recall of
each class, the confusion matrix and the same metrics per slice of a column the spec names.
``generalization_check`` compares training, cross-validation and test scores and says whether
the model learned its training rows rather than the problem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sklearn.metrics import confusion_matrix

from shipyard.core.errors import InvalidArgument
from shipyard.train.metrics import (
    bootstrap_intervals,
    compute_metrics,
    greater_is_better,
    metric_names,
    per_class_recall,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

    from shipyard.train.spec import Task

NULL_SLICE = "__null__"
OTHER_SLICE = "__other__"
Label = str | int | float | bool


@dataclass
class MetricValue:
    """A metric's value on the evaluated rows and its bootstrap interval (``None``: undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass
class SliceReport:
    """Metrics on the rows where a slice column has one value.

    Attributes:
        small: Fewer rows than ``min_slice_rows``: read the numbers as anecdotes.
    """

    n_rows: int
    metrics: dict[str, float | None]
    small: bool


@dataclass
class EvaluationReport:
    """What a model scored on held-out rows.

    Attributes:
        task: The task.
        n_rows: Rows evaluated.
        metrics: Metric name to value and interval, in report order (``metric_names``).
        per_class_recall: Class label (as text) to recall; ``None`` for regression.
        confusion: Counts, true class by row and predicted class by column, in class order;
            ``None`` for regression.
        slices: Column to slice value (as text) to that slice's metrics.
        classes: Class labels in code order; ``None`` for regression.
        confidence: Confidence level of the intervals.
        n_resamples: Bootstrap resamples behind the intervals.
    """

    task: Task
    n_rows: int
    metrics: dict[str, MetricValue]
    per_class_recall: dict[str, float | None] | None = None
    confusion: list[list[int]] | None = None
    slices: dict[str, dict[str, SliceReport]] = field(default_factory=dict)
    classes: list[Label] | None = None
    confidence: float = 0.95
    n_resamples: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (no numpy types, no nan)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """Rebuild a report written by ``to_dict``.

        Raises:
            InvalidArgument: The dict lacks a field or has one of the wrong shape.
        """
        try:
            return cls(
                task=data["task"],
                n_rows=int(data["n_rows"]),
                metrics={k: MetricValue(**v) for k, v in data["metrics"].items()},
                per_class_recall=data.get("per_class_recall"),
                confusion=data.get("confusion"),
                slices={
                    column: {value: SliceReport(**s) for value, s in values.items()}
                    for column, values in data.get("slices", {}).items()
                },
                classes=data.get("classes"),
                confidence=float(data.get("confidence", 0.95)),
                n_resamples=int(data.get("n_resamples", 0)),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidArgument(
                f"not an evaluation report: {e!r}; was it written by to_dict?"
            ) from e


def _plain(value: Any) -> Any:
    """Turn numpy scalars into Python ones so reports stay JSON-safe."""
    return value.item() if isinstance(value, np.generic) else value


def _slice_keys(values: Sequence[Any] | NDArray[Any], n: int, column: str) -> NDArray[np.str_]:
    items = list(values)
    if len(items) != n:
        raise InvalidArgument(f"slice column {column!r} has {len(items)} values for {n} rows")
    keys = []
    for raw in items:
        value = _plain(raw)
        missing = value is None or (isinstance(value, float) and np.isnan(value))
        keys.append(NULL_SLICE if missing else str(value))
    return np.asarray(keys, dtype=np.str_)


def _slice_reports(
    task: Task,
    keys: NDArray[np.str_],
    arrays: tuple[NDArray[Any], NDArray[Any], NDArray[Any] | None],
    n_classes: int,
    min_slice_rows: int,
    max_slices: int,
) -> dict[str, SliceReport]:
    values, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    # The most frequent values get their own slice; a long tail is pooled so a column with
    # thousands of values cannot turn the report into thousands of entries.
    ranked = sorted(range(len(values)), key=lambda i: (-counts[i], values[i]))
    kept = set(ranked[:max_slices])
    groups: dict[str, list[int]] = {}
    for code in ranked:
        name = str(values[code]) if code in kept else OTHER_SLICE
        groups.setdefault(name, []).append(code)
    y_true, y_pred, proba = arrays
    reports: dict[str, SliceReport] = {}
    for name, codes in groups.items():
        rows = np.flatnonzero(np.isin(inverse, codes))
        metrics = compute_metrics(
            task, y_true[rows], y_pred[rows], None if proba is None else proba[rows], n_classes
        )
        reports[name] = SliceReport(int(rows.size), metrics, bool(rows.size < min_slice_rows))
    return reports


def evaluate(
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None,
    classes: Sequence[Label] | None,
    *,
    slices: Mapping[str, Sequence[Any] | NDArray[Any]] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_slice_rows: int = 30,
    max_slices: int = 50,
) -> EvaluationReport:
    """Evaluate predictions on held-out rows.

    Args:
        task: The task.
        y_true: True class codes (classification) or values (regression).
        y_pred: Predicted codes (after the decision threshold) or values.
        proba: Class probabilities ``(n, k)``, or ``None``.
        classes: Class labels in code order (ignored for regression).
        slices: Column name to one value per row; metrics are reported per distinct value
            (missing values form the ``__null__`` slice).
        n_resamples: Bootstrap resamples for the intervals (0: no intervals).
        confidence: Confidence level of the intervals.
        seed: Seed of the bootstrap.
        min_slice_rows: Slices with fewer rows are flagged ``small``.
        max_slices: Per column, the most frequent values kept; the rest pool into ``__other__``.

    Returns:
        The report; metrics in report order with their intervals.

    Raises:
        InvalidArgument: Inputs of the wrong shape or range, or a slice column of the wrong
            length.
    """
    classification = task != "regression"
    labels = [_plain(c) for c in classes or []] if classification else None
    k = len(labels) if labels is not None else 0
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    probabilities = None if proba is None else np.asarray(proba, dtype=np.float64)
    names = metric_names(task)
    values = compute_metrics(task, true, pred, probabilities, k, names)
    intervals: Mapping[str, tuple[float, float] | None] = (
        bootstrap_intervals(
            names,
            task,
            true,
            pred,
            probabilities,
            k,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
        if n_resamples > 0
        else dict.fromkeys(names)
    )
    metrics = {}
    for name in names:
        interval = intervals[name]
        low, high = interval if interval is not None else (None, None)
        metrics[name] = MetricValue(values[name], low, high)
    report = EvaluationReport(
        task,
        int(true.shape[0]),
        metrics,
        classes=labels,
        confidence=confidence,
        n_resamples=n_resamples,
    )
    if labels is not None:
        recalls = per_class_recall(true, pred, k)
        report.per_class_recall = {str(label): r for label, r in zip(labels, recalls, strict=True)}
        matrix = confusion_matrix(true, pred, labels=list(range(k)))
        report.confusion = [[int(c) for c in row] for row in matrix]
    for column, column_values in (slices or {}).items():
        keys = _slice_keys(column_values, report.n_rows, column)
        report.slices[column] = _slice_reports(
            task, keys, (true, pred, probabilities), k, min_slice_rows, max_slices
        )
    return report


@dataclass
class GeneralizationCheck:
    """Training versus held-out scores of one metric, and what they say.

    Attributes:
        verdict: ``ok``; ``overfit`` (training better than held-out by more than the estimator
            is expected to be); ``unstable`` (the test score lies outside what the held-out
            estimate predicted, beyond both intervals, or the folds disagree).
        train: Score on the training rows.
        cv_mean: The held-out estimate: mean cross-validation score, or the validation score
            when nothing was tuned (``basis`` says which).
        cv_std: Standard deviation of the fold scores (``ddof=1``; 0 without folds).
        test: Score on the test rows.
        gap: How much better training scored than the worse of CV mean and test, in the
            metric's units and oriented so that positive means "training was better".
        message: What the verdict means and what to try.
        basis: ``cv`` or ``validation``: where the held-out estimate comes from.
        expected_gap: The train-minus-held-out gap tolerated for this estimator; ``None`` for
            flexible learners (boosted trees, forests), whose training score is expected to be
            near perfect, so the gap alone says nothing.
        held_out_interval: The held-out estimate's interval (CV mean ± 2 fold deviations, or
            the validation score's bootstrap interval).
        test_interval: The test score's bootstrap interval.
    """

    verdict: Literal["ok", "overfit", "unstable"]
    train: float
    cv_mean: float
    cv_std: float
    test: float
    gap: float
    message: str
    basis: Literal["cv", "validation"] = "cv"
    expected_gap: float | None = None
    held_out_interval: tuple[float, float] | None = None
    test_interval: tuple[float, float] | None = None


def generalization_check(
    metric: str,
    train_score: float,
    cv_scores: Sequence[float],
    test_score: float,
    *,
    tolerance: float = 0.05,
    test_interval: tuple[float, float] | None = None,
    validation: tuple[float, float, float] | None = None,
    flexible: bool = False,
) -> GeneralizationCheck:
    """Compare training, held-out and test scores of one metric.

    Every score is oriented so that larger is better (losses negated) and
    ``scale = max(|train|, |held-out|, |test|)`` makes the tolerance relative (5% of an
    accuracy or of an RMSE alike). The held-out estimate is the CV mean, or, with no folds,
    the ``validation`` score ``(value, low, high)``.

    * ``overfit`` when training beats the held-out estimate by more than the gap expected for
      the estimator: ``tolerance * scale`` plus the held-out interval's half-width for rigid
      models; never from the gap alone for ``flexible`` ones (boosted trees and forests fit
      their training rows almost perfectly by design; issue 16 saw this called over-fitting on
      6 of 7 healthy runs);
    * otherwise ``unstable`` when the test score is incompatible with the held-out estimate:
      with ``test_interval``, the two intervals do not overlap; without it, the test score lies
      outside ``cv_mean ± max(3·cv_std, tolerance * scale)``, or the folds spread by more than
      ``2 * tolerance * scale``;
    * otherwise ``ok``.

    Args:
        metric: The metric's name (for its direction and the message).
        train_score: Score of the final model on its training rows.
        cv_scores: Score of each cross-validation fold (may be empty with ``validation``).
        test_score: Score on the held-out test rows.
        tolerance: Relative tolerance, in (0, 1).
        test_interval: Bootstrap interval of the test score.
        validation: ``(value, low, high)`` of the validation score, the held-out estimate
            when there are no folds.
        flexible: The estimator is expected to fit its training rows almost perfectly.

    Returns:
        The verdict with its numbers and message.

    Raises:
        InvalidArgument: Unknown metric, no held-out scores, a non-finite score or a bad
            tolerance.
    """
    sign = 1.0 if greater_is_better(metric) else -1.0
    folds = np.asarray(list(cv_scores), dtype=np.float64)
    basis: Literal["cv", "validation"] = "cv"
    if folds.size == 0 and validation is not None:
        basis = "validation"
        folds = np.asarray([validation[0]], dtype=np.float64)
    scores = np.r_[folds, train_score, test_score]
    if folds.size == 0 or not np.all(np.isfinite(scores)):
        raise InvalidArgument("generalization check needs finite train, CV and test scores")
    if not 0.0 < tolerance < 1.0:
        raise InvalidArgument("tolerance must be within (0, 1), e.g. 0.05 for 5%")
    cv_mean = float(folds.mean())
    cv_std = float(folds.std(ddof=1)) if folds.size > 1 else 0.0
    held: tuple[float, float] | None = None
    if basis == "validation" and validation is not None and np.all(np.isfinite(validation)):
        held = (float(validation[1]), float(validation[2]))
    elif basis == "cv" and folds.size > 1:
        held = (cv_mean - 2.0 * cv_std, cv_mean + 2.0 * cv_std)
    gap = sign * train_score - min(sign * cv_mean, sign * test_score)
    allowed = tolerance * max(abs(train_score), abs(cv_mean), abs(test_score), 1e-12)
    expected = None if flexible else allowed + (0.0 if held is None else (held[1] - held[0]) / 2)
    overfit = expected is not None and sign * (train_score - cv_mean) > expected
    if test_interval is not None and held is not None:
        surprise = test_interval[1] < held[0] or test_interval[0] > held[1]
    else:
        spread = basis == "cv" and cv_std > 2.0 * allowed
        surprise = spread or abs(test_score - cv_mean) > max(3.0 * cv_std, allowed)
    label = "CV" if basis == "cv" else "validation"
    numbers = (
        f"{metric}: train {train_score:.4g}, {label} {cv_mean:.4g}"
        + (f" ± {cv_std:.3g}" if basis == "cv" else "")
        + f", test {test_score:.4g}"
    )
    verdict: Literal["ok", "overfit", "unstable"]
    if overfit:
        verdict = "overfit"
        message = (
            f"Over-fitting: {numbers}. The model scores clearly better on its training rows "
            "than on rows it has not seen, more than this kind of model normally does. Try "
            "more regularization (smaller max_depth, more min_samples_leaf, larger alpha or "
            "smaller C), a simpler model, fewer features, or more training data."
        )
    elif surprise:
        verdict = "unstable"
        message = (
            f"Unstable estimate: {numbers}. The test score is outside what the {label} "
            "score predicted (their intervals do not overlap), so the held-out numbers are "
            "not reliable. Try more data or more folds, check that the split respects groups "
            "and time, and prefer a more regularized model."
        )
    else:
        verdict = "ok"
        note = (
            "; a training score above held-out is expected for this kind of model"
            if flexible and gap > allowed
            else ""
        )
        message = f"Generalizes: {numbers}; the held-out scores agree{note}."
    return GeneralizationCheck(
        verdict, float(train_score), cv_mean, cv_std, float(test_score), float(gap), message,
        basis, expected, held, test_interval,
    )  # fmt: skip
