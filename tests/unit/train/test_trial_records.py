"""Tuning trials are child runs written in batches: complete, ended, and all or nothing."""

from __future__ import annotations

import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.core.errors import InvalidName
from shipyard.store.entities import RunStatus
from shipyard.track.workspace import Workspace
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train
from shipyard.train.trial_records import TrialRecorder

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def _cancer() -> pl.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return pl.from_pandas(frame).head(300)


def _children(workspace: Workspace, parent: str):  # type: ignore[no-untyped-def]
    return workspace.search_runs(f"parent_run_id = '{parent}'", limit=None)


def test_every_trial_is_an_ended_child_run_with_its_scores(workspace: Workspace) -> None:
    spec = TrainSpec.model_validate(
        {
            "target": "target",
            "estimators": [
                EstimatorSpec(
                    name="logistic", space={"C": {"low": 1e-4, "high": 10.0, "log": True}}
                )
            ],
            "tuning": {"trials": 12, "sampler": "tpe"},
            "cv": {"folds": 3},
            "bootstrap_resamples": 20,
            "explain": False,
        }
    )
    with workspace.start_run(name="train") as run:
        result = train(spec, _cancer(), run=run)
    children = {c.run_id: c for c in _children(workspace, run.run_id)}
    assert len(children) == 12
    for trial in result.tuning.trials:
        child = children[trial.run_id]  # type: ignore[index]
        assert child.name == f"trial-{trial.number}"
        assert child.status == RunStatus.FINISHED
        assert child.tags["kind"] == "trial"
        assert child.params["estimator"] == "logistic"
        assert float(child.params["C"]) == pytest.approx(trial.params["C"])
        assert child.tags.get("trial_state", "complete") == trial.state
        assert child.metrics["cv_roc_auc"] == pytest.approx(trial.mean)
        assert "duration_s" in child.metrics
        assert child.end_ms is not None
        assert child.end_ms >= child.start_ms
        assert child.resources.wall_seconds is not None
        assert child.resources.wall_seconds > 0
        folds = workspace.metric_history(child.run_id, "fold_roc_auc")
        assert [p.step for p in folds] == list(range(len(trial.fold_scores)))
        assert [p.value for p in folds] == pytest.approx(trial.fold_scores)


def test_trials_are_written_in_batches_and_at_the_end(workspace: Workspace) -> None:
    with workspace.start_run(name="search") as run:
        recorder = TrialRecorder(run, batch_size=3, interval_s=3600)
        for number in range(2):
            trial = recorder.start(number, {"estimator": "x", "alpha": 0.1 * number})
            trial.log_metric("fold_auc", 0.5, step=0)
            recorder.add(trial.end(RunStatus.FINISHED))
        recorder.maybe_write()
        assert _children(workspace, run.run_id) == []  # not due yet: no round trip
        failed = recorder.start(2, {"estimator": "x"})
        recorder.add(failed.end(RunStatus.FAILED, "ValueError: boom"))
        recorder.maybe_write()
        assert len(_children(workspace, run.run_id)) == 3
        last = recorder.start(3, {"estimator": "x"})
        recorder.add(last.end(RunStatus.FINISHED))
        recorder.write()
    children = {c.name: c for c in _children(workspace, run.run_id)}
    assert sorted(children) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert children["trial-2"].status == RunStatus.FAILED
    assert children["trial-2"].error == "ValueError: boom"
    assert children["trial-1"].params == {"estimator": "x", "alpha": "0.1"}
    assert children["trial-0"].metrics == {"fold_auc": 0.5}


def test_a_bad_record_writes_none_of_the_batch_and_keeps_it(workspace: Workspace) -> None:
    with workspace.start_run(name="search") as run:
        recorder = TrialRecorder(run, batch_size=10, interval_s=3600)
        good = recorder.start(0, {"estimator": "x"})
        good.log_metric("fold_auc", 0.7)
        recorder.add(good.end(RunStatus.FINISHED))
        bad = recorder.start(1, {"bad/../name": 1})
        recorder.add(bad.end(RunStatus.FINISHED))
        with pytest.raises(InvalidName):
            recorder.write()
        assert _children(workspace, run.run_id) == []
        assert workspace.store.count_metrics() == 0
        # Still queued, in order, for the next write once the bad one is dealt with.
        bad.record.params = {"estimator": "x"}
        recorder.write()
    assert sorted(c.name for c in _children(workspace, run.run_id)) == ["trial-0", "trial-1"]
