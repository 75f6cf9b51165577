"""One tuning trial's cross-validation as a function of plain values, here or on a Ray worker.

``TrialPayload`` is what every trial of a search reads (the spec, the training rows, the fixed
folds); with the ``ray`` executor it is put in the object store once per search and each trial
task reads it there. ``score_candidate`` fits and scores the candidate fold by fold into a
``TrialScore``, so a trial that fails or is pruned half-way still shows the folds it finished.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import InvalidData
from shipyard.train.fitting import build_pipeline, fit_pipeline, predict_scores
from shipyard.train.metrics import compute_metric

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from shipyard.train.fitting import Candidate
    from shipyard.train.preprocess import Columns
    from shipyard.train.spec import Task, TrainSpec
    from shipyard.train.splits import IntArray


@dataclass(frozen=True)
class TrialPayload:
    """What every trial of one search reads: spec, training rows, folds, metric."""

    spec: TrainSpec
    task: Task
    columns: Columns
    x: pd.DataFrame
    y: np.ndarray[Any, Any]
    folds: list[tuple[IntArray, IntArray]]
    metric: str
    n_classes: int
    minority_rows: int


@dataclass
class TrialScore:
    """What a trial measured, filled in as its folds finish."""

    fold_scores: list[float] = field(default_factory=list)
    latency_us: float | None = None
    size_bytes: int | None = None
    duration_s: float = 0.0
    cpu_s: float = 0.0


def score_candidate(
    payload: TrialPayload,
    candidate: Candidate,
    into: TrialScore,
    on_fold: Callable[[int, float, list[float]], None] | None = None,
) -> None:
    """Fit and score ``candidate`` on each fold into ``into``.

    ``on_fold(step, score, scores_so_far)`` runs after each fold (child-run metric, pruning: it
    may raise ``optuna.TrialPruned``).

    Raises:
        InvalidData: The metric is undefined on a fold.
    """
    p = payload
    pipeline = None
    for step, (train, valid) in enumerate(p.folds):
        pipeline = build_pipeline(
            p.spec, p.task, p.columns, candidate, minority_rows=p.minority_rows
        )
        fit_pipeline(
            pipeline, p.x.iloc[train], p.y[train], spec=p.spec, task=p.task, candidate=candidate
        )
        x_valid = p.x.iloc[valid]
        timer = time.perf_counter()
        pred, proba = predict_scores(pipeline, x_valid, p.task)
        into.latency_us = (time.perf_counter() - timer) / max(len(valid), 1) * 1e6
        score = compute_metric(p.metric, p.task, p.y[valid], pred, proba, p.n_classes)
        if score is None or not math.isfinite(score):
            raise InvalidData(
                f"{p.metric} is undefined on fold {step}; use more rows or another metric"
            )
        into.fold_scores.append(float(score))
        if on_fold is not None:
            on_fold(step, float(score), into.fold_scores)
    if "size" in p.spec.tuning.objectives and pipeline is not None:
        from skops.io import dumps

        into.size_bytes = len(dumps(pipeline))


def score_trial(payload: TrialPayload, candidate: Candidate) -> TrialScore:
    """A whole trial where it runs (a Ray worker): every fold, one thread per fit, timed there."""
    _quiet_single_threaded_worker()
    started = time.perf_counter()
    cpu_started = time.process_time()
    into = TrialScore()
    score_candidate(payload, candidate, into)
    into.duration_s = time.perf_counter() - started
    into.cpu_s = time.process_time() - cpu_started
    return into


@cache
def _quiet_single_threaded_worker() -> None:
    """What ``trainer.single_threaded_quiet_fits`` does for a search, once per worker process.

    A worker runs only tasks like this one; entering the context per trial cost about 20 ms
    (threadpoolctl inspects every loaded library each time), the whole of the ``ray``
    executor's overhead per trial (``benchmarks/ray_overhead.py``).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.filterwarnings("ignore", message=".*does not have valid feature names.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    warnings.filterwarnings("ignore", message=".*ExperimentalWarning.*")


def objective_values(payload: TrialPayload, score: TrialScore) -> list[float]:
    """The values told to the study: mean CV score, then each extra objective."""
    values = [float(np.mean(score.fold_scores))]
    values += [
        score.latency_us or 0.0 if o == "latency" else float(score.size_bytes or 0)
        for o in payload.spec.tuning.objectives
    ]
    return values
