"""The ``ray`` executor against a real two-node Ray cluster: same seed, same results as local.

The cluster (``tests/ray_cluster.py``) is started once per session, by the first test here,
with one CPU per node; the data is tiny so the whole module stays within seconds of Ray's own
start-up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psutil
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.core.executor import Executor, LocalExecutor, executor_for
from shipyard.core.ray_executor import RayExecutor
from shipyard.core.settings import ExecutorSettings, RegistrySettings, parse_executor
from shipyard.store.entities import RunStatus
from shipyard.track.workspace import Workspace
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train
from tests.ray_cluster import shared_cluster, wait_for_nodes

pytestmark = pytest.mark.slow
# Not imported here: Ray reads its auth settings (set by ``shared_cluster``) when imported.
if importlib.util.find_spec("ray") is None:
    pytest.skip("the ray extra is not installed", allow_module_level=True)


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of the session's two-node cluster, with this process connected to it."""
    # Shared by this session's xdist workers (their base temps share a parent); keyed by the
    # virtualenv, so another checkout's session never runs its tasks on this code's cluster.
    venv = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    root = tmp_path_factory.getbasetemp().parent / f"ray-cluster-{venv}"
    with shared_cluster(root) as address:
        import ray

        executor_for(ExecutorSettings(kind="ray", address=address))
        wait_for_nodes(ray, 2)
        try:
            yield address
        finally:
            ray.shutdown()


def _ray(address: str, **options: object) -> Executor:
    return executor_for(parse_executor({"kind": "ray", "address": address, **options}))


def _cancer(rows: int = 240) -> pl.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return pl.from_pandas(frame).head(rows)


def _spec(estimator: EstimatorSpec, trials: int, **extra: object) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "target": "target",
            "estimators": [estimator],
            "tuning": {"trials": trials, "sampler": "random"},
            "cv": {"folds": 3},
            "bootstrap_resamples": 20,
            "explain": False,
            "plots": False,
            **extra,
        }
    )


LOGISTIC = EstimatorSpec(name="logistic", space={"C": {"low": 0.01, "high": 10.0, "log": True}})


def _children(workspace: Workspace, parent: str) -> dict[str, object]:
    runs = workspace.search_runs(f"parent_run_id = '{parent}'", limit=None)
    return {r.name: r for r in runs}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_tuning_and_nested_cv_on_ray_match_local(workspace: Workspace, ray_address: str) -> None:
    spec = _spec(LOGISTIC, trials=4, cv={"folds": 3, "nested": True, "outer_folds": 2})
    frame = _cancer()
    results, children = {}, {}
    for name, executor in (("local", LocalExecutor()), ("ray", _ray(ray_address))):
        with workspace.start_run(name=f"train-{name}") as run:
            results[name] = train(spec, frame, run=run, executor=executor)
        children[name] = _children(workspace, run.run_id)
    local, remote = results["local"], results["ray"]
    assert remote.tuning.best.number == local.tuning.best.number
    assert remote.tuning.best.params == local.tuning.best.params
    assert [t.fold_scores for t in remote.tuning.trials] == [
        t.fold_scores for t in local.tuning.trials
    ]
    assert remote.scores == local.scores  # same model, same test rows: identical metrics
    assert remote.nested == local.nested
    # Child runs: the same names, params, metric names and values, recorded by the driver.
    assert children["ray"].keys() == children["local"].keys() == {f"trial-{i}" for i in range(4)}
    for name, child in children["ray"].items():
        twin = children["local"][name]
        assert child.status == twin.status == RunStatus.FINISHED  # type: ignore[attr-defined]
        assert child.params == twin.params  # type: ignore[attr-defined]
        assert child.tags == twin.tags  # type: ignore[attr-defined]
        assert child.metrics.keys() == twin.metrics.keys()  # type: ignore[attr-defined]
        assert child.metrics["cv_roc_auc"] == twin.metrics["cv_roc_auc"]  # type: ignore[attr-defined]


def _kill_first_task_worker(stop: threading.Event, killed: list[int], label: str) -> None:
    """SIGKILL the first Ray worker seen running one of this test's tasks.

    A worker's process title is ``ray::<task name>``; the label keeps other tests' tasks on
    the shared cluster (pytest-xdist) out of reach.
    """
    while not stop.is_set():
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            if cmdline and cmdline[0].startswith(f"ray::{label}."):
                os.kill(process.pid, signal.SIGKILL)
                killed.append(process.pid)
                return
        time.sleep(0.01)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("retries", [0, 1])
def test_a_worker_killed_mid_trial_is_retried_or_fails_that_trial_and_the_study_completes(
    workspace: Workspace, ray_address: str, retries: int
) -> None:
    forest = EstimatorSpec(
        name="random_forest",
        params={"n_estimators": 60},
        space={"max_depth": {"low": 2, "high": 6}},
    )
    spec = _spec(forest, trials=3)
    label = f"kill-{uuid.uuid4().hex[:8]}"
    settings = ExecutorSettings(kind="ray", address=ray_address, max_retries=retries, in_flight=1)
    executor = RayExecutor(settings, label=label)
    stop, killed = threading.Event(), []
    killer = threading.Thread(
        target=_kill_first_task_worker, args=(stop, killed, label), daemon=True
    )
    killer.start()
    try:
        with workspace.start_run(name="train") as run:
            result = train(spec, _cancer(), run=run, executor=executor)
    finally:
        stop.set()
        killer.join(timeout=30)
    assert killed, "no Ray worker was seen running a trial"
    states = [t.state for t in result.tuning.trials]
    assert len(states) == 3
    assert result.scores["test"] is not None  # the study went on and a model was fitted
    children = _children(workspace, run.run_id).values()
    failed = [c for c in children if c.status == RunStatus.FAILED]  # type: ignore[attr-defined]
    if retries:  # the killed trial ran again on a fresh worker
        assert states == ["complete"] * 3
        assert not failed
    else:
        assert states.count("failed") == 1
        assert len(failed) == 1
        assert "WorkerCrashedError" in (failed[0].error or "")  # type: ignore[attr-defined]


def test_batch_scoring_in_partitions_on_ray_writes_what_local_writes(
    tmp_path: Path, ray_address: str
) -> None:
    from shipyard.serve.batch import score_file
    from shipyard.serve.batch_partitions import score_file_on
    from tests.unit.serve.conftest import make_bundle

    bundle = make_bundle(tmp_path)
    data = next(tmp_path.glob("*.shipyard")).read_bytes()
    n = 1000
    frame = pl.DataFrame(
        {
            "tenure": [float(i % 60) for i in range(n)],
            "charges": [None if i == 20 else 50.0 + i % 7 for i in range(n)],
            "plan": [
                "gold" if i in (10, 700) else ["basic", "plus", "pro"][i % 3] for i in range(n)
            ],
        }
    )
    source = tmp_path / "in.csv"
    frame.write_csv(source)
    local = score_file(bundle, source, tmp_path / "local.parquet", chunk_rows=128)
    remote = score_file_on(
        _ray(ray_address),
        data,
        bundle.sha256,
        source,
        tmp_path / "ray.parquet",
        limits=RegistrySettings(),
        chunk_rows=128,
    )
    assert (remote.rows_in, remote.rows_scored, remote.rows_rejected) == (n, n - 3, 3)
    assert (local.rows_in, local.rows_scored, local.rows_rejected, local.chunks) == (
        remote.rows_in, remote.rows_scored, remote.rows_rejected, remote.chunks,
    )  # fmt: skip
    assert remote.conserved
    assert pl.read_parquet(remote.output).equals(pl.read_parquet(local.output))
    assert remote.rejects is not None
    assert local.rejects is not None
    assert remote.rejects.read_bytes() == local.rejects.read_bytes()
    assert not list(tmp_path.glob("*.partial"))


PROJECT = """
name: shop
sources:
  orders:
    uri: orders-*.csv
    harmonize: {cast: {order_id: int64, amount: float64}}
contract:
  policy: quarantine
  columns:
    order_id: {type: int64, nullable: false}
    amount: {type: float64, min: 0}
"""


def test_ingest_of_many_files_on_ray_gives_the_same_datasets(
    tmp_path: Path, ray_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.data.datasets import list_datasets
    from shipyard.pipeline.project import load_project
    from shipyard.pipeline.runner import run_pipeline
    from tests.identities import OPERATOR

    (tmp_path / "shipyard.yaml").write_text(PROJECT)
    for f in range(4):
        lines = ["order_id,amount,note"]
        lines += [f"{f * 100 + i},{(i % 9) - 1},n{i}" for i in range(40)]  # amount -1: quarantined
        lines += [f"{f * 100 + 99},7,too,many"]  # wrong field count: rejected
        (tmp_path / f"orders-{f}.csv").write_text("\n".join(lines) + "\n")

    def run() -> tuple[dict[str, str], list[tuple[str, int, int, int]]]:
        with Workspace.open(tmp_path) as workspace:
            report = run_pipeline(workspace, load_project(tmp_path), actor=OPERATOR)
            versions = {v.name: v.dataset_id for v in list_datasets(workspace)}
        assert report.conserved
        counts = [(s.name, s.rows_in, s.rows_out, s.rows_quarantined) for s in report.stages]
        return versions, counts

    local = run()
    shutil.rmtree(tmp_path / ".shipyard")
    monkeypatch.setenv("SHIPYARD_EXECUTOR__KIND", "ray")
    monkeypatch.setenv("SHIPYARD_EXECUTOR__ADDRESS", ray_address)
    from shipyard.data.connectors import csv_parallel

    calls = []
    read_files_on = csv_parallel.read_files_on

    def spy(executor: Executor, connector: object) -> object:
        calls.append(executor.name)
        return read_files_on(executor, connector)  # type: ignore[arg-type]

    monkeypatch.setattr(csv_parallel, "read_files_on", spy)
    remote = run()
    assert calls == ["ray"]  # one task per file went through the cluster
    assert remote == local
    assert local[1][0] == ("ingest:orders", 164, 160, 4)


def test_the_predict_command_scores_on_ray_as_it_does_locally(
    tmp_path: Path,
    ray_address: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from shipyard.registry.registry import ModelRegistry
    from tests.identities import OPERATOR
    from tests.unit.cli.running import cli
    from tests.unit.serve.conftest import churn_frame, make_bundle

    make_bundle(tmp_path / "bundles")
    with Workspace.open(tmp_path) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        registry.register("churn", next((tmp_path / "bundles").glob("*.shipyard")), actor=OPERATOR)
    source = tmp_path / "in.parquet"
    churn_frame(900, seed=3).drop("churned").write_parquet(source)
    # The command sets these for its process; the test puts them back afterwards.
    monkeypatch.setenv("SHIPYARD_EXECUTOR__KIND", "local")
    monkeypatch.setenv("SHIPYARD_EXECUTOR__ADDRESS", ray_address)
    args = ["-C", str(tmp_path), "predict", "churn:1", str(source)]
    local = cli(capsys, *args, str(tmp_path / "local.parquet"), "--chunk-rows", "200")
    assert local.code == 0, local.err
    remote = cli(capsys, *args, str(tmp_path / "ray.parquet"), "--chunk-rows", "200",
                 "--executor", "ray", "--ray-address", ray_address)  # fmt: skip
    assert remote.code == 0, remote.err
    assert "900 rows: 900 scored" in remote.out
    assert pl.read_parquet(tmp_path / "ray.parquet").equals(
        pl.read_parquet(tmp_path / "local.parquet")
    )
