"""A project's learning curve: the data and candidate training would use, recorded as a run."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.pipeline.curves import PLOT_ARTIFACT, project_curve
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

TRAIN = """
train:
  target: target
  metric: roc_auc
  estimators:
    - name: logistic
      space: {C: {low: 0.01, high: 10.0, log: true}}
  tuning: {trials: 2, sampler: random}
  cv: {folds: 2}
  bootstrap_resamples: 20
  explain: false
"""


def write_project(root: Path, *, train: str = TRAIN, register: bool = True) -> Path:
    """A breast-cancer project: one Parquet source, and the ``train:`` section given."""
    data = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    (root / "data").mkdir(parents=True, exist_ok=True)
    pl.from_pandas(data).write_parquet(root / "data" / "cancer.parquet")
    text = f"name: bc\nsources:\n  sk:\n    uri: data/cancer.parquet\n{train}"
    if train and register:
        text += "  register: {model: cancer, promote_to: production}\n"
    (root / "shipyard.yaml").write_text(text)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project after one ``shipyard run`` (a dataset, a production model); its dataset."""
    root = write_project(tmp_path_factory.mktemp("curve-project"))
    with Workspace.open(root) as workspace:
        report = run_pipeline(workspace, load_project(root), actor=OPERATOR)
    assert report.training is not None
    assert report.training.promotion is not None
    assert report.final_dataset is not None
    return root, report.final_dataset


def test_the_curve_refits_the_production_model_on_its_own_test_rows(
    trained: tuple[Path, str],
) -> None:
    root, final_dataset = trained
    project = load_project(root)
    with Workspace.open(root) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        production = registry.get("cancer@production")
        params = registry.load(production).manifest.metrics["params"]
        outcome = project_curve(workspace, project, fractions=(0.25, 1.0), repeats=2)
        run = workspace.get_run(outcome.run_id)
        artifacts = {a.name for a in workspace.list_artifacts(run.run_id)}
        document = json.loads(workspace.read_artifact(run.run_id, "curve.json"))

    curve = outcome.curve
    assert outcome.source == f"{production.ref} (production)"
    assert curve.candidate.estimator == "logistic"
    assert curve.candidate.params == params
    assert outcome.dataset_id == final_dataset
    # all the training rows, the production params and seed: the production model's test score
    full = curve.points[-1]
    assert full.rows == curve.train_rows
    assert full.scores[0] == pytest.approx(production.metrics["test"], abs=1e-12)

    assert run.experiment == "bc-curves"
    assert run.status.value == "finished"
    assert run.params["estimator"] == "logistic"
    assert run.params["fractions"] == "0.25,1"
    assert run.params["metric"] == "roc_auc"
    assert run.metrics["f0.25/rows"] == curve.points[0].rows
    assert run.metrics["f1/roc_auc_mean"] == pytest.approx(full.mean)
    assert run.metrics["f1/cpu_seconds"] == pytest.approx(full.mean_cpu_seconds)
    assert float(run.metrics["f1/cost_usd"]) == pytest.approx(float(full.cost_usd or 0))
    assert run.tags["summary"] == curve.summary()
    assert {PLOT_ARTIFACT, "curve.json"} <= artifacts
    assert document["dataset"] == outcome.dataset_id
    assert [p["rows"] for p in document["points"]] == [p.rows for p in curve.points]
    assert outcome.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_registered_model_the_spec_first_estimator_is_used(tmp_path: Path) -> None:
    root = write_project(tmp_path, register=False)
    project = load_project(root)
    with Workspace.open(root) as workspace:
        run_pipeline(workspace, project, actor=OPERATOR)
        outcome = project_curve(workspace, project, fractions=(0.5, 1.0), repeats=1)
    assert outcome.source == "spec: logistic"
    assert outcome.curve.candidate.params == {}


def test_a_project_without_train_is_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path, train="")
    with (
        Workspace.open(root) as workspace,
        pytest.raises(InvalidArgument, match=r"no train: section in shipyard\.yaml"),
    ):
        project_curve(workspace, load_project(root))
    with Workspace.open(root) as workspace:
        assert workspace.search_runs(experiments=["bc-curves"]) == []


def test_a_project_never_run_says_to_run_it_first(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    with (
        Workspace.open(root) as workspace,
        pytest.raises(NotFound, match=r"no dataset yet; run `shipyard run` first"),
    ):
        project_curve(workspace, load_project(root))
