"""``shipyard cost`` on a real experiment: breast cancer, three model families, a few trials."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.core.settings import load_settings
from shipyard.cost.attribution import run_cost
from shipyard.cost.catalog import active_instance
from shipyard.serve.load_report import save_load_report, summarize
from shipyard.track.workspace import Workspace
from tests.unit.cli.running import cli


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from shipyard.registry.packaging import write_training_bundle
    from shipyard.train.spec import EstimatorSpec, TrainSpec
    from shipyard.train.trainer import train

    root = tmp_path_factory.mktemp("cost-project")
    data = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame = pl.from_pandas(data)
    spec = TrainSpec(
        target="target",
        metric="roc_auc",
        estimators=[
            EstimatorSpec(name="logistic", space={"C": {"low": 0.01, "high": 10, "log": True}}),
            EstimatorSpec(name="random_forest", params={"n_estimators": 30}),
            EstimatorSpec(name="lightgbm", params={"n_estimators": 30}),
        ],
        tuning={"trials": 6, "sampler": "random"},
        cv={"folds": 2},
        bootstrap_resamples=20,
        explain=False,
        seed=0,
    )
    with Workspace.open(root) as ws:
        with ws.start_run(name="train", experiment="bc") as run:
            result = train(spec, frame, run=run)
            run_id = run.run_id
        path = root / "bc.shipyard"
        write_training_bundle(
            result,
            path,
            name="bc",
            created_at=dt.datetime.now(dt.UTC),
            run_id=run_id,
            dataset_ids={},
            code_version=None,
        )
        report = summarize(
            latencies_ms=[5.0] * 90 + [30.0] * 10,
            statuses=[200] * 100,
            error_kinds=[None] * 100,
            missed_sends=0,
            late_sends=0,
            duration_s=0.5,
            config={"mode": "concurrency", "concurrency": 4},
        )
        loadtest = save_load_report(ws, report, target="http://127.0.0.1:9/models/bc/predict")
    return {"root": str(root), "run": run_id, "bundle": str(path), "loadtest": loadtest}


def test_advise_names_a_model_and_the_price_of_the_last_points(capsys, monkeypatch, project):
    monkeypatch.setenv("COLUMNS", "200")
    root = project["root"]
    code, out, err = cli(
        capsys, "-C", root, "cost", "advise", "bc", "--tolerance", "0.01", "--json"
    )
    assert code == 0, err
    advice = json.loads(out)
    assert advice["run_id"] == project["run"]
    assert advice["metric"] == "roc_auc"
    families = {c["estimator"] for c in advice["pareto_front"]}
    assert advice["chosen"]["estimator"] in {"logistic", "random_forest", "lightgbm"}
    assert families  # a front exists
    assert advice["best"]["score"] - advice["chosen"]["score"] <= 0.01 + 1e-9
    chosen_serving = Decimal(str(advice["chosen"]["per_thousand"]))
    best_serving = Decimal(str(advice["best"]["per_thousand"]))
    assert chosen_serving <= best_serving
    assert Decimal(str(advice["extra_per_thousand"])) == best_serving - chosen_serving
    assert len(advice["best_so_far"]) >= 3
    assert advice["best_so_far"] == sorted(advice["best_so_far"])  # roc_auc: higher is better
    assert Path(advice["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, out, err = cli(capsys, "-C", root, "cost", "advise", "bc", "--tolerance", "0.01")
    assert code == 0, err
    assert "choose trial" in out
    assert "per 1,000" in out or "also the cheapest" in out
    assert "example prices" in out


def test_report_by_experiment_day_and_model_is_the_hand_computed_cost(capsys, monkeypatch, project):
    monkeypatch.setenv("COLUMNS", "200")
    root = project["root"]
    code, _, err = cli(
        capsys, "-C", root, "models", "register", "bc", project["bundle"], "--run", project["run"]
    )
    assert code == 0, err
    with Workspace.open(root) as ws:
        training = ws.get_run(project["run"])
        expected = run_cost(training.resources, active_instance(ws.settings)).usd
    code, out, err = cli(capsys, "-C", root, "cost", "report", "--by", "experiment", "--json")
    assert code == 0, err
    document = json.loads(out)
    # The trials ran inside the training run's process: counted once, in the parent.
    assert Decimal(str(document["costs"]["bc"])) == expected
    assert document["storage_per_month"]["hot"]["bytes"] > 0
    assert Path(document["plot"]).is_file()
    code, out, err = cli(capsys, "-C", root, "cost", "report", "--by", "model", "--json")
    assert code == 0, err
    assert Decimal(str(json.loads(out)["costs"]["bc:1"])) == expected
    code, out, err = cli(capsys, "-C", root, "cost", "report", "--by", "day")
    assert code == 0, err
    assert "Compute cost by day" in out
    assert "plot:" in out
    assert "Storage per month" in out


def test_rightsize_from_the_stored_load_test(capsys, monkeypatch, project):
    monkeypatch.setenv("COLUMNS", "200")
    root = project["root"]
    args = ("-C", root, "cost", "rightsize", "--loadtest", project["loadtest"])
    code, out, err = cli(capsys, *args, "--rps", "2000", "--p99-ms", "50", "--json")
    assert code == 0, err
    sizing = json.loads(out)
    cheapest = sizing["plans"][0]
    assert cheapest["replicas"] >= 1
    assert Decimal(cheapest["reserved_monthly"]) == min(
        Decimal(p["reserved_monthly"]) for p in sizing["plans"]
    )
    code, out, err = cli(capsys, *args, "--rps", "2000", "--p99-ms", "10")
    assert code == 2
    assert "above the 10 ms target" in err


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("cost", "report", "--by", "week"), "--by must be one of"),
        (("cost", "report", "--rule", "per_gpu"), "--rule must be one of"),
        (("cost", "advise", "nothing-here"), "no training run"),
        (("cost", "advise", "bc", "--basis", "vibes"), "--basis"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, project, args, problem):
    code, _, err = cli(capsys, "-C", project["root"], *args)
    assert code == 2
    assert problem in err


def test_unknown_instance_in_settings_exits_2(capsys, tmp_path):
    (tmp_path / "shipyard.yaml").write_text("cost:\n  instance_type: z9.huge\n", encoding="utf-8")
    code, _, err = cli(capsys, "-C", str(tmp_path), "cost", "report")
    assert code == 2
    assert "z9.huge" in err
    assert load_settings(project_dir=tmp_path).cost.instance_type == "z9.huge"


def test_advise_finds_the_training_run_that_shipyard_run_nests(capsys, monkeypatch, tmp_path):
    """``shipyard run`` trains in a child of the pipeline run, not in a root run."""
    from shipyard.train.spec import EstimatorSpec, TrainSpec
    from shipyard.train.trainer import train

    monkeypatch.setenv("COLUMNS", "200")
    data = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    spec = TrainSpec(
        target="target",
        metric="roc_auc",
        estimators=[
            EstimatorSpec(name="logistic", space={"C": {"low": 0.01, "high": 10, "log": True}})
        ],
        tuning={"trials": 3, "sampler": "random"},
        cv={"folds": 2},
        bootstrap_resamples=20,
        explain=False,
    )
    with (
        Workspace.open(tmp_path) as ws,
        ws.start_run(name="pipeline", experiment="clinic-pipeline") as pipeline,
        pipeline.child(name="train", tags={"kind": "train"}) as training,
    ):
        train(spec, pl.from_pandas(data), run=training)
        training_id = training.run_id
    for experiment in ("clinic-pipeline", "clinic"):  # the project's name finds it too
        code, out, err = cli(capsys, "-C", str(tmp_path), "cost", "advise", experiment, "--json")
        assert code == 0, err
        advice = json.loads(out)
        assert advice["run_id"] == training_id
        assert len(advice["best_so_far"]) == 3  # its trials, found under the nested run
