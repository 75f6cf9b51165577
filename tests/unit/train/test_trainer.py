"""The training job end to end, on real data, checked against what it promises."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.train import estimators
from shipyard.train.estimators import EstimatorKind
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import infer_task, train


def _cancer() -> pl.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return pl.from_pandas(frame)


def _quick(**extra) -> TrainSpec:
    base = {
        "target": "target",
        "estimators": [
            EstimatorSpec(name="logistic", space={"C": {"low": 0.01, "high": 10.0, "log": True}})
        ],
        "tuning": {"trials": 4},
        "cv": {"folds": 3},
        "bootstrap_resamples": 200,
    }
    return TrainSpec.model_validate({**base, **extra})


def test_binary_training_is_tuned_thresholded_evaluated_and_reproducible():
    frame = _cancer()
    first = train(_quick(explain=True, plots=True), frame)
    again = train(_quick(explain=True, plots=True), frame)
    assert first.task == "binary"
    assert first.metric == "roc_auc"
    assert first.scores == again.scores  # same data + spec + seed => identical numbers
    assert first.evaluation.to_dict() == again.evaluation.to_dict()
    assert len(first.tuning.trials) == 4
    assert sum(first.split_sizes.values()) == frame.height
    assert first.evaluation.n_rows == first.split_sizes["test"]
    assert 0.0 < first.threshold.threshold < 1.0
    assert first.scores["test"] > 0.95
    auc = first.evaluation.metrics["roc_auc"]
    assert auc.low <= auc.value <= auc.high
    assert set(first.importance) == set(first.columns.features)
    assert "roc.png" in first.plots
    assert first.plots["roc.png"].startswith(b"\x89PNG")
    assert first.reference.sample.height <= frame.height


def test_a_different_seed_changes_the_split():
    frame = _cancer()
    quick = {"explain": False, "tuning": {"trials": 1}}
    assert (
        train(_quick(seed=1, **quick), frame).scores != train(_quick(seed=2, **quick), frame).scores
    )


def test_regression_on_diabetes_and_nested_cv():
    frame = pl.from_pandas(load_diabetes(as_frame=True).frame)
    spec = TrainSpec(
        target="target",
        estimators=[
            EstimatorSpec(name="linear", space={"alpha": {"low": 0.01, "high": 10.0, "log": True}})
        ],
        tuning={"trials": 3},
        cv={"folds": 3, "nested": True, "outer_folds": 2},
        bootstrap_resamples=100,
    )
    result = train(spec, frame)
    assert result.task == "regression"
    assert result.metric == "rmse"
    assert result.threshold is None
    assert 40 < result.scores["test"] < 80  # a linear model's RMSE on diabetes is ~55
    assert result.nested is not None
    assert result.nested["folds"] == 2
    assert 40 < result.nested["mean"] < 80


def test_task_inference():
    assert infer_task(pl.Series([0.5, 1.5])) == "regression"
    assert infer_task(pl.Series([0, 1, 1])) == "binary"
    assert infer_task(pl.Series(["a", "b", "c"])) == "multiclass"
    assert infer_task(pl.Series(list(range(50)))) == "regression"


def test_categorical_features_and_missing_values_are_handled_in_the_pipeline():
    rng = np.random.default_rng(0)
    n = 600
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    y = ((colour == "red") ^ (size > 0.5)).astype(int)
    size[rng.random(n) < 0.1] = np.nan
    frame = pl.DataFrame({"colour": colour, "size": size, "target": y}).with_columns(
        pl.when(pl.int_range(pl.len()) % 17 == 0)
        .then(None)
        .otherwise(pl.col("colour"))
        .alias("colour"),
        pl.col("size").fill_nan(None),
    )
    spec = _quick(
        estimators=[EstimatorSpec(name="hist_gradient_boosting", params={"max_iter": 30})],
        tuning={"trials": 1},
        explain=False,
    )
    result = train(spec, frame)
    assert result.columns.categorical == ("colour",)
    assert result.columns.numeric == ("size",)
    assert result.scores["test"] > 0.8


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({"target": "nope"}, InvalidData, "not in the data"),
        ({"metric": "rmse"}, InvalidArgument, "not available for a binary task"),
        ({"estimators": [{"name": "svm"}]}, InvalidArgument, "unknown estimator"),
        ({"estimators": [{"name": "linear"}]}, InvalidArgument, "cannot do binary"),
        (
            {
                "tuning": {"sampler": "grid"},
                "estimators": [{"name": "logistic", "space": {"C": {"low": 0.1, "high": 1.0}}}],
            },
            InvalidArgument,
            "list its values",
        ),
        ({"slices": ["nope"]}, InvalidData, "not in the data"),
    ],
)
def test_bad_specs_fail_with_the_fix(spec, error, message):
    with pytest.raises(error, match=message):
        train(_quick(**spec), _cancer())


def test_one_class_target_is_refused():
    frame = _cancer().with_columns(pl.lit(1).alias("target"))
    with pytest.raises(InvalidData, match="one class only"):
        train(_quick(), frame)


def test_grid_search_walks_every_point():
    spec = _quick(
        tuning={"sampler": "grid", "trials": 100},
        estimators=[
            {"name": "logistic", "space": {"C": [0.1, 1.0, 10.0]}},
            {
                "name": "random_forest",
                "params": {"n_estimators": 10},
                "space": {"max_depth": [2, 4]},
            },
        ],
    )
    result = train(spec, _cancer())
    tried = {(t.estimator, next(iter(t.params.values()))) for t in result.tuning.trials if t.params}
    assert {("logistic", 0.1), ("logistic", 1.0), ("logistic", 10.0)} <= tried
    assert len(result.tuning.trials) == 5


def test_multi_objective_search_keeps_a_pareto_front():
    spec = _quick(
        tuning={"trials": 6, "objectives": ["latency"], "sampler": "random"}, explain=False
    )
    result = train(spec, _cancer())
    assert result.tuning.objectives == ["latency"]
    assert result.tuning.pareto
    front = result.tuning.pareto
    # No trial on the front is beaten on both objectives by another finished trial.
    done = [t for t in result.tuning.trials if t.state == "complete"]
    for p in front:
        assert not any(o.mean > p.mean and o.latency_us < p.latency_us for o in done)
    assert result.tuning.best in front


def test_wall_time_budget_stops_the_search():
    spec = _quick(tuning={"trials": 10_000, "timeout_s": 2.0}, explain=False)
    result = train(spec, _cancer())
    assert 1 <= len(result.tuning.trials) < 10_000


# -- imbalance ----------------------------------------------------------------------------


class RowRecorder(ClassifierMixin, BaseEstimator):
    """A logistic regression that remembers every row it was fitted on and asked about.

    It stands in for the estimator (not for the pipeline, the sampler or the trainer, which
    are what the test checks), so the test can see which rows reach which call.
    """

    fitted: list[np.ndarray] = []
    predicted: list[np.ndarray] = []

    def __init__(self) -> None:
        from sklearn.linear_model import LogisticRegression

        self.inner = LogisticRegression(max_iter=1000)

    def fit(self, x, y):
        RowRecorder.fitted.append(np.asarray(x).copy())
        self.inner.fit(x, y)
        self.classes_ = self.inner.classes_
        return self

    def predict_proba(self, x):
        RowRecorder.predicted.append(np.asarray(x).copy())
        return self.inner.predict_proba(x)

    def predict(self, x):
        return np.argmax(self.predict_proba(x), axis=1)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "classes_")


def _imbalanced(n: int, seed: int) -> pl.DataFrame:
    x, y = make_classification(
        n_samples=n, n_features=8, n_informative=4, weights=[0.99], flip_y=0.0, random_state=seed
    )
    return pl.DataFrame({**{f"f{i}": x[:, i] for i in range(8)}, "target": y})


def test_no_resampled_row_reaches_validation_test_or_fold_scoring(monkeypatch):
    kind = EstimatorKind("recorder", estimators.CLASSIFICATION, lambda *_: RowRecorder())
    monkeypatch.setitem(estimators.ESTIMATORS, "recorder", kind)
    RowRecorder.fitted, RowRecorder.predicted = [], []
    frame = _imbalanced(3000, seed=1)
    spec = TrainSpec(
        target="target",
        estimators=[EstimatorSpec(name="recorder")],
        imbalance={"resample": "smote"},
        preprocess={"scale": "none"},
        tuning={"trials": 1},
        cv={"folds": 3},
        bootstrap_resamples=50,
        explain=False,  # permutation importance scores shuffled (not resampled) rows
    )
    result = train(spec, frame)
    original = {tuple(row) for row in frame.drop("target").to_numpy().round(9)}

    def synthetic(rows: np.ndarray) -> int:
        return sum(tuple(r) not in original for r in rows.round(9))

    # SMOTE made new rows for every fit (nothing to search: the fit on the training rows and
    # the refit on train + validation) ...
    assert len(RowRecorder.fitted) == 2
    assert all(synthetic(rows) > 0 for rows in RowRecorder.fitted)
    # ... and none of them was ever scored: every predicted row is a real row.
    assert RowRecorder.predicted
    assert all(synthetic(rows) == 0 for rows in RowRecorder.predicted)
    # The test rows evaluated are exactly the held-out rows, at their true count.
    assert result.evaluation.n_rows == result.split_sizes["test"]
    scored = {len(rows) for rows in RowRecorder.predicted}
    assert result.split_sizes["test"] in scored
    assert result.split_sizes["validation"] in scored


@pytest.mark.slow
def test_in_fold_smote_with_threshold_beats_the_naive_model_on_pr_auc_and_recall():
    frame = _imbalanced(20_000, seed=3)
    assert frame["target"].mean() == pytest.approx(0.01, abs=0.002)
    forest = EstimatorSpec(
        name="random_forest", params={"n_estimators": 60, "min_samples_leaf": 100}
    )
    common = {
        "target": "target",
        "estimators": [forest],
        "metric": "pr_auc",
        "tuning": {"trials": 1},
        "cv": {"folds": 2},
        "bootstrap_resamples": 100,
    }
    naive = train(
        TrainSpec.model_validate({**common, "imbalance": {"threshold": {"goal": "none"}}}), frame
    )
    treated = train(
        TrainSpec.model_validate(
            {**common, "imbalance": {"resample": "smote", "threshold": {"goal": "f1"}}}
        ),
        frame,
    )
    assert naive.split_sizes == treated.split_sizes  # same rows judged
    assert treated.evaluation.metrics["pr_auc"].value > naive.evaluation.metrics["pr_auc"].value
    assert treated.evaluation.metrics["recall"].value > naive.evaluation.metrics["recall"].value
    assert list(treated.evaluation.metrics)[:2] == ["pr_auc", "balanced_accuracy"]


def test_parallel_trials_run_every_trial_once():
    spec = _quick(tuning={"trials": 6, "n_jobs": 2, "sampler": "random"}, explain=False)
    result = train(spec, _cancer())
    assert sorted(t.number for t in result.tuning.trials) == list(range(6))
    assert all(t.state in ("complete", "pruned") for t in result.tuning.trials)
