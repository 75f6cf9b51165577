"""Evaluation reports and the generalization check, against sklearn on the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import confusion_matrix, recall_score
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from shipyard.core.errors import InvalidArgument
from shipyard.train.evaluate import (
    NULL_SLICE,
    OTHER_SLICE,
    EvaluationReport,
    evaluate,
    generalization_check,
)
from shipyard.train.metrics import compute_metrics, metric_names


def _binary(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p1 = np.clip(0.3 + 0.35 * y + rng.normal(0, 0.2, n), 0.0, 1.0)
    return y, (p1 > 0.5).astype(int), np.c_[1 - p1, p1]


def test_binary_report() -> None:
    y, pred, proba = _binary()
    report = evaluate("binary", y, pred, proba, ["no", "yes"], n_resamples=200)
    assert report.n_rows == 300
    assert report.classes == ["no", "yes"]
    assert list(report.metrics) == metric_names("binary")
    points = compute_metrics("binary", y, pred, proba, 2)
    for name, metric in report.metrics.items():
        assert metric.value == points[name]
        assert metric.low is not None
        assert metric.high is not None
        assert metric.low <= metric.value <= metric.high  # type: ignore[operator]
    assert report.per_class_recall == pytest.approx(
        dict(zip(["no", "yes"], recall_score(y, pred, average=None), strict=True))
    )
    assert report.confusion == confusion_matrix(y, pred).tolist()
    assert report.slices == {}


def test_report_round_trips_through_json() -> None:
    y, pred, proba = _binary()
    y[:] = 0  # ROC-AUC undefined: None must survive the trip
    region = np.array(["north", "south", None] * 100, dtype=object)
    report = evaluate(
        "binary", y, pred, proba, [False, True], slices={"region": region}, n_resamples=50
    )
    assert report.metrics["roc_auc"].value is None
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert EvaluationReport.from_dict(json.loads(text)) == report
    with pytest.raises(InvalidArgument, match="not an evaluation report"):
        EvaluationReport.from_dict({"task": "binary"})


def test_slices_are_computed_per_value() -> None:
    y, pred, proba = _binary(400, seed=2)
    rng = np.random.default_rng(3)
    segment = rng.choice(["a", "b", "c"], 400, p=[0.6, 0.35, 0.05])
    score = rng.normal(size=400)
    score[:10] = np.nan
    report = evaluate(
        "binary",
        y,
        pred,
        proba,
        [0, 1],
        slices={"segment": segment, "missing": score},
        n_resamples=0,
        min_slice_rows=30,
        max_slices=3,
    )
    for value, part in report.slices["segment"].items():
        rows = segment == value
        assert part.n_rows == rows.sum()
        assert part.small == (rows.sum() < 30)
        assert part.metrics == compute_metrics("binary", y[rows], pred[rows], proba[rows], 2)
    assert report.slices["segment"]["c"].small
    assert not report.slices["segment"]["a"].small
    # Continuous values: three slices kept, the rest pooled; NaN is the null slice.
    missing = report.slices["missing"]
    assert missing[NULL_SLICE].n_rows == 10
    assert missing[OTHER_SLICE].n_rows == 400 - 10 - 2
    assert sum(part.n_rows for part in missing.values()) == 400
    assert report.metrics["accuracy"].low is None  # n_resamples=0: no intervals
    with pytest.raises(InvalidArgument, match="slice column"):
        evaluate("binary", y, pred, proba, [0, 1], slices={"x": [1, 2]}, n_resamples=0)


def test_multiclass_and_regression_reports() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    report = evaluate("multiclass", y, proba.argmax(1), proba, ["a", "b", "c"], n_resamples=50)
    assert set(report.per_class_recall or {}) == {"a", "b", "c"}
    assert np.asarray(report.confusion).sum() == 200

    target = rng.normal(5, 2, 200)
    predicted = target + rng.normal(0, 1, 200)
    reg = evaluate("regression", target, predicted, None, None, n_resamples=50)
    assert list(reg.metrics) == ["rmse", "mae", "r2", "mape"]
    assert reg.per_class_recall is None
    assert reg.confusion is None
    assert reg.classes is None
    expected = compute_metrics("regression", target, predicted, None, 0)
    assert {name: m.value for name, m in reg.metrics.items()} == expected


@pytest.fixture(scope="module")
def noisy() -> tuple[np.ndarray, ...]:
    x, y = make_classification(
        n_samples=1000, n_features=8, n_informative=4, flip_y=0.25, random_state=0
    )
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0, stratify=y))


def test_unlimited_tree_is_flagged_overfit(noisy: tuple[np.ndarray, ...]) -> None:
    x_train, x_test, y_train, y_test = noisy
    tree = DecisionTreeClassifier(random_state=0)
    cv = cross_val_score(tree, x_train, y_train, cv=5, scoring="accuracy")
    tree.fit(x_train, y_train)
    train, test = tree.score(x_train, y_train), tree.score(x_test, y_test)
    assert train == 1.0
    check = generalization_check("accuracy", train, cv, test)
    assert check.verdict == "overfit"
    assert check.gap == pytest.approx(train - min(cv.mean(), test))
    assert "regularization" in check.message
    assert "more training data" in check.message


def test_regularized_logistic_regression_passes(noisy: tuple[np.ndarray, ...]) -> None:
    x_train, x_test, y_train, y_test = noisy
    model = LogisticRegression(C=0.1)
    cv = cross_val_score(model, x_train, y_train, cv=5, scoring="accuracy")
    model.fit(x_train, y_train)
    check = generalization_check(
        "accuracy", model.score(x_train, y_train), cv, model.score(x_test, y_test)
    )
    assert check.verdict == "ok", check.message
    assert check.cv_std == pytest.approx(np.std(cv, ddof=1))


def test_loss_metrics_are_oriented() -> None:
    x, y = make_regression(n_samples=1000, n_features=5, noise=30.0, random_state=0)
    tree = DecisionTreeRegressor(random_state=0)
    cv = -cross_val_score(tree, x, y, cv=4, scoring="neg_root_mean_squared_error")
    tree.fit(x, y)
    train_rmse = float(np.sqrt(np.mean((tree.predict(x) - y) ** 2)))
    assert generalization_check("rmse", train_rmse, cv, float(cv.mean())).verdict == "overfit"

    ridge = Ridge(alpha=1.0)
    cv = -cross_val_score(ridge, x, y, cv=4, scoring="neg_root_mean_squared_error")
    ridge.fit(x, y)
    train_rmse = float(np.sqrt(np.mean((ridge.predict(x) - y) ** 2)))
    check = generalization_check("rmse", train_rmse, cv, float(cv.mean()))
    assert check.verdict == "ok", check.message
    # A held-out loss far above training is over-fitting; far below is not.
    assert generalization_check("log_loss", 0.2, [0.4, 0.41], 0.4).verdict == "overfit"
    assert generalization_check("log_loss", 0.4, [0.4, 0.41], 0.4).verdict == "ok"


def test_unstable_estimates_are_flagged() -> None:
    spread = generalization_check("accuracy", 0.80, [0.6, 0.9, 0.75, 0.95, 0.8], 0.80)
    assert spread.verdict == "unstable"
    assert "more folds" in spread.message
    surprise = generalization_check("accuracy", 0.81, [0.80, 0.81, 0.80, 0.81], 0.70)
    # Training agrees with CV, so nothing was memorized: the test score is the surprise.
    assert surprise.verdict == "unstable"
    surprise = generalization_check("accuracy", 0.70, [0.80, 0.81, 0.80, 0.81], 0.70)
    assert surprise.verdict == "unstable"  # test far outside CV ± 3 std
    close = generalization_check("accuracy", 0.80, [0.80, 0.80], 0.79)
    assert close.verdict == "ok"  # zero CV spread: the tolerance floor keeps this quiet


def test_generalization_check_refuses_bad_input() -> None:
    with pytest.raises(InvalidArgument, match="finite"):
        generalization_check("accuracy", 0.9, [], 0.8)
    with pytest.raises(InvalidArgument, match="finite"):
        generalization_check("accuracy", float("nan"), [0.8], 0.8)
    with pytest.raises(InvalidArgument, match="tolerance"):
        generalization_check("accuracy", 0.9, [0.8], 0.8, tolerance=0.0)
    with pytest.raises(InvalidArgument, match="unknown metric"):
        generalization_check("nope", 0.9, [0.8], 0.8)
