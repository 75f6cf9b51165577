"""Nested cross-validation: an unbiased estimate of the whole tune-then-fit procedure.

The ordinary CV score of the winning trial is optimistic (it is the maximum of many noisy
scores). Nested CV repeats the search inside each outer fold and scores its winner on the outer
fold it never saw; the spread of those scores is what to expect from re-running the recipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.train.fitting import build_pipeline, fit_pipeline, predict_scores
from shipyard.train.metrics import compute_metric
from shipyard.train.splits import cv_folds, cv_splitter
from shipyard.train.tuning import tune

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.train.preprocess import Columns
    from shipyard.train.spec import Task, TrainSpec


def nested_cv_scores(
    spec: TrainSpec,
    task: Task,
    columns: Columns,
    x: pd.DataFrame,
    y: np.ndarray[Any, Any],
    groups: np.ndarray[Any, Any] | None,
    metric: str,
    n_classes: int,
) -> dict[str, float]:
    """Score the tuning procedure on ``spec.cv.outer_folds`` outer folds.

    Each outer fold gets the spec's trial budget divided by the number of outer folds (at least
    five) and no child runs, so the estimate costs about one extra search.
    """
    outer_spec = spec.cv.model_copy(update={"folds": spec.cv.outer_folds})
    outer = cv_folds(cv_splitter(outer_spec, spec.split, task, seed=spec.seed), x, y, groups)
    trials = max(spec.tuning.trials // len(outer), 5)
    inner_spec = spec.model_copy(
        update={"tuning": spec.tuning.model_copy(update={"trials": trials, "child_runs": False})}
    )
    scores = []
    for train, test in outer:
        x_train, y_train = x.iloc[train], y[train]
        inner_groups = None if groups is None else groups[train]
        splitter = cv_splitter(spec.cv, spec.split, task, seed=spec.seed)
        inner = cv_folds(splitter, x_train, y_train, inner_groups)
        found = tune(
            inner_spec, task, columns, x_train, y_train, inner, metric=metric, n_classes=n_classes
        )
        minority = int(np.bincount(y_train.astype(np.int64)).min()) if n_classes else 0
        model = build_pipeline(
            inner_spec, task, columns, found.best.candidate, minority_rows=minority
        )
        fit_pipeline(
            model, x_train, y_train, spec=inner_spec, task=task, candidate=found.best.candidate
        )
        pred, proba = predict_scores(model, x.iloc[test], task)
        value = compute_metric(metric, task, y[test], pred, proba, n_classes)
        scores.append(np.nan if value is None else value)
    return {
        "mean": float(np.nanmean(scores)),
        "std": float(np.nanstd(scores)),
        "folds": float(len(scores)),
    }
