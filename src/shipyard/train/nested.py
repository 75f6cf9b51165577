"""Nested cross-validation: an unbiased estimate of the whole tune-then-fit procedure.

The ordinary CV score of the winning trial is optimistic (it is the maximum of many noisy
scores). Nested CV repeats the search inside each outer fold and scores its winner on the outer
fold it never saw; the spread of those scores is what to expect from re-running the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.train.fitting import build_pipeline, fit_pipeline, predict_scores
from shipyard.train.metrics import compute_metric
from shipyard.train.splits import cv_folds, cv_splitter
from shipyard.train.tuning import tune

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.core.executor import Executor
    from shipyard.train.preprocess import Columns
    from shipyard.train.spec import Task, TrainSpec
    from shipyard.train.splits import IntArray


@dataclass(frozen=True)
class _Nested:
    """What every outer fold reads (shipped once to the executor's workers)."""

    spec: TrainSpec
    inner_spec: TrainSpec
    task: Task
    columns: Columns
    x: pd.DataFrame
    y: np.ndarray[Any, Any]
    groups: np.ndarray[Any, Any] | None
    metric: str
    n_classes: int


def nested_cv_scores(
    spec: TrainSpec,
    task: Task,
    columns: Columns,
    x: pd.DataFrame,
    y: np.ndarray[Any, Any],
    groups: np.ndarray[Any, Any] | None,
    metric: str,
    n_classes: int,
    executor: Executor | None = None,
) -> dict[str, float]:
    """Score the tuning procedure on ``spec.cv.outer_folds`` outer folds.

    Each outer fold gets the spec's trial budget divided by the number of outer folds (at least
    five) and no child runs, so the estimate costs about one extra search. With an executor,
    each outer fold (its inner search included) is one of its tasks; a fold that fails counts
    as a missing score, as an undefined metric does.
    """
    outer_spec = spec.cv.model_copy(update={"folds": spec.cv.outer_folds})
    outer = cv_folds(cv_splitter(outer_spec, spec.split, task, seed=spec.seed), x, y, groups)
    trials = max(spec.tuning.trials // len(outer), 5)
    inner_spec = spec.model_copy(
        update={"tuning": spec.tuning.model_copy(update={"trials": trials, "child_runs": False})}
    )
    shared = _Nested(spec, inner_spec, task, columns, x, y, groups, metric, n_classes)
    if executor is None or executor.name == "local":
        scores = [_outer_fold(shared, fold) for fold in outer]
    else:
        results = executor.map(_outer_fold, shared, outer)
        scores = [np.nan if r.value is None else r.value for r in results]
    return {
        "mean": float(np.nanmean(scores)),
        "std": float(np.nanstd(scores)),
        "folds": float(len(scores)),
    }


def _outer_fold(shared: _Nested, fold: tuple[IntArray, IntArray]) -> float:
    """Tune on the outer fold's training rows; score the winner on its held-out rows."""
    from shipyard.train.trainer import single_threaded_quiet_fits

    s, (train, test) = shared, fold
    x_train, y_train = s.x.iloc[train], s.y[train]
    inner_groups = None if s.groups is None else s.groups[train]
    with single_threaded_quiet_fits():
        splitter = cv_splitter(s.spec.cv, s.spec.split, s.task, seed=s.spec.seed)
        inner = cv_folds(splitter, x_train, y_train, inner_groups)
        found = tune(
            s.inner_spec, s.task, s.columns, x_train, y_train, inner,
            metric=s.metric, n_classes=s.n_classes,
        )  # fmt: skip
        minority = int(np.bincount(y_train.astype(np.int64)).min()) if s.n_classes else 0
        candidate = found.best.candidate
        model = build_pipeline(s.inner_spec, s.task, s.columns, candidate, minority_rows=minority)
        fit_pipeline(model, x_train, y_train, spec=s.inner_spec, task=s.task, candidate=candidate)
        pred, proba = predict_scores(model, s.x.iloc[test], s.task)
    value = compute_metric(s.metric, s.task, s.y[test], pred, proba, s.n_classes)
    return float(np.nan if value is None else value)
