"""The small edits the MLflow API needs, on both backends: renames, tag delete, latest steps."""

from __future__ import annotations

import math

import pytest

from shipyard.core.errors import AlreadyExists, ExperimentNotFound, RunNotFound
from shipyard.store import run_edits
from shipyard.track.workspace import Workspace


def test_experiments_by_id_and_renamed(workspace: Workspace) -> None:
    engine = workspace.store.engine
    with workspace.start_run(experiment="first"):
        pass
    with workspace.start_run(experiment="taken"):
        pass
    first = workspace.store.get_experiment("first")
    assert run_edits.experiment_by_id(engine, first.experiment_id).name == "first"
    with pytest.raises(AlreadyExists, match="taken"):
        run_edits.rename_experiment(engine, first.experiment_id, "taken")
    run_edits.rename_experiment(engine, first.experiment_id, "renamed")
    assert run_edits.experiment_by_id(engine, first.experiment_id).name == "renamed"
    with pytest.raises(ExperimentNotFound):
        run_edits.experiment_by_id(engine, "0" * 32)
    with pytest.raises(ExperimentNotFound):
        run_edits.rename_experiment(engine, "0" * 32, "x")


def test_runs_renamed_tags_deleted_latest_points(workspace: Workspace) -> None:
    engine = workspace.store.engine
    with workspace.start_run(name="before", tags={"a": "1", "b": "2"}) as run:
        run.log_metric("loss", 0.5, step=3, timestamp=10)
        run.log_metric("loss", math.nan, step=7, timestamp=20)
        assert run_edits.run_state(engine, run.run_id) == "running"
    run_edits.rename_run(engine, run.run_id, "after")
    assert run_edits.delete_tag(engine, run.run_id, "a")
    assert not run_edits.delete_tag(engine, run.run_id, "a")
    stored = workspace.get_run(run.run_id)
    assert (stored.name, stored.tags) == ("after", {"b": "2"})
    value, step, at = run_edits.latest_points(engine, [run.run_id])[run.run_id]["loss"]
    assert (math.isnan(value), step, at) == (True, 7, 20)
    assert run_edits.run_state(engine, run.run_id) == "finished"
    assert run_edits.run_state(engine, "f" * 32) is None
    assert run_edits.latest_points(engine, []) == {}
    with pytest.raises(RunNotFound):
        run_edits.rename_run(engine, "f" * 32, "x")
