"""``clean`` statistics are fitted on training rows only when the project trains (issue 16).

``clean`` used to fit its imputation medians and outlier bounds on the whole batch before the
split, so the test rows shaped the values written into the training rows. Two projects whose
training rows are identical and whose test rows differ must now train the very same model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import PipelineReport, run_pipeline
from shipyard.track.workspace import Workspace
from shipyard.train.cleaning import fitted_cleaning
from shipyard.train.preprocess import model_input
from tests.identities import OPERATOR

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # two projects are trained

N = 100  # rows 0-59 train, 60-79 validation, 80-99 test (time split); the refit: 0-79

PROJECT = """
name: leak
sources:
  rows: {uri: data/rows.parquet}
steps:
  - clean:
      impute: {x: median, z: mean}
      outliers: {x: {method: iqr, k: 1.5, action: clip}}
train:
  target: y
  exclude: [t]
  estimators: [{name: linear, params: {penalty: none}}]
  split: {strategy: time, time_column: t, test_size: 0.2, validation_size: 0.2}
  cv: {folds: 2}
  tuning: {trials: 1, sampler: random}
  bootstrap_resamples: 0
  explain: false
"""


def rows(test_x: float) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    x = rng.normal(10.0, 2.0, N)
    x[N - 20 :] = test_x  # the test rows: only they differ between the two projects
    z = rng.normal(0.0, 1.0, N)
    y = 3.0 * x + z + rng.normal(0.0, 0.1, N)
    frame = pl.DataFrame({"t": np.arange(N), "x": x, "z": z, "y": y})
    nulls = pl.Series([i % 5 == 0 and i < 60 for i in range(N)])  # missing x in training rows
    return frame.with_columns(pl.when(nulls).then(None).otherwise(pl.col("x")).alias("x"))


def train(root: Path, test_x: float) -> PipelineReport:
    (root / "data").mkdir(parents=True)
    rows(test_x).write_parquet(root / "data" / "rows.parquet")
    (root / "shipyard.yaml").write_text(PROJECT)
    with Workspace.open(root) as workspace:
        return run_pipeline(workspace, load_project(root), actor=OPERATOR)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineReport, PipelineReport]:
    return (
        train(tmp_path_factory.mktemp("ordinary"), 10.0),
        train(tmp_path_factory.mktemp("extreme"), 1e6),
    )


def test_test_rows_do_not_change_the_trained_model(
    pair: tuple[PipelineReport, PipelineReport],
) -> None:
    results = []
    for report in pair:
        assert report.training is not None
        assert report.training.result is not None
        results.append(report.training.result)
    ordinary, extreme = results
    assert ordinary.scores["train"] == pytest.approx(extreme.scores["train"], rel=1e-9)
    # One fit (nothing to tune): its held-out estimate is the validation score.
    assert ordinary.scores["validation"] == pytest.approx(extreme.scores["validation"], rel=1e-9)
    probe = pl.DataFrame({"x": [None, 9.0, 50.0], "z": [0.0, None, 0.0]})
    for result in results:
        assert result.columns.features == ["x", "z"]
    predictions = [r.model.predict(model_input(probe, r.columns)) for r in results]
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-9)


def test_fitted_values_come_from_training_rows_and_are_recorded(
    pair: tuple[PipelineReport, PipelineReport],
) -> None:
    report = pair[1]
    assert report.training is not None
    result = report.training.result
    assert result is not None
    # The shipped model is refitted on train + validation (rows 0-79), never the test rows.
    train_x = rows(1e6)["x"][:80].drop_nulls().to_numpy()
    fitted = fitted_cleaning(result.model)
    assert fitted["impute.x"]["value"] == pytest.approx(float(np.median(train_x)))
    q1, q3 = np.quantile(train_x, [0.25, 0.75])
    assert fitted["outliers.x"]["upper"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    probe = pl.DataFrame({"x": [None, 1e9], "z": [0.0, 0.0]})
    clipped = result.model.predict(model_input(probe, result.columns))
    at_bound = pl.DataFrame({"x": [fitted["impute.x"]["value"], fitted["outliers.x"]["upper"]]})
    expected = result.model.predict(model_input(at_bound.with_columns(z=0.0), result.columns))
    np.testing.assert_allclose(clipped, expected)


def test_the_data_stage_leaves_the_fitted_parts_to_the_model(
    pair: tuple[PipelineReport, PipelineReport],
) -> None:
    stage = next(s for s in pair[1].stages if s.name == "0:clean")
    assert any("fitted on training rows" in w for w in stage.warnings)
