"""The metric catalogue, checked against scikit-learn called directly on the same data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from shipyard.core.errors import InvalidArgument
from shipyard.train.metrics import (
    METRICS,
    bootstrap_interval,
    bootstrap_intervals,
    check_metric,
    compute_metric,
    compute_metrics,
    greater_is_better,
    metric_names,
    per_class_recall,
)
from shipyard.train.resampled import ResampledMetrics

Data = tuple[np.ndarray, np.ndarray, np.ndarray | None, int]


def classification(n: int, k: int, seed: int = 0, *, ties: bool = False) -> Data:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if ties:  # coarse scores: many rows share a threshold
        proba = np.round(proba, 1) + 1e-3
        proba /= proba.sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba, k


def regression(n: int, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    y = rng.normal(10.0, 3.0, n)
    return y, y + rng.normal(0.0, 1.5, n), None, 0


DATA: dict[str, Data] = {
    "binary": classification(400, 2),
    "multiclass": classification(400, 4, seed=1),
    "regression": regression(400),
}


def _macro(score: Callable[..., Any]) -> Callable[..., float]:
    def compute(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, k: int) -> float:
        if k == 2:
            return score(y, pred)
        return score(y, pred, average="macro")

    return compute


# Independent references: sklearn as a user would call it.
REFERENCE: dict[str, Callable[[np.ndarray, np.ndarray, Any, int], float]] = {
    "accuracy": lambda y, p, pr, k: skm.accuracy_score(y, p),
    "balanced_accuracy": lambda y, p, pr, k: skm.balanced_accuracy_score(y, p),
    "precision": _macro(skm.precision_score),
    "recall": _macro(skm.recall_score),
    "f1": _macro(skm.f1_score),
    "roc_auc": lambda y, p, pr, k: (
        skm.roc_auc_score(y, pr[:, 1]) if k == 2 else skm.roc_auc_score(y, pr, multi_class="ovr")
    ),
    "pr_auc": lambda y, p, pr, k: (
        skm.average_precision_score(y, pr[:, 1])
        if k == 2
        else skm.average_precision_score(label_binarize(y, classes=range(k)), pr)
    ),
    "log_loss": lambda y, p, pr, k: skm.log_loss(y, pr),
    "brier": lambda y, p, pr, k: (
        skm.brier_score_loss(y, pr[:, 1]) if k == 2 else skm.brier_score_loss(y, pr)
    ),
    "mae": lambda y, p, pr, k: skm.mean_absolute_error(y, p),
    "rmse": lambda y, p, pr, k: np.sqrt(skm.mean_squared_error(y, p)),
    "r2": lambda y, p, pr, k: skm.r2_score(y, p),
    "mape": lambda y, p, pr, k: skm.mean_absolute_percentage_error(y, p),
}

CASES = [(task, name) for task in DATA for name in metric_names(task)]


@pytest.mark.parametrize(("task", "name"), CASES)
def test_metric_equals_sklearn(task: str, name: str) -> None:
    y, pred, proba, k = DATA[task]
    expected = REFERENCE[name](y, pred, proba, k)
    assert compute_metric(name, task, y, pred, proba, k) == pytest.approx(expected, rel=1e-12)


def test_compute_metrics_in_report_order() -> None:
    y, pred, proba, k = DATA["binary"]
    values = compute_metrics("binary", y, pred, proba, k)
    assert list(values) == metric_names("binary")
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert compute_metrics("binary", y, pred, proba, k, names=["f1"]) == {
        "f1": pytest.approx(skm.f1_score(y, pred))
    }


def test_catalogue() -> None:
    assert metric_names("binary")[:3] == ["pr_auc", "balanced_accuracy", "recall"]
    assert metric_names("regression") == ["rmse", "mae", "r2", "mape"]
    assert set(metric_names("multiclass")) | set(metric_names("regression")) == set(METRICS)
    assert [greater_is_better(n) for n in ("roc_auc", "log_loss", "rmse", "r2")] == [
        True,
        False,
        False,
        True,
    ]
    assert all(METRICS[n].needs_proba for n in ("roc_auc", "pr_auc", "log_loss", "brier"))
    assert check_metric("rmse", "regression").name == "rmse"
    with pytest.raises(InvalidArgument, match="rmse, mae, r2, mape"):
        check_metric("roc_auc", "regression")
    with pytest.raises(InvalidArgument, match="unknown metric"):
        greater_is_better("nope")
    with pytest.raises(InvalidArgument, match="unknown task"):
        metric_names("ranking")  # type: ignore[arg-type]


def test_undefined_metrics_are_none_without_warnings() -> None:
    # pytest turns any warning into an error, so these also prove "no warning".
    zeros = np.zeros(20, dtype=int)
    proba = np.tile([0.7, 0.3], (20, 1))
    one_class = compute_metrics("binary", zeros, zeros, proba, 2)
    assert one_class["roc_auc"] is None
    assert one_class["pr_auc"] is None
    assert one_class["recall"] is None  # no actual positive
    assert one_class["precision"] is None  # no predicted positive
    assert one_class["f1"] is None
    assert one_class["accuracy"] == 1.0
    assert one_class["balanced_accuracy"] == 1.0
    assert one_class["log_loss"] == pytest.approx(skm.log_loss(zeros, proba, labels=[0, 1]))
    assert one_class["brier"] == pytest.approx(0.09)

    y, pred, proba3, _ = classification(60, 3)
    missing = y != 2
    multi = compute_metrics("multiclass", y[missing], pred[missing], proba3[missing], 3)
    assert multi["roc_auc"] is None
    assert multi["pr_auc"] is None
    assert multi["recall"] == pytest.approx(
        skm.recall_score(y[missing], pred[missing], labels=[0, 1], average="macro")
    )

    assert compute_metric("mape", "regression", [0.0, 1.0], [0.5, 1.0], None, 0) is None
    assert compute_metric("r2", "regression", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0], None, 0) is None
    assert compute_metric("r2", "regression", [2.0], [1.0], None, 0) is None
    assert compute_metrics("regression", [], [], None, 0) == dict.fromkeys(
        metric_names("regression")
    )
    # Without probabilities the probability metrics are undefined, the others are not.
    no_proba = compute_metrics("binary", y[:20] % 2, pred[:20] % 2, None, 2)
    assert no_proba["roc_auc"] is None
    assert no_proba["accuracy"] is not None


def test_bad_inputs_are_refused() -> None:
    y, pred, proba, k = DATA["binary"]
    with pytest.raises(InvalidArgument, match="class codes"):
        compute_metric("accuracy", "binary", y + 1, pred, proba, k)
    with pytest.raises(InvalidArgument, match="sum to 1"):
        compute_metric("log_loss", "binary", y, pred, proba * 0.5, k)
    with pytest.raises(InvalidArgument, match="shape"):
        compute_metric("log_loss", "binary", y, pred, proba[:, :1], k)
    with pytest.raises(InvalidArgument, match="equal length"):
        compute_metric("accuracy", "binary", y, pred[:-1], None, k)
    with pytest.raises(InvalidArgument, match="2 classes"):
        compute_metric("accuracy", "binary", y, pred, None, 3)
    with pytest.raises(InvalidArgument, match="finite"):
        compute_metric("rmse", "regression", [1.0, np.nan], [1.0, 2.0], None, 0)


def test_float32_probabilities_are_accepted() -> None:
    y, pred, proba, k = DATA["multiclass"]
    low_precision = proba.astype(np.float32)
    value = compute_metric("log_loss", "multiclass", y, pred, low_precision, k)
    assert value == pytest.approx(skm.log_loss(y, proba), rel=1e-5)


def test_per_class_recall() -> None:
    y, pred, _, k = DATA["multiclass"]
    expected = skm.recall_score(y, pred, average=None)
    assert per_class_recall(y, pred, k) == pytest.approx(list(expected))
    assert per_class_recall([0, 0, 1], [0, 1, 1], 3) == [0.5, 1.0, None]


@pytest.mark.parametrize(
    ("task", "ties"),
    [
        ("binary", False),
        ("binary", True),
        ("multiclass", False),
        ("multiclass", True),
        ("regression", False),
    ],
)
def test_resampled_kernels_equal_sklearn_on_each_resample(task: str, ties: bool) -> None:
    if task == "regression":
        y, pred, proba, k = regression(300, seed=3)
    else:
        y, pred, proba, k = classification(300, 2 if task == "binary" else 3, 3, ties=ties)
    idx = np.random.default_rng(4).integers(0, 300, (4, 300))
    names = metric_names(task)
    values = ResampledMetrics(task, y, pred, proba, k, idx).values(names)
    for b in range(idx.shape[0]):
        rows = idx[b]
        sub = None if proba is None else proba[rows]
        for i, name in enumerate(names):
            expected = REFERENCE[name](y[rows], pred[rows], sub, k)
            assert values[i, b] == pytest.approx(expected, rel=1e-10), name


def test_resampled_kernels_mark_undefined_resamples_nan() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    idx = np.array([[0, 1, 0, 1], [0, 2, 3, 3]])  # the first draws no positive
    values = ResampledMetrics("binary", y, y, proba, 2, idx).values(["roc_auc", "pr_auc"])
    assert np.isnan(values[:, 0]).all()
    assert values[:, 1] == pytest.approx([1.0, 1.0])


def test_interval_contains_point_and_narrows_with_n() -> None:
    widths = []
    for n in (200, 3200):
        y, pred, proba, k = classification(n, 2, seed=5)
        intervals = bootstrap_intervals(
            metric_names("binary"), "binary", y, pred, proba, k, n_resamples=300
        )
        points = compute_metrics("binary", y, pred, proba, k)
        for name, interval in intervals.items():
            assert interval is not None
            low, high = interval
            assert low <= points[name] <= high, name  # type: ignore[operator]
        widths.append(intervals["roc_auc"][1] - intervals["roc_auc"][0])  # type: ignore[index]
    assert widths[1] < widths[0] / 2  # ~1/sqrt(n): 16x the rows, a quarter of the width


def test_interval_is_seeded() -> None:
    y, pred, _, _ = regression(300, seed=6)
    first = bootstrap_interval("rmse", "regression", y, pred, None, 0, n_resamples=200, seed=1)
    again = bootstrap_interval("rmse", "regression", y, pred, None, 0, n_resamples=200, seed=1)
    other = bootstrap_interval("rmse", "regression", y, pred, None, 0, n_resamples=200, seed=2)
    assert first == again
    assert first != other
    assert first is not None
    errors = y - pred
    rng = np.random.default_rng(9)  # an independent percentile bootstrap lands close by
    draws = [np.sqrt(np.mean(errors[rng.integers(0, 300, 300)] ** 2)) for _ in range(2000)]
    assert first == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])), rel=0.03)


def test_interval_skips_resamples_where_metric_is_undefined() -> None:
    # Three positives in 200 rows: about 5% of resamples draw none, where ROC-AUC is undefined.
    rng = np.random.default_rng(8)
    y = np.zeros(200, dtype=int)
    y[:3] = 1
    p1 = np.clip(0.2 + 0.5 * y + rng.normal(0, 0.15, 200), 0.0, 1.0)
    proba = np.c_[1 - p1, p1]
    interval = bootstrap_interval("roc_auc", "binary", y, (p1 > 0.5).astype(int), proba, 2)
    assert interval is not None
    assert 0.0 <= interval[0] <= interval[1] <= 1.0
    # Three classes with one row each: a resample holds all of them with chance 0.63^3, so
    # most resamples leave one-vs-rest ROC-AUC undefined and no honest interval exists.
    y4 = np.zeros(200, dtype=int)
    y4[:3] = [1, 2, 3]
    proba4 = np.full((200, 4), 0.1)
    proba4[np.arange(200), y4] = 0.7
    assert compute_metric("roc_auc", "multiclass", y4, y4, proba4, 4) == 1.0
    assert bootstrap_interval("roc_auc", "multiclass", y4, y4, proba4, 4, n_resamples=200) is None


def test_interval_of_undefined_metric_is_none() -> None:
    zeros = np.zeros(50, dtype=int)
    proba = np.tile([0.8, 0.2], (50, 1))
    assert bootstrap_interval("roc_auc", "binary", zeros, zeros, proba, 2) is None
    assert bootstrap_interval("accuracy", "binary", zeros[:1], zeros[:1], None, 2) is None
    assert bootstrap_interval("accuracy", "binary", zeros, zeros, None, 2, n_resamples=50) == (
        1.0,
        1.0,
    )
    with pytest.raises(InvalidArgument, match="n_resamples"):
        bootstrap_interval("accuracy", "binary", zeros, zeros, None, 2, n_resamples=0)
    with pytest.raises(InvalidArgument, match="confidence"):
        bootstrap_interval("accuracy", "binary", zeros, zeros, None, 2, confidence=1.5)


@pytest.mark.slow
def test_bootstrap_intervals_of_every_metric_at_full_size() -> None:
    """1000 resamples of 2,000 rows, every metric of each task (speed is a benchmark's, not
    a test's: a busy CI machine may be arbitrarily slower)."""
    for task, data in (
        ("binary", classification(2000, 2)),
        ("multiclass", classification(2000, 4)),
        ("regression", regression(2000)),
    ):
        intervals = bootstrap_intervals(metric_names(task), task, *data, n_resamples=1000)
        assert all(v is not None for v in intervals.values())
