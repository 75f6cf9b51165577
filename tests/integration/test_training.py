"""`shipyard run` trains, tunes, evaluates and registers on scikit-learn's shipped datasets.

Each project reads the dataset from a Parquet source, so the whole path runs: ingest, validate,
dataset version, split, tuning, refit, threshold, test evaluation, bundle, registry, gate. The
reported test score is checked against a hand-written scikit-learn reference (same model
family and hyperparameter range, its own split and its own cross-validated search): the two
must agree within sampling noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score, roc_auc_score, root_mean_squared_error
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

pytestmark = pytest.mark.slow

CASES = {
    # name: (loader, estimator, space, metric, tolerance on the metric)
    "breast_cancer": (datasets.load_breast_cancer, "logistic", "C", "roc_auc", 0.03),
    "wine": (datasets.load_wine, "logistic", "C", "f1", 0.08),
    "digits": (datasets.load_digits, "logistic", "C", "f1", 0.04),
    "diabetes": (datasets.load_diabetes, "linear", "alpha", "rmse", 8.0),
}


def _frame(loader) -> pl.DataFrame:
    frame = loader(as_frame=True).frame
    frame.columns = [
        str(c).replace(" ", "_").replace("(", "").replace(")", "") for c in frame.columns
    ]
    return pl.from_pandas(frame)


def _write_project(root: Path, name: str) -> pl.DataFrame:
    loader, estimator, param, metric, _ = CASES[name]
    frame = _frame(loader)
    (root / "data").mkdir()
    frame.write_parquet(root / "data" / f"{name}.parquet")
    (root / "shipyard.yaml").write_text(
        f"""
name: {name}
sources:
  sk:
    uri: data/{name}.parquet
train:
  target: target
  metric: {metric}
  estimators:
    - name: {estimator}
      space: {{{param}: {{low: 0.001, high: 100.0, log: true}}}}
  tuning: {{trials: 6}}
  cv: {{folds: 3}}
  bootstrap_resamples: 200
  explain: false
  register: {{model: {name}, promote_to: production}}
"""
    )
    return frame


def _reference(name: str, frame: pl.DataFrame) -> float:
    """The hand-written scikit-learn version of the same job."""
    _, estimator, param, metric, _ = CASES[name]
    x = frame.drop("target").to_numpy()
    y = frame["target"].to_numpy()
    classify = estimator == "logistic"
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=7, stratify=y if classify else None
    )
    model = LogisticRegression(max_iter=2000) if classify else Ridge()
    grid = {f"{type(model).__name__.lower()}__{param}": np.logspace(-3, 2, 6)}
    search = GridSearchCV(make_pipeline(StandardScaler(), model), grid, cv=3)
    search.fit(x_train, y_train)
    if metric == "roc_auc":
        return roc_auc_score(y_test, search.predict_proba(x_test)[:, 1])
    if metric == "f1":
        return f1_score(y_test, search.predict(x_test), average="macro")
    return root_mean_squared_error(y_test, search.predict(x_test))


@pytest.mark.parametrize("name", list(CASES))
def test_shipyard_run_trains_registers_and_matches_a_sklearn_reference(
    tmp_path: Path, name: str
) -> None:
    frame = _write_project(tmp_path, name)
    with Workspace.open(tmp_path) as workspace:
        report = run_pipeline(workspace, load_project(tmp_path), actor=OPERATOR)
        outcome = report.training
        assert outcome is not None
        assert not outcome.cached
        result = outcome.result
        assert result is not None
        tolerance = CASES[name][4]
        expected = _reference(name, frame)
        assert abs(result.scores["test"] - expected) <= tolerance, (result.scores, expected)
        assert result.evaluation.n_rows == result.split_sizes["test"]
        # Registered and promoted (no champion yet: the gate checks contract and sanity only).
        assert outcome.version is not None
        assert outcome.version.version == 1
        registry = ModelRegistry.for_workspace(workspace)
        production = registry.get(f"{name}@production")
        assert production.version == 1
        bundle = registry.load(f"{name}@production")
        predictions = bundle.predict(frame.drop("target"))
        assert len(predictions.labels) == frame.height
        # Running again with nothing changed reuses the training run.
        again = run_pipeline(workspace, load_project(tmp_path), actor=OPERATOR)
        assert again.training is not None
        assert again.training.cached
        assert again.training.run_id == outcome.run_id
