"""The metric catalogue: which metrics each task reports, their values and bootstrap intervals.

Point values come from ``sklearn.metrics`` called directly. A metric that is undefined on the
data at hand (ROC-AUC with one class present, MAPE with a zero target, precision with no
predicted positive) is ``None``, never a crash, a warning or a made-up number: a report must
say "not defined here" rather than hide it behind a 0.

Classification inputs follow the train conventions: ``y_true`` and ``y_pred`` are class codes
``0..k-1``, ``proba[:, j]`` is the probability of code ``j`` and the positive class of a binary
task is code 1. Precision, recall and F1 are of the positive class for binary tasks and
macro-averaged (over the classes where they are defined) for multiclass ones.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from shipyard.core.errors import InvalidArgument
from shipyard.train.resampled import ResampledMetrics

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

    from shipyard.train.spec import Task

_CLASSIFICATION: frozenset[Task] = frozenset({"binary", "multiclass"})
_REGRESSION: frozenset[Task] = frozenset({"regression"})
# Rows times resamples held in memory at once by the bootstrap (about 32 MB of indices).
_BOOTSTRAP_CELLS = 4_000_000
# Fewer defined resamples than this share leaves too little to say anything: no interval.
_MIN_DEFINED_SHARE = 0.5


@dataclass(frozen=True)
class MetricDef:
    """One metric of the catalogue.

    Attributes:
        name: The name used in specs, reports and the tracking store.
        tasks: The tasks it applies to.
        greater_is_better: Direction of improvement (gates and tuning read it).
        needs_proba: Whether it is computed from class probabilities, not decisions.
        description: One line for reports and ``--help``.
    """

    name: str
    tasks: frozenset[Task]
    greater_is_better: bool
    needs_proba: bool
    description: str


_C, _R = _CLASSIFICATION, _REGRESSION
# name, tasks, greater_is_better, needs_proba, description
_CATALOGUE: tuple[tuple[str, frozenset[Task], bool, bool, str], ...] = (
    ("accuracy", _C, True, False, "share of rows predicted right"),
    ("balanced_accuracy", _C, True, False, "mean recall over the classes present"),
    ("precision", _C, True, False, "share of predicted positives that are right"),
    ("recall", _C, True, False, "share of actual positives found"),
    ("f1", _C, True, False, "harmonic mean of precision and recall"),
    ("roc_auc", _C, True, True, "chance that a positive ranks above a negative"),
    ("pr_auc", _C, True, True, "average precision over recall levels; honest under imbalance"),
    ("log_loss", _C, False, True, "negative log-likelihood; punishes confident mistakes"),
    ("brier", _C, False, True, "mean squared error of the probabilities (multiclass: 0..2)"),
    ("mae", _R, False, False, "mean absolute error, in target units"),
    ("rmse", _R, False, False, "root mean squared error, in target units"),
    ("r2", _R, True, False, "share of target variance explained"),
    ("mape", _R, False, False, "mean absolute percentage error (as a fraction)"),
)
METRICS: Mapping[str, MetricDef] = MappingProxyType({r[0]: MetricDef(*r) for r in _CATALOGUE})

# Report order: the metrics that stay honest under class imbalance come first (issue 4).
_ORDER: dict[Task, tuple[str, ...]] = {
    "binary": (
        "pr_auc",
        "balanced_accuracy",
        "recall",
        "f1",
        "roc_auc",
        "precision",
        "accuracy",
        "log_loss",
        "brier",
    ),
    "regression": ("rmse", "mae", "r2", "mape"),
}
_ORDER["multiclass"] = _ORDER["binary"]


def metric_names(task: Task) -> list[str]:
    """Return the metrics reported for ``task``, in report order."""
    if task not in _ORDER:
        raise InvalidArgument(f"unknown task {task!r}; use binary, multiclass or regression")
    return list(_ORDER[task])


def check_metric(name: str, task: Task) -> MetricDef:
    """Return the definition of ``name`` after checking that it applies to ``task``.

    Raises:
        InvalidArgument: ``name`` is unknown or belongs to another task.
    """
    valid = metric_names(task)
    if name not in valid:
        raise InvalidArgument(
            f"metric {name!r} is not available for a {task} task; use one of: {', '.join(valid)}"
        )
    return METRICS[name]


def greater_is_better(name: str) -> bool:
    """Return whether a larger value of metric ``name`` is better.

    Raises:
        InvalidArgument: ``name`` is not in the catalogue.
    """
    if name not in METRICS:
        raise InvalidArgument(f"unknown metric {name!r}; use one of: {', '.join(METRICS)}")
    return METRICS[name].greater_is_better


@dataclass(frozen=True)
class _Data:
    """Validated inputs: codes as int64 (classification) or floats, probabilities as float64."""

    task: Task
    y_true: NDArray[Any]
    y_pred: NDArray[Any]
    proba: NDArray[np.float64] | None
    k: int

    @property
    def n(self) -> int:
        return int(self.y_true.shape[0])

    @property
    def labels(self) -> list[int]:
        return list(range(self.k))


def _codes(values: ArrayLike, k: int, what: str) -> NDArray[np.int64]:
    array = np.asarray(values)
    if array.dtype.kind not in "iub" and not (
        array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array))
    ):
        raise InvalidArgument(f"{what} must hold class codes 0..{k - 1}; got dtype {array.dtype}")
    codes = array.astype(np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= k):
        raise InvalidArgument(
            f"{what} must hold class codes 0..{k - 1}; encode labels with the model's classes"
        )
    return codes


def _probabilities(proba: ArrayLike, n: int, k: int) -> NDArray[np.float64]:
    array = np.asarray(proba, dtype=np.float64)
    if array.shape != (n, k):
        raise InvalidArgument(f"proba must have shape ({n}, {k}), one column per class")
    if not np.all(np.isfinite(array)) or array.min(initial=0) < 0 or array.max(initial=0) > 1:
        raise InvalidArgument("proba must hold probabilities in [0, 1]")
    sums = array.sum(axis=1, keepdims=True)
    if n and not np.allclose(sums, 1.0, atol=1e-3):
        raise InvalidArgument("proba rows must sum to 1; pass predict_proba output")
    # Float32 model outputs sum to 1 only within 1e-7; sklearn's checks want float64 exactness.
    return np.asarray(array / sums, dtype=np.float64)


def _prepare(
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None,
    n_classes: int,
) -> _Data:
    metric_names(task)
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.ndim != 1 or pred.shape != true.shape:
        raise InvalidArgument(
            f"y_true and y_pred must be 1-D of equal length; got {true.shape} and {pred.shape}"
        )
    if task == "regression":
        try:
            floats = true.astype(np.float64), pred.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"regression targets must be numbers: {e}") from e
        if not (np.all(np.isfinite(floats[0])) and np.all(np.isfinite(floats[1]))):
            raise InvalidArgument("regression targets and predictions must be finite numbers")
        return _Data(task, floats[0], floats[1], None, 0)
    k = int(n_classes)
    if k < 2 or (task == "binary" and k != 2):
        raise InvalidArgument(f"a {task} task needs {'2' if task == 'binary' else '2+'} classes")
    codes = _codes(true, k, "y_true"), _codes(pred, k, "y_pred")
    probabilities = None if proba is None else _probabilities(proba, true.shape[0], k)
    return _Data(task, codes[0], codes[1], probabilities, k)


def _all_classes_present(d: _Data) -> bool:
    return bool(np.unique(d.y_true).size == d.k)


def _averaged(score: Callable[..., Any], d: _Data) -> float:
    if d.task == "binary":
        return float(score(d.y_true, d.y_pred, labels=d.labels, pos_label=1, zero_division=np.nan))
    return float(score(d.y_true, d.y_pred, labels=d.labels, average="macro", zero_division=np.nan))


def _roc_auc(d: _Data) -> float | None:
    assert d.proba is not None
    if not _all_classes_present(d):
        return None  # one-vs-rest needs positives and negatives of every class
    if d.task == "binary":
        return float(skm.roc_auc_score(d.y_true, d.proba[:, 1]))
    return float(
        skm.roc_auc_score(d.y_true, d.proba, multi_class="ovr", average="macro", labels=d.labels)
    )


def _pr_auc(d: _Data) -> float | None:
    assert d.proba is not None
    if d.task == "binary":
        if not np.any(d.y_true == 1):
            return None  # recall is undefined without positives
        return float(skm.average_precision_score(d.y_true, d.proba[:, 1]))
    if not _all_classes_present(d):
        return None
    indicator = label_binarize(d.y_true, classes=d.labels)
    return float(skm.average_precision_score(indicator, d.proba, average="macro"))


def _brier(d: _Data) -> float:
    assert d.proba is not None
    if d.task == "binary":
        return float(skm.brier_score_loss(d.y_true, d.proba[:, 1], pos_label=1))
    # sklearn >= 1.7 takes (n, k) probabilities: the multiclass Brier score, range [0, 2].
    return float(skm.brier_score_loss(d.y_true, d.proba, labels=d.labels))


def _r2(d: _Data) -> float | None:
    if d.n < 2 or np.all(d.y_true == d.y_true[0]):
        return None  # no variance to explain (sklearn warns and returns nan or -inf)
    return float(skm.r2_score(d.y_true, d.y_pred, force_finite=False))


def _mape(d: _Data) -> float | None:
    if np.any(d.y_true == 0):
        return None  # a zero target has no percentage error
    return float(skm.mean_absolute_percentage_error(d.y_true, d.y_pred))


_POINT: dict[str, Callable[[_Data], float | None]] = {
    "accuracy": lambda d: float(skm.accuracy_score(d.y_true, d.y_pred)),
    # balanced_accuracy_score is macro recall over the classes present in y_true; asking for
    # exactly those labels gives the same number without its "classes not in y_true" warning.
    "balanced_accuracy": lambda d: float(
        skm.recall_score(d.y_true, d.y_pred, labels=np.unique(d.y_true), average="macro")
    ),
    "precision": lambda d: _averaged(skm.precision_score, d),
    "recall": lambda d: _averaged(skm.recall_score, d),
    "f1": lambda d: _averaged(skm.f1_score, d),
    "roc_auc": _roc_auc,
    "pr_auc": _pr_auc,
    "log_loss": lambda d: float(skm.log_loss(d.y_true, d.proba, labels=d.labels)),
    "brier": _brier,
    "mae": lambda d: float(skm.mean_absolute_error(d.y_true, d.y_pred)),
    "rmse": lambda d: float(skm.root_mean_squared_error(d.y_true, d.y_pred)),
    "r2": _r2,
    "mape": _mape,
}


def _point(name: str, d: _Data) -> float | None:
    if d.n == 0 or (METRICS[name].needs_proba and d.proba is None):
        return None
    try:
        value = _POINT[name](d)
    except ValueError as e:  # sklearn's refusal of inputs our checks let through
        raise InvalidArgument(f"cannot compute {name}: {e}") from e
    return value if value is not None and np.isfinite(value) else None


def compute_metric(
    name: str,
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None,
    n_classes: int,
) -> float | None:
    """Compute one metric.

    Args:
        name: A metric of the task (see ``metric_names``).
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: True class codes (classification) or values (regression).
        y_pred: Predicted class codes (after the decision threshold) or values.
        proba: Class probabilities ``(n, k)``; ``None`` makes the probability metrics ``None``.
        n_classes: Number of classes ``k`` (ignored for regression).

    Returns:
        The value, or ``None`` where the metric is undefined on this data.

    Raises:
        InvalidArgument: Unknown metric, or inputs of the wrong shape or range.
    """
    check_metric(name, task)
    return _point(name, _prepare(task, y_true, y_pred, proba, n_classes))


def compute_metrics(
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None,
    n_classes: int,
    names: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """Compute several metrics (by default all of the task's, in report order).

    Raises:
        InvalidArgument: As ``compute_metric``.
    """
    chosen = metric_names(task) if names is None else list(names)
    for name in chosen:
        check_metric(name, task)
    data = _prepare(task, y_true, y_pred, proba, n_classes)
    return {name: _point(name, data) for name in chosen}


def per_class_recall(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> list[float | None]:
    """Return the recall of each class code ``0..k-1``; ``None`` for a class absent in y_true.

    Raises:
        InvalidArgument: Inputs are not class codes of equal length.
    """
    task: Task = "binary" if n_classes == 2 else "multiclass"
    d = _prepare(task, y_true, y_pred, None, n_classes)
    recalls = skm.recall_score(
        d.y_true, d.y_pred, labels=d.labels, average=None, zero_division=np.nan
    )
    return [float(r) if np.isfinite(r) else None for r in recalls]


def bootstrap_intervals(
    names: Sequence[str],
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None,
    n_classes: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap confidence intervals of several metrics from the same resamples.

    Rows are resampled with replacement, keeping each row's truth, decision and probabilities
    together (paired), by ``scipy.stats.bootstrap`` with the percentile method. Resamples on
    which a metric is undefined (say, no positive row drawn for ROC-AUC) are left out of that
    metric's percentiles, so the interval is conditional on the metric being defined; when
    fewer than half the resamples define it, or the metric is undefined on the full data,
    there is no interval (``None``).

    Args:
        names: Metrics of the task.
        task: The task.
        y_true: True codes or values.
        y_pred: Predicted codes or values.
        proba: Class probabilities ``(n, k)`` or ``None``.
        n_classes: Number of classes (ignored for regression).
        n_resamples: Bootstrap resamples.
        confidence: Two-sided confidence level, in (0, 1).
        seed: Seed of the resampling; equal seeds give equal intervals.

    Returns:
        Metric name to ``(low, high)`` or ``None``.

    Raises:
        InvalidArgument: Unknown metric, bad inputs, ``n_resamples < 1`` or a confidence
            outside (0, 1).
    """
    for name in names:
        check_metric(name, task)
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise InvalidArgument("n_resamples must be >= 1 and confidence within (0, 1)")
    data = _prepare(task, y_true, y_pred, proba, n_classes)
    result: dict[str, tuple[float, float] | None] = dict.fromkeys(names)
    defined = [name for name in names if _point(name, data) is not None]
    if data.n < 2 or not defined:
        return result

    def statistic(idx: NDArray[np.intp], axis: int = -1) -> NDArray[np.float64]:
        rows = np.atleast_2d(idx)
        resampled = ResampledMetrics(task, data.y_true, data.y_pred, data.proba, data.k, rows)
        values = resampled.values(defined)
        return values if idx.ndim > 1 else values[:, 0]

    with warnings.catch_warnings():
        # scipy warns when a percentile is nan, i.e. when some resample left a metric
        # undefined; those resamples are dropped below instead.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (np.arange(data.n),),
            statistic,
            n_resamples=n_resamples,
            batch=max(1, min(n_resamples, _BOOTSTRAP_CELLS // data.n)),
            vectorized=True,
            method="percentile",
            confidence_level=confidence,
            rng=np.random.default_rng(seed),
        )
    distribution = np.atleast_2d(res.bootstrap_distribution)
    alpha = (1.0 - confidence) / 2.0
    for row, name in enumerate(defined):
        values = distribution[row]
        finite = np.isfinite(values)
        if finite.mean() < _MIN_DEFINED_SHARE:
            continue
        if finite.all():
            low = np.atleast_1d(res.confidence_interval.low)[row]
            high = np.atleast_1d(res.confidence_interval.high)[row]
        else:
            low, high = stats.quantile(values[finite], np.array([alpha, 1.0 - alpha]))
        result[name] = (float(low), float(high))
    return result


def bootstrap_interval(
    name: str,
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None,
    n_classes: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of one metric (see ``bootstrap_intervals``).

    Raises:
        InvalidArgument: As ``bootstrap_intervals``.
    """
    return bootstrap_intervals(
        [name],
        task,
        y_true,
        y_pred,
        proba,
        n_classes,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )[name]
