"""Hyperparameter search with Optuna, every trial a tracked child run.

A trial picks an estimator and its parameters, then is scored by cross-validation on the
training rows only (the folds are fixed up front, so trials compete on identical rows). After
each fold the running mean goes to the pruner, so hopeless trials stop early. With extra
objectives (latency, size) the study is multi-objective and its Pareto front is kept; the winner
is the front's best on the primary metric.

With a cost budget (``shipyard.cost.budget.TrialBudget``), each trial's CPU time is measured and
no further trial starts once the next one, estimated as the most expensive so far, would not fit
in what is left; the reason, with its numbers, is tagged on the run as ``tuning.stopped_reason``.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shipyard.core.errors import Conflict, InvalidArgument, InvalidData
from shipyard.core.executor import describe_error
from shipyard.store.entities import RunStatus
from shipyard.track.resources import process_cpu_seconds
from shipyard.train.distributed_tuning import optimize_on
from shipyard.train.estimators import estimator_kind
from shipyard.train.fitting import Candidate
from shipyard.train.metrics import greater_is_better
from shipyard.train.resume import seed_study
from shipyard.train.search import default_trial_params, gain_inside_noise, price_of_search
from shipyard.train.space import Param, grid_values, parse_space, suggest
from shipyard.train.trial_records import TrialRecorder
from shipyard.train.trial_scoring import (
    TrialPayload,
    TrialScore,
    objective_values,
    score_candidate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import optuna
    import pandas as pd

    from shipyard.core.executor import Executor
    from shipyard.cost.budget import TrialBudget
    from shipyard.track.records import FinishedRun
    from shipyard.track.run import ActiveRun
    from shipyard.train.preprocess import Columns
    from shipyard.train.spec import Task, TrainSpec
    from shipyard.train.splits import IntArray
    from shipyard.train.trial_records import TrialRun


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial tried and scored."""

    number: int
    estimator: str
    params: dict[str, Any]
    state: str
    fold_scores: list[float] = field(default_factory=list)
    latency_us: float | None = None
    size_bytes: int | None = None
    duration_s: float = 0.0
    run_id: str | None = None
    cpu_s: float = 0.0

    @property
    def mean(self) -> float:
        """Mean cross-validated score (NaN when no fold finished)."""
        return float(np.mean(self.fold_scores)) if self.fold_scores else math.nan

    @property
    def std(self) -> float:
        """Spread of the fold scores."""
        return float(np.std(self.fold_scores)) if self.fold_scores else math.nan

    @property
    def candidate(self) -> Candidate:
        """The estimator and parameters to refit."""
        return Candidate(self.estimator, dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for the run's trials table artifact)."""
        return {**asdict(self), "mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class TuningResult:
    """The search's winner, every trial, and the Pareto front (multi-objective only)."""

    best: TrialOutcome
    trials: list[TrialOutcome]
    pareto: list[TrialOutcome]
    metric: str
    objectives: list[str]
    stopped_reason: str | None = None
    price: str | None = None


@dataclass
class _Context:
    payload: TrialPayload  # what each trial reads; the ``ray`` executor ships it once
    run: ActiveRun | None
    spaces: dict[str, dict[str, Param]]
    outcomes: dict[int, TrialOutcome] = field(default_factory=dict)
    numbers: itertools.count[int] = field(default_factory=itertools.count)
    on_trial: Callable[[TrialOutcome], None] | None = None
    cost_budget: TrialBudget | None = None
    stopped_reason: str | None = None
    cpu_started: float = 0.0
    recorder: TrialRecorder | None = None
    failures: list[str] = field(default_factory=list)


def tune(
    spec: TrainSpec,
    task: Task,
    columns: Columns,
    x: pd.DataFrame,
    y: np.ndarray[Any, Any],
    folds: list[tuple[IntArray, IntArray]],
    *,
    metric: str,
    n_classes: int,
    run: ActiveRun | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    cost_budget: TrialBudget | None = None,
    executor: Executor | None = None,
    previous: Sequence[TrialOutcome] = (),
) -> TuningResult:
    """Search the spec's estimators and spaces; return the best trial by CV score.

    ``cost_budget`` is the CPU time the search may spend; trials stop starting before it is
    overrun (see the module docstring). ``executor`` other than ``local`` runs the trials as
    its tasks, asked and told by this process (``train.distributed_tuning``). ``previous``:
    trials of an interrupted run of this search, resumed (``train.resume``).

    Raises:
        InvalidArgument: A bad space (e.g. a float range with the grid sampler).
        InvalidData: Every trial failed; the message carries the first failure.
        Conflict: ``cost_budget`` is used up before the first trial.
    """
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    spaces = {
        e.name: parse_space(e.space, where=f"train.estimators.{e.name}.space")
        for e in spec.estimators
    }
    minority = _minority_rows_per_fold(y, folds) if task != "regression" else 0
    ctx = _Context(
        TrialPayload(spec, task, columns, x, y, folds, metric, n_classes, minority),
        run,
        spaces,
        on_trial=on_trial,
        cost_budget=cost_budget,
    )
    ctx.cpu_started = process_cpu_seconds()
    if run is not None and spec.tuning.child_runs:
        ctx.recorder = TrialRecorder(run)
    if cost_budget is not None and (reason := cost_budget.stop_reason([])) is not None:
        raise Conflict(f"train: no tuning trial started: {reason}")
    objectives: list[str] = list(spec.tuning.objectives)
    primary: Literal["minimize", "maximize"] = (
        "maximize" if greater_is_better(metric) else "minimize"
    )
    secondary: list[Literal["minimize", "maximize"]] = ["minimize"] * len(objectives)
    directions = [primary, *secondary]
    budget = spec.tuning.trials
    deadline = None if spec.tuning.timeout_s is None else time.monotonic() + spec.tuning.timeout_s
    studies: list[optuna.Study] = []
    plans = _grid_plans(spec, spaces) if spec.tuning.sampler == "grid" else [(None, None)]
    try:
        for estimator, grid in plans:
            if budget <= 0 or (deadline is not None and time.monotonic() >= deadline):
                break
            if ctx.stopped_reason is not None:
                break
            study = optuna.create_study(
                directions=directions,
                sampler=_sampler(spec, grid, offset=0 if grid else len(previous)),
                pruner=_pruner(spec, len(objectives), len(folds)),
            )
            if spec.search == "auto" and not studies and not previous:
                study.enqueue_trial(default_trial_params())
            n_trials = (
                budget if grid is None else min(budget, math.prod(len(v) for v in grid.values()))
            )
            if previous and grid is None:
                for outcome in seed_study(study, spec, spaces, previous, objectives):
                    ctx.outcomes[outcome.number] = outcome
                    n_trials -= 1
                ctx.numbers = itertools.count(max(ctx.outcomes, default=-1) + 1)
            if executor is not None and executor.name != "local":
                optimize_on(executor, ctx, study, estimator, n_trials, deadline)
                budget -= len(study.trials)
                studies.append(study)
                continue
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            study.optimize(
                lambda trial, est=estimator: _objective(ctx, trial, est),  # type: ignore[misc]
                n_trials=n_trials,
                timeout=timeout,
                n_jobs=spec.tuning.n_jobs,
                catch=(Exception,),
                callbacks=[lambda study, _trial: _after_trial(ctx, study)],
            )
            budget -= len(study.trials)
            studies.append(study)
    finally:
        if ctx.recorder is not None:
            ctx.recorder.write()
    if ctx.stopped_reason is not None and run is not None:
        run.set_tag("tuning.stopped_reason", ctx.stopped_reason)
    return _result(ctx, studies, objectives)


def _after_trial(ctx: _Context, study: optuna.Study) -> None:
    """Between trials: write recorded trials when due, then check the budgets."""
    if after_trial(ctx):
        study.stop()


def after_trial(ctx: _Context) -> bool:
    """Write recorded trials when due; whether the search must stop (budgets, noise)."""
    if ctx.recorder is not None:
        ctx.recorder.maybe_write()
    _check_cost_budget(ctx)
    return ctx.stopped_reason is not None


def _check_cost_budget(ctx: _Context) -> None:
    """After each trial: stop the study when the next trial would overrun the cost budget.

    With ``search: auto`` it also stops once the recent trials gain less than the noise.
    """
    if ctx.payload.spec.search == "auto" and ctx.stopped_reason is None:
        sign = 1.0 if greater_is_better(ctx.payload.metric) else -1.0
        trials = [ctx.outcomes[n] for n in sorted(ctx.outcomes)]
        ctx.stopped_reason = gain_inside_noise(trials, sign, len(ctx.payload.folds))
    if ctx.cost_budget is None:
        return
    if ctx.stopped_reason is None:
        spent = [o.cpu_s for o in list(ctx.outcomes.values())]
        # The process's CPU since tuning began: trials' own timers miss child-run bookkeeping
        # and the threads of trials still running (issue 16: 99% used, 30 more trials).
        used = process_cpu_seconds() - ctx.cpu_started
        ctx.stopped_reason = ctx.cost_budget.stop_reason(spent, spent_cpu_seconds=used)


def _minority_rows_per_fold(
    y: np.ndarray[Any, Any], folds: Sequence[tuple[IntArray, IntArray]]
) -> int:
    return int(min(np.bincount(y[train].astype(np.int64)).min() for train, _ in folds))


def _grid_plans(
    spec: TrainSpec, spaces: dict[str, dict[str, Param]]
) -> list[tuple[str | None, dict[str, list[Any]] | None]]:
    """One grid study per estimator: a grid over conditional spaces would repeat trials."""
    plans: list[tuple[str | None, dict[str, list[Any]] | None]] = []
    for e in spec.estimators:
        grid = {f"{e.name}.{k}": grid_values(k, p) for k, p in spaces[e.name].items()}
        plans.append((e.name, grid or {"_": [0]}))
    return plans


def _sampler(
    spec: TrainSpec, grid: dict[str, list[Any]] | None, *, offset: int = 0
) -> optuna.samplers.BaseSampler:
    """The spec's sampler; ``offset`` (trials resumed) moves its seed past their proposals."""
    import optuna

    if grid is not None:
        return optuna.samplers.GridSampler(grid, seed=spec.seed)
    if spec.tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed + offset)
    return optuna.samplers.TPESampler(
        seed=spec.seed + offset, n_startup_trials=min(10, max(spec.tuning.trials // 4, 2))
    )


def _pruner(spec: TrainSpec, extra_objectives: int, n_folds: int) -> optuna.pruners.BasePruner:
    import optuna

    if not spec.tuning.pruning or extra_objectives or n_folds < 3:
        return optuna.pruners.NopPruner()
    if spec.search == "auto":
        # Successive halving over the folds: a third of the trials go on after each rung.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def _choose(ctx: _Context, trial: optuna.Trial, estimator: str | None) -> Candidate:
    names = [e.name for e in ctx.payload.spec.estimators]
    if estimator is None:
        estimator = (
            names[0] if len(names) == 1 else str(trial.suggest_categorical("estimator", names))
        )
    fixed = next(e.params for e in ctx.payload.spec.estimators if e.name == estimator)
    sampled = {k: suggest(trial, f"{estimator}.{k}", p) for k, p in ctx.spaces[estimator].items()}
    return Candidate(estimator, {**fixed, **sampled})


def _objective(
    ctx: _Context, trial: optuna.Trial, estimator: str | None
) -> float | tuple[float, ...]:
    import optuna

    started = time.perf_counter()
    # Process CPU: with n_jobs > 1 overlapping trials each see the others' CPU too, so the
    # estimate errs high (trials already running when the search stops still finish).
    cpu_started = time.process_time()
    number = next(ctx.numbers)  # optuna numbers restart in each grid study; ours do not
    trial.set_user_attr("shipyard_trial", number)
    candidate = _choose(ctx, trial, estimator)
    child = None if ctx.recorder is None else ctx.recorder.start(number, candidate.describe())
    score = TrialScore()
    state = "complete"
    error: str | None = None

    def on_fold(step: int, value: float, scores: list[float]) -> None:
        nonlocal state
        if child is not None:
            child.log_metric(f"fold_{ctx.payload.metric}", value, step=step)
        if len(ctx.payload.spec.tuning.objectives) == 0:
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                state = "pruned"
                raise optuna.TrialPruned

    try:
        score_candidate(ctx.payload, candidate, score, on_fold)
    except optuna.TrialPruned:
        raise
    except Exception as e:
        state, error = "failed", describe_error(e)
        raise
    finally:
        score.duration_s = time.perf_counter() - started
        score.cpu_s = time.process_time() - cpu_started
        settle(ctx, number, candidate, child, state, score, error)
    values = objective_values(ctx.payload, score)
    return values[0] if len(values) == 1 else tuple(values)


def settle(
    ctx: _Context,
    number: int,
    candidate: Candidate,
    child: TrialRun | None,
    state: str,
    score: TrialScore,
    error: str | None = None,
) -> TrialOutcome:
    """Record an ended trial, wherever it ran: its outcome, its child run, the progress hook."""
    outcome = TrialOutcome(
        number,
        candidate.estimator,
        candidate.params,
        state,
        list(score.fold_scores),
        score.latency_us,
        score.size_bytes,
        score.duration_s,
        None if child is None or error is not None else child.run_id,
        score.cpu_s,
    )
    ctx.outcomes[number] = outcome
    if error is not None:
        ctx.failures.append(error)
    if child is not None and ctx.recorder is not None:
        if error is not None:
            ctx.recorder.add(child.end(RunStatus.FAILED, error))
        else:
            ctx.recorder.add(_finish_child(child, ctx.payload.metric, outcome))
    if ctx.on_trial is not None:
        ctx.on_trial(outcome)
    return outcome


def _finish_child(child: TrialRun, metric: str, outcome: TrialOutcome) -> FinishedRun:
    if outcome.fold_scores:
        child.log_metric(f"cv_{metric}", outcome.mean)
        child.log_metric(f"cv_{metric}_std", outcome.std)
    extras = {
        "latency_us": outcome.latency_us,
        "size_bytes": outcome.size_bytes,
        "duration_s": outcome.duration_s,
    }
    for key, value in extras.items():
        if value is not None:
            child.log_metric(key, float(value))
    if outcome.state != "complete":
        child.record.tags["trial_state"] = outcome.state
    return child.end(RunStatus.FINISHED)


def _result(ctx: _Context, studies: list[optuna.Study], objectives: list[str]) -> TuningResult:
    import optuna

    trials = [ctx.outcomes[n] for n in sorted(ctx.outcomes)]
    complete = [t for t in trials if t.state == "complete" and t.fold_scores]
    if not complete:
        failed = [
            ft.system_attrs.get("fail_reason", "")
            for s in studies
            for ft in s.trials
            if ft.state == optuna.trial.TrialState.FAIL
        ] + ctx.failures
        reason = next((r for r in failed if r), "no trial finished within the budget")
        raise InvalidData(f"train: every tuning trial failed; first failure: {reason}")
    sign = 1.0 if greater_is_better(ctx.payload.metric) else -1.0
    pareto: list[TrialOutcome] = []
    if objectives:
        numbers = {ft.user_attrs["shipyard_trial"] for s in studies for ft in s.best_trials}
        pareto = [t for t in complete if t.number in numbers]
    pool = pareto or complete
    best = max(pool, key=lambda t: sign * t.mean)
    price = (
        price_of_search(trials, ctx.payload.metric, sign)
        if ctx.payload.spec.search == "auto"
        else None
    )
    return TuningResult(
        best, trials, pareto, ctx.payload.metric, objectives, ctx.stopped_reason, price
    )


def check_search(spec: TrainSpec, task: Task) -> None:
    """Fail fast on unknown estimators, bad spaces or a grid over a continuous range.

    Raises:
        InvalidArgument: The first problem found, naming the estimator.
    """
    for e in spec.estimators:
        estimator_kind(e.name, task)
        parse_space(e.space, where=f"train.estimators.{e.name}.space")
    if spec.tuning.sampler != "grid":
        return
    for e in spec.estimators:
        for k, p in parse_space(e.space, where=f"train.estimators.{e.name}.space").items():
            try:
                grid_values(k, p)
            except InvalidArgument as err:
                raise InvalidArgument(f"train.estimators.{e.name}: {err}") from err
