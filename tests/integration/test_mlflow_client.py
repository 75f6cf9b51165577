"""The official MLflow client against a real Shipyard tracking server, read back through Shipyard.

Issue 22: unchanged MLflow code (experiment, run, params, 1,000 metrics by step, tags, an
artifact, ``log_batch``, ``search_runs`` with a filter, a registered model version and an
alias) with only ``MLFLOW_TRACKING_URI`` and ``MLFLOW_TRACKING_TOKEN`` set; then every value
is read back through Shipyard's own API (workspace, registry, audit log).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from shipyard.registry.registry import ModelRegistry
from shipyard.security.roles import Role
from shipyard.store.entities import RunStatus
from tests.mlflow_server import TrackingServer, tracking_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

mlflow = pytest.importorskip("mlflow", reason="the MLflow client (mlflow-skinny) is not installed")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    with tracking_server(tmp_path_factory.mktemp("mlflow-ws")) as running:
        yield running


@pytest.fixture
def client_env(server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> str:
    token = server.token(Role.DATA_SCIENTIST, name=None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server.url)
    return token


def test_an_ordinary_mlflow_script_is_read_back_through_shipyard(
    server: TrackingServer, client_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    notes = tmp_path / "notes.txt"
    notes.write_text("trained on march data\n")
    mlflow.set_experiment("churn-mlflow")
    with mlflow.start_run(run_name="baseline") as active:
        run_id = active.info.run_id
        mlflow.log_params({"lr": 0.05, "depth": 6, "model": "lgbm"})
        for step in range(1000):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tags({"team": "risk", "stage": "dev"})
        mlflow.log_artifact(str(notes))
        mlflow.log_artifact(str(notes), artifact_path="reports")
        MlflowClient().log_batch(
            run_id,
            metrics=[
                Metric("auc", 0.91, 1_700_000_000_000, 0),
                Metric("auc", 0.93, 1_700_000_000_500, 1),
            ],
            params=[Param("optimizer", "adam")],
            tags=[RunTag("owner", "ana")],
        )
        # read-your-writes: the history right after logging holds every value
        assert len(MlflowClient().get_metric_history(run_id, "loss")) == 1000
    found = mlflow.search_runs(
        experiment_names=["churn-mlflow"],
        filter_string="metrics.auc > 0.92 AND params.model = 'lgbm' AND tags.team = 'risk'",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [run_id]
    assert (
        mlflow.search_runs(
            experiment_names=["churn-mlflow"],
            filter_string="metrics.auc > 0.95",
            output_format="list",
        )
        == []
    )
    client = MlflowClient()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token(Role.ML_ENGINEER))
    client.create_registered_model("churn-mlflow-model")
    version = client.create_model_version(
        "churn-mlflow-model", f"runs:/{run_id}/model", run_id=run_id
    )
    client.set_registered_model_alias("churn-mlflow-model", "champion", version.version)
    assert client.get_model_version_by_alias("churn-mlflow-model", "champion").version == "1"
    assert [a.path for a in client.list_artifacts(run_id)] == ["notes.txt", "reports"]

    # -- every value, read back through Shipyard's own API ----------------------------------
    workspace = server.workspace
    run = workspace.get_run(run_id)
    assert run.experiment == "churn-mlflow"
    assert run.name == "baseline"
    assert run.status is RunStatus.FINISHED
    assert run.params == {"lr": "0.05", "depth": "6", "model": "lgbm", "optimizer": "adam"}
    assert {k: run.tags[k] for k in ("team", "stage", "owner")} == {
        "team": "risk",
        "stage": "dev",
        "owner": "ana",
    }
    assert run.metrics["loss"] == pytest.approx(1 / 1000)
    assert run.metrics["auc"] == pytest.approx(0.93)
    history = workspace.metric_history(run_id, "loss")
    assert [p.step for p in history] == list(range(1000))
    assert all(math.isclose(p.value, 1 / (p.step + 1)) for p in history)
    assert [(p.value, p.timestamp_ms) for p in workspace.metric_history(run_id, "auc")] == [
        (0.91, 1_700_000_000_000),
        (0.93, 1_700_000_000_500),
    ]
    assert workspace.read_artifact(run_id, "notes.txt") == notes.read_bytes()
    assert workspace.read_artifact(run_id, "reports/notes.txt") == notes.read_bytes()
    registry = ModelRegistry.for_workspace(workspace)
    assert registry.aliases("churn-mlflow-model") == {"champion": 1}
    stored = registry.get("churn-mlflow-model@champion")
    assert (stored.run_id, stored.lineage["mlflow_source"]) == (run_id, f"runs:/{run_id}/model")
    actions = [(e.action, e.object) for e in registry.security.list_audit()]
    assert ("models.register", "model:churn-mlflow-model") in actions
    assert ("models.promote", "churn-mlflow-model@champion") in actions
    assert "churn-mlflow" in [e.name for e in workspace.list_experiments()]


def test_search_pages_and_orders_like_mlflow(server: TrackingServer, client_env: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.create_experiment("paging")
    for i in range(5):
        run = client.create_run(experiment_id, run_name=f"r{i}")
        client.log_metric(run.info.run_id, "score", float(i))
        client.set_terminated(run.info.run_id)
    first = client.search_runs([experiment_id], order_by=["metrics.score DESC"], max_results=2)
    assert [r.data.metrics["score"] for r in first] == [4.0, 3.0]
    second = client.search_runs(
        [experiment_id], order_by=["metrics.score DESC"], max_results=2, page_token=first.token
    )
    assert [r.data.metrics["score"] for r in second] == [2.0, 1.0]
    named = client.search_runs([experiment_id], filter_string="attributes.run_name = 'r3'")
    assert [r.info.run_name for r in named] == ["r3"]
    with pytest.raises(mlflow.exceptions.MlflowException, match="already exists"):
        client.create_experiment("paging")


def test_nested_runs_and_log_metrics_become_shipyard_children(
    server: TrackingServer, client_env: str
) -> None:
    mlflow.set_experiment("nested")
    with mlflow.start_run(run_name="parent") as parent, mlflow.start_run(nested=True) as child:
        mlflow.log_metrics({"a": 1.0, "b": float("nan")}, step=2)
    stored = server.workspace.get_run(child.info.run_id)
    assert stored.parent_run_id == parent.info.run_id
    assert stored.metrics["a"] == 1.0
    assert math.isnan(stored.metrics["b"])
    fetched = mlflow.get_run(child.info.run_id)
    assert math.isnan(fetched.data.metrics["b"])


@pytest.mark.postgres
def test_the_same_calls_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    with tracking_server(tmp_path / "ws", store_url=pg_url) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token(Role.ML_ENGINEER))
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        experiment_id = client.create_experiment("pg")
        run_id = client.create_run(experiment_id, run_name="pg-run").info.run_id
        for step in range(50):
            client.log_metric(run_id, "loss", float("nan") if step == 3 else step, step=step)
        client.log_param(run_id, "lr", "0.1")
        client.set_terminated(run_id)
        found = client.search_runs([experiment_id], filter_string="metrics.loss >= 49")
        assert [r.info.run_id for r in found] == [run_id]
        client.create_registered_model("pg-model")
        client.create_model_version("pg-model", f"runs:/{run_id}/model", run_id=run_id)
        client.set_registered_model_alias("pg-model", "champion", "1")
        client.delete_registered_model_alias("pg-model", "champion")
        history = server.workspace.metric_history(run_id, "loss")
        assert len(history) == 50
        assert math.isnan(history[3].value)
        assert ModelRegistry.for_workspace(server.workspace).aliases("pg-model") == {}
