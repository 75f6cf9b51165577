"""A search whose driver died resumes from its stored trials instead of starting over."""

from __future__ import annotations

import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.track.workspace import Workspace
from shipyard.train.resume import interrupted_search, stored_trials
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train
from shipyard.train.tuning import TrialOutcome


def _cancer() -> pl.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return pl.from_pandas(frame).head(240)


SPEC = TrainSpec.model_validate(
    {
        "target": "target",
        "estimators": [
            EstimatorSpec(
                name="logistic",
                params={"max_iter": 300},
                space={"C": {"low": 0.01, "high": 10.0, "log": True}, "penalty": ["l2"]},
            )
        ],
        "tuning": {"trials": 6, "sampler": "tpe"},
        "cv": {"folds": 3},
        "bootstrap_resamples": 20,
        "explain": False,
        "plots": False,
    }
)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_an_interrupted_search_resumes_with_its_stored_trials(workspace: Workspace) -> None:
    seen: list[TrialOutcome] = []

    def die_after_three(trial: TrialOutcome) -> None:
        seen.append(trial)
        if len(seen) == 3:
            raise KeyboardInterrupt  # the driver goes away mid-search

    first = workspace.start_run(name="train")
    first.set_tag("train_key", "k1")
    with pytest.raises(KeyboardInterrupt), first:
        train(SPEC, _cancer(), run=first, on_trial=die_after_three)
    with workspace.start_run(name="train") as second:
        second.set_tag("train_key", "k1")
        assert interrupted_search(workspace, "k1", second.run_id) == first.run_id
        previous = stored_trials(workspace, first.run_id)
        assert [p.number for p in previous] == [0, 1, 2]
        assert [p.mean for p in previous] == pytest.approx([s.mean for s in seen])
        result = train(SPEC, _cancer(), run=second, previous=previous)
    trials = result.tuning.trials
    assert [t.number for t in trials] == list(range(6))  # 3 resumed + 3 new: the budget
    assert [t.params for t in trials[:3]] == [s.params for s in seen]
    for resumed, stored in zip(trials[:3], seen, strict=True):
        assert resumed.fold_scores == pytest.approx(stored.fold_scores)
    resumed_c = {t.params["C"] for t in trials[:3]}
    assert not resumed_c & {t.params["C"] for t in trials[3:]}  # not proposed again
    children = workspace.search_runs(f"parent_run_id = '{second.run_id}'", limit=None)
    assert sorted(c.name for c in children) == ["trial-3", "trial-4", "trial-5"]
    assert result.tuning.best in trials
