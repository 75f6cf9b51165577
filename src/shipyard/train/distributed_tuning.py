"""Tuning with trials on an executor's workers: this process asks the study and tells it.

Each round asks the study for as many trials as the executor runs at once, ships their
candidates to the workers (the training rows and folds went to the object store once, with
the first round), and tells the study each result in trial order before the next round. Child
runs are recorded here, by the driver, with the names and fields of a local search: workers
compute, they never write to the metadata store.

What differs from ``local``: a trial runs all its folds in one task, so pruning does not stop
it early; and a model-based sampler (TPE) proposes a round's trials from the trials told
before that round, as Optuna does with ``n_jobs > 1``. With ``in_flight: 1``, or the random
or grid sampler, the trials proposed are the ones a local search proposes for the same seed.

A worker process that dies mid-trial has its task re-run up to ``executor.max_retries`` times;
after that the trial is told failed, its child run records Ray's reason, and the search goes on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from shipyard.train.trial_scoring import TrialScore, objective_values, score_trial

if TYPE_CHECKING:
    import optuna

    from shipyard.core.executor import Executor
    from shipyard.train.fitting import Candidate
    from shipyard.train.trial_records import TrialRun
    from shipyard.train.tuning import _Context


def optimize_on(
    executor: Executor,
    ctx: _Context,
    study: optuna.Study,
    estimator: str | None,
    n_trials: int,
    deadline: float | None,
) -> None:
    """Run up to ``n_trials`` trials of ``study`` on ``executor``, round by round."""
    import optuna

    from shipyard.train.tuning import _choose, after_trial, settle

    asked = 0
    while asked < n_trials and ctx.stopped_reason is None:
        if deadline is not None and time.monotonic() >= deadline:
            break
        plans: list[tuple[optuna.trial.Trial, int, Candidate, TrialRun | None]] = []
        for _ in range(min(executor.parallelism, n_trials - asked)):
            trial = study.ask()
            number = next(ctx.numbers)
            trial.set_user_attr("shipyard_trial", number)
            candidate = _choose(ctx, trial, estimator)
            child = (
                None if ctx.recorder is None else ctx.recorder.start(number, candidate.describe())
            )
            plans.append((trial, number, candidate, child))
        asked += len(plans)
        results = executor.map(score_trial, ctx.payload, [plan[2] for plan in plans])
        for (trial, number, candidate, child), result in zip(plans, results, strict=True):
            score = result.value if result.value is not None else TrialScore()
            if result.ok and child is not None:
                for step, value in enumerate(score.fold_scores):
                    child.log_metric(f"fold_{ctx.payload.metric}", value, step=step)
            state = "complete" if result.ok else "failed"
            settle(ctx, number, candidate, child, state, score, result.error)
            if result.ok:
                study.tell(trial, objective_values(ctx.payload, score))
            else:
                trial.set_user_attr("fail_reason", result.error)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            after_trial(ctx)
