"""Budget-aware tuning: trials stop starting at the budget, and the run says why."""

from __future__ import annotations

import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.core.errors import Conflict
from shipyard.cost.budget import TrialBudget
from shipyard.track.workspace import Workspace
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train


def _cancer() -> pl.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return pl.from_pandas(frame).head(300)


def _spec(trials: int) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "target": "target",
            "estimators": [
                EstimatorSpec(
                    name="logistic", space={"C": {"low": 0.01, "high": 10.0, "log": True}}
                )
            ],
            "tuning": {"trials": trials, "sampler": "random"},
            "cv": {"folds": 3},
            "bootstrap_resamples": 50,
            "explain": False,
        }
    )


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_small_budget_stops_tuning_and_the_run_records_why(workspace: Workspace) -> None:
    # Less CPU than any trial takes: the first trial runs (nothing to estimate from), and its
    # cost then shows that no second one fits.
    budget = TrialBudget("tuning", remaining_cpu_seconds=1e-6, limit_text="0.001 cpu_hours")
    with workspace.start_run(name="train") as run:
        result = train(_spec(trials=20), _cancer(), run=run, cost_budget=budget)
    tuning = result.tuning
    assert len(tuning.trials) == 1
    assert tuning.trials[0].cpu_s > 0
    assert tuning.stopped_reason is not None
    assert tuning.stopped_reason.startswith("budget tuning: the next trial would need about")
    assert "1 trials so far" in tuning.stopped_reason
    assert workspace.get_run(run.run_id).tags["tuning.stopped_reason"] == tuning.stopped_reason
    assert result.scores["test"] > 0.9  # the one trial still gives a model


def test_a_roomy_budget_runs_every_trial() -> None:
    roomy = TrialBudget("roomy", remaining_cpu_seconds=1e6, limit_text="300 cpu_hours")
    result = train(_spec(trials=3), _cancer(), cost_budget=roomy)
    assert len(result.tuning.trials) == 3
    assert result.tuning.stopped_reason is None


def test_a_used_up_budget_starts_no_trial() -> None:
    spent = TrialBudget("spent", remaining_cpu_seconds=0.0, limit_text="1 cpu_hours, 1 used")
    with pytest.raises(Conflict, match="no tuning trial started: budget spent is used up"):
        train(_spec(trials=3), _cancer(), cost_budget=spent)
