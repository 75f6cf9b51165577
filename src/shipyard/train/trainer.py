"""One training job, start to finish: split, tune, refit, choose a threshold, judge once.

The order is what keeps the numbers honest. Tuning sees only cross-validation folds of the
training rows (and is skipped when there is nothing to choose: one estimator, no space); the
chosen configuration is fitted on the training rows and judged on validation rows, where the
binary threshold is chosen too; then it is refitted on train + validation, so the shipped model
learns from 80% of the rows rather than 60% (issue 16); the test rows are predicted exactly once,
by that refitted model, and those predictions are the only source of the reported test metrics.
Bundling and registering happen a layer up (``registry``), so this module returns everything a
bundle needs as plain values.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidData
from shipyard.train.evaluate import EvaluationReport, GeneralizationCheck, evaluate
from shipyard.train.evaluate import generalization_check as check_generalization
from shipyard.train.fitting import build_pipeline, fit_pipeline, predict_scores
from shipyard.train.imbalance import ThresholdChoice, tune_threshold
from shipyard.train.importance import permutation_importances
from shipyard.train.metrics import bootstrap_intervals, check_metric, compute_metric
from shipyard.train.nested import nested_cv_scores
from shipyard.train.preprocess import Columns, model_input, resolve_columns
from shipyard.train.reference import ReferenceProfile, build_reference
from shipyard.train.search import with_auto_search
from shipyard.train.spec import DEFAULT_METRIC, Task, TrainSpec
from shipyard.train.splits import HoldOut, cv_folds, cv_splitter, hold_out
from shipyard.train.suspects import find_suspects, near_perfect_warning
from shipyard.train.tuning import TrialOutcome, TuningResult, check_search, tune

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from shipyard.core.executor import Executor
    from shipyard.cost.budget import TrialBudget
    from shipyard.track.run import ActiveRun

# Estimators that fit their training rows almost perfectly by design: for them a train-minus-
# held-out gap is expected and is not over-fitting (see ``generalization_check``).
FLEXIBLE = frozenset({"lightgbm", "xgboost", "hist_gradient_boosting", "random_forest"})
_MAX_CLASSES = 200
_INTEGER_CLASSES_MAX = 20


@dataclass
class TrainResult:
    """Everything one training job produced; ``registry`` turns it into a bundle."""

    spec: TrainSpec
    task: Task
    metric: str
    columns: Columns
    classes: list[Any] | None
    model: Any
    threshold: ThresholdChoice | None
    tuning: TuningResult
    scores: dict[str, float | None]
    evaluation: EvaluationReport
    generalization: GeneralizationCheck
    importance: dict[str, float]
    plots: dict[str, bytes]
    reference: ReferenceProfile
    train_features: pl.DataFrame
    split_sizes: dict[str, int]
    dropped_target_nulls: int
    nested: dict[str, float] | None = None
    test_frame: pl.DataFrame | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The headline numbers, as logged on the run and shown by the CLI."""
        return {
            "task": self.task,
            "metric": self.metric,
            "estimator": self.tuning.best.estimator,
            "params": self.tuning.best.params,
            "scores": self.scores,
            "threshold": None if self.threshold is None else self.threshold.threshold,
            "generalization": self.generalization.verdict,
            "splits": self.split_sizes,
            "warnings": self.warnings,
        }


def infer_task(target: pl.Series) -> Task:
    """Guess the task from the target column: floats regress, few distinct values classify."""
    values = target.drop_nulls()
    distinct = values.n_unique()
    if target.dtype.is_float():
        return "regression"
    if target.dtype.is_integer() and distinct > _INTEGER_CLASSES_MAX:
        return "regression"
    return "binary" if distinct <= 2 else "multiclass"


def train(
    spec: TrainSpec,
    frame: pl.DataFrame,
    *,
    run: ActiveRun | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    cost_budget: TrialBudget | None = None,
    executor: Executor | None = None,
    previous: Sequence[TrialOutcome] = (),
) -> TrainResult:
    """Train, tune and evaluate the model ``spec`` describes on ``frame``.

    Args:
        spec: What to learn and how.
        frame: The full dataset; it is split here.
        run: The tracked run to log to (trials become its child runs).
        on_trial: Called after each trial (progress display).
        cost_budget: CPU time tuning may spend (``shipyard.cost.budget.trial_budget``).
        executor: Where trials and outer CV folds run (``None``: in this process).
        previous: Trials of an interrupted run of this training, resumed (``train.resume``).

    Raises:
        InvalidData: The data cannot support the spec (missing columns, one class, too few
            rows); the message names what to change.
        InvalidArgument: An inconsistent spec (unknown estimator or metric, bad space).
    """
    columns = resolve_columns(spec, frame.schema)
    labelled = frame.filter(pl.col(spec.target).is_not_null())
    dropped = frame.height - labelled.height
    task = spec.task or infer_task(labelled[spec.target])
    spec = with_auto_search(spec, task)
    cost_budget = _tighter(cost_budget, spec.budget_cpu_s)
    metric = spec.metric or DEFAULT_METRIC[task]
    check_metric(metric, task)
    check_search(spec, task)
    y, classes = encode_target(labelled[spec.target], task)
    split = hold_out(spec.split, labelled, y, task=task, seed=spec.seed)
    suspects = find_suspects(labelled, columns, y, split.train, split.validation, task=task)
    dropped_columns: list[str] = []
    if spec.drop_suspects and suspects:
        dropped_columns = [s.column for s in suspects]
        columns = _without(columns, dropped_columns)
    x = model_input(labelled, columns)
    if run is not None:
        _log_setup(run, spec, task, metric, columns, split, dropped)
    with single_threaded_quiet_fits():
        out = _train(
            spec, task, metric, columns, labelled, x, y, classes, split, dropped, run, on_trial,
            cost_budget, executor, previous,
        )  # fmt: skip
    out.dropped_columns = dropped_columns
    out.warnings = [
        (f"dropped: {s.message}" if s.column in dropped_columns else s.message) for s in suspects
    ] + out.warnings
    if run is not None:
        if out.tuning.price is not None:
            run.set_tag("tuning.price", out.tuning.price)
        for warning in out.warnings:
            run.add_note(f"train warning: {warning}")
        if out.warnings:
            run.set_tag("train.warnings", "\n".join(out.warnings)[:4000])
    return out


def _train(
    spec: TrainSpec,
    task: Task,
    metric: str,
    columns: Columns,
    labelled: pl.DataFrame,
    x: Any,
    y: np.ndarray[Any, Any],
    classes: list[Any] | None,
    split: HoldOut,
    dropped: int,
    run: ActiveRun | None,
    on_trial: Callable[[TrialOutcome], None] | None,
    cost_budget: TrialBudget | None = None,
    executor: Executor | None = None,
    previous: Sequence[TrialOutcome] = (),
) -> TrainResult:
    n_classes = 0 if classes is None else len(classes)
    x_train, y_train = x.iloc[split.train], y[split.train]
    if spec.searches:
        groups = _groups(spec, labelled, split.train)
        folds = cv_folds(
            cv_splitter(spec.cv, spec.split, task, seed=spec.seed), x_train, y_train, groups
        )
        result = tune(
            spec,
            task,
            columns,
            x_train,
            y_train,
            folds,
            metric=metric,
            n_classes=n_classes,
            run=run,
            on_trial=on_trial,
            cost_budget=cost_budget,
            executor=executor,
            previous=previous,
        )
    else:
        result = _single_candidate(spec, metric, on_trial)
    best = result.best.candidate
    minority = int(np.bincount(y_train.astype(np.int64)).min()) if n_classes else 0
    model = build_pipeline(spec, task, columns, best, minority_rows=minority)
    fit_pipeline(model, x_train, y_train, spec=spec, task=task, candidate=best)

    # Validation rows judge the model fitted without them: the held-out estimate when nothing
    # was tuned, the threshold, and the permutation importances.
    x_val, y_val = x.iloc[split.validation], y[split.validation]
    val_pred, val_proba = predict_scores(model, x_val, task)
    threshold = None
    if task == "binary":
        assert val_proba is not None
        threshold = tune_threshold(spec.imbalance.threshold, y_val, val_proba[:, 1])
        val_pred = _decide(val_proba, threshold.threshold)
    val_score = compute_metric(metric, task, y_val, val_pred, val_proba, n_classes)
    val_interval = _interval(metric, task, y_val, val_pred, val_proba, n_classes, spec)
    importance: dict[str, float] = {}
    if spec.explain:
        importance = permutation_importances(
            model, x_val, y_val, columns.features,
            metric=metric, task=task, n_classes=n_classes, seed=spec.seed,
        )  # fmt: skip

    # Refit the chosen configuration on train + validation: the shipped model.
    dev = np.concatenate([split.train, split.validation])
    x_dev, y_dev = x.iloc[dev], y[dev]
    minority = int(np.bincount(y_dev.astype(np.int64)).min()) if n_classes else 0
    model = build_pipeline(spec, task, columns, best, minority_rows=minority)
    fit_pipeline(model, x_dev, y_dev, spec=spec, task=task, candidate=best)
    dev_pred, dev_proba = predict_scores(model, x_dev, task)
    if threshold is not None:
        dev_pred = _decide(dev_proba, threshold.threshold)

    # The one and only look at the test rows.
    x_test, y_test = x.iloc[split.test], y[split.test]
    test_pred, test_proba = predict_scores(model, x_test, task)
    if threshold is not None:
        test_pred = _decide(test_proba, threshold.threshold)

    scores: dict[str, float | None] = {
        "train": compute_metric(metric, task, y_dev, dev_pred, dev_proba, n_classes)
    }
    if result.best.fold_scores:
        scores |= {"cv_mean": result.best.mean, "cv_std": result.best.std}
    scores |= {
        "validation": val_score,
        "test": compute_metric(metric, task, y_test, test_pred, test_proba, n_classes),
    }
    test_rows = labelled[split.test]
    slices = {c: test_rows[c].to_numpy() for c in spec.slices if c in test_rows.columns}
    missing_slices = sorted(set(spec.slices) - set(slices))
    if missing_slices:
        raise InvalidData(f"train.slices: column(s) {', '.join(missing_slices)} not in the data")
    labels = None if classes is None else [str(c) for c in classes]
    evaluation = evaluate(
        task, y_test, test_pred, test_proba, labels,
        slices=slices, n_resamples=spec.bootstrap_resamples, seed=spec.seed,
    )  # fmt: skip
    primary = evaluation.metrics.get(metric)
    test_interval = (
        (primary.low, primary.high)
        if primary is not None and primary.low is not None and primary.high is not None
        else _interval(metric, task, y_test, test_pred, test_proba, n_classes, spec)
    )
    generalization = check_generalization(
        metric,
        _num(scores["train"]),
        result.best.fold_scores,
        _num(scores["test"]),
        test_interval=test_interval,
        # Without bootstrap resamples the validation score has no interval: a point estimate
        # (low = high = the score) still lets the check run instead of refusing the run.
        validation=None
        if val_score is None
        else (_num(val_score), *(val_interval or (_num(val_score), _num(val_score)))),
        flexible=best.estimator in FLEXIBLE,
    )
    warnings_ = near_perfect_warning(metric, _num(scores["test"]), len(split.test))
    plots: dict[str, bytes] = {}
    if spec.plots:
        from shipyard.train.plots import evaluation_plots

        plots = evaluation_plots(
            task, y_test, test_pred, test_proba, labels, feature_importance=importance
        )
    train_features = labelled[split.train].select(columns.features)
    reference = build_reference(train_features, columns.features, seed=spec.seed)
    nested = None
    if spec.cv.nested:
        dev = np.concatenate([split.train, split.validation])
        nested = nested_cv_scores(
            spec,
            task,
            columns,
            x.iloc[dev],
            y[dev],
            _groups(spec, labelled, dev),
            metric,
            n_classes,
            executor,
        )
    out = TrainResult(
        spec=spec, task=task, metric=metric, columns=columns, classes=classes, model=model,
        threshold=threshold, tuning=result, scores=scores, evaluation=evaluation,
        generalization=generalization, importance=importance, plots=plots, reference=reference,
        train_features=train_features, split_sizes=split.sizes(), dropped_target_nulls=dropped,
        nested=nested, test_frame=test_rows, warnings=warnings_,
    )  # fmt: skip
    if run is not None:
        _log_result(run, out)
    return out


def _single_candidate(
    spec: TrainSpec, metric: str, on_trial: Callable[[TrialOutcome], None] | None
) -> TuningResult:
    """The one configuration there is to fit: no trials, no folds (nothing to choose)."""
    e = spec.estimators[0]
    outcome = TrialOutcome(0, e.name, dict(e.params), "complete")
    if on_trial is not None:
        on_trial(outcome)
    return TuningResult(outcome, [outcome], [], metric=metric, objectives=[])


def _interval(
    metric: str,
    task: Task,
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    n_classes: int,
    spec: TrainSpec,
) -> tuple[float, float] | None:
    """Bootstrap interval of ``metric`` on these rows (None when undefined or switched off)."""
    if spec.bootstrap_resamples == 0 or len(y) < 2:
        return None
    resamples = min(spec.bootstrap_resamples, 200)  # an interval to compare, not to publish
    return bootstrap_intervals(
        [metric], task, y, pred, proba, n_classes, n_resamples=resamples, seed=spec.seed
    )[metric]


def _tighter(budget: TrialBudget | None, cpu_seconds: float | None) -> TrialBudget | None:
    """The tighter of a cost budget and the spec's own ``budget_cpu_s``."""
    if cpu_seconds is None:
        return budget
    from shipyard.cost.budget import TrialBudget

    own = TrialBudget("train.budget_cpu_s", cpu_seconds, f"{cpu_seconds:g} CPU-s")
    if budget is None or own.remaining_cpu_seconds < budget.remaining_cpu_seconds:
        return own
    return budget


def _without(columns: Columns, names: list[str]) -> Columns:
    drop = set(names)
    kept = Columns(
        numeric=tuple(c for c in columns.numeric if c not in drop),
        categorical=tuple(c for c in columns.categorical if c not in drop),
    )
    if not kept.features:
        raise InvalidData(
            "train.drop_suspects removed every feature; list the features to use under "
            "train.features"
        )
    return kept


def encode_target(target: pl.Series, task: Task) -> tuple[np.ndarray[Any, Any], list[Any] | None]:
    """The target as model labels: codes of the sorted classes, or floats for regression."""
    if task == "regression":
        try:
            return target.cast(pl.Float64).to_numpy(), None
        except pl.exceptions.InvalidOperationError as e:
            raise InvalidData(f"train: regression target {target.name!r} is not numeric") from e
    values = target.to_numpy()
    classes, codes = np.unique(values, return_inverse=True)
    if len(classes) < 2:
        raise InvalidData(
            f"train: target {target.name!r} has one class only ({classes[0]!r}); nothing to learn"
        )
    if len(classes) > _MAX_CLASSES:
        raise InvalidData(
            f"train: target {target.name!r} has {len(classes)} classes; "
            "set task: regression if it is a number"
        )
    if task == "binary" and len(classes) != 2:
        raise InvalidData(
            f"train: task binary but target {target.name!r} has {len(classes)} classes"
        )
    return codes.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


def _groups(
    spec: TrainSpec, frame: pl.DataFrame, rows: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any] | None:
    column = spec.split.group_column
    return None if column is None else frame[column].to_numpy()[rows]


def _decide(proba: np.ndarray[Any, Any] | None, threshold: float) -> np.ndarray[Any, Any]:
    assert proba is not None
    return (proba[:, 1] >= threshold).astype(np.int64)


def _num(value: float | None) -> float:
    return math.nan if value is None else value


@contextmanager
def single_threaded_quiet_fits() -> Iterator[None]:
    """One thread per fit, and no solver chatter (convergence, experimental APIs).

    OpenMP and BLAS pools pay off on large fits only; on the small fits of CV folds they spin
    and contend (a 600-row gradient boosting fit measured 0.1 s on one thread and up to 5 s on
    two busy cores). Parallelism comes from ``tuning.n_jobs`` trials side by side instead.
    """
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*does not have valid feature names.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        warnings.filterwarnings("ignore", message=".*ExperimentalWarning.*")
        yield


def _log_setup(
    run: ActiveRun,
    spec: TrainSpec,
    task: Task,
    metric: str,
    columns: Columns,
    split: HoldOut,
    dropped: int,
) -> None:
    run.log_params(
        {
            "task": task,
            "target": spec.target,
            "metric": metric,
            "seed": spec.seed,
            "sampler": spec.tuning.sampler,
            "trials": spec.tuning.trials if spec.searches else 1,
            "features": len(columns.features),
            "spec_hash": spec.fingerprint()[:16],
        }
    )
    run.log_metrics({f"rows_{k}": float(v) for k, v in split.sizes().items()})
    if dropped:
        run.log_metric("rows_without_target", float(dropped))


def _log_result(run: ActiveRun, result: TrainResult) -> None:
    run.log_params(
        {"best_estimator": result.tuning.best.estimator, "best_trial": result.tuning.best.number}
    )
    run.log_metrics(
        {
            f"{k}_{result.metric}": v
            for k, v in result.scores.items()
            if v is not None and math.isfinite(v)
        }
    )
    for name, value in result.evaluation.metrics.items():
        if value.value is not None:
            run.log_metric(f"test_{name}", value.value)
    if result.threshold is not None:
        run.log_metric("threshold", result.threshold.threshold)
    run.set_tag("generalization", result.generalization.verdict)
    run.log_artifact(_json_bytes(result.evaluation.to_dict()), name="evaluation.json")
    run.log_artifact(_json_bytes([t.to_dict() for t in result.tuning.trials]), name="trials.json")
    if result.tuning.pareto:
        run.log_artifact(
            _json_bytes([t.to_dict() for t in result.tuning.pareto]), name="pareto.json"
        )
    for name, png in result.plots.items():
        run.log_artifact(png, name=f"plots/{name}")


def _json_bytes(value: Any) -> bytes:
    import json

    return json.dumps(value, indent=2, default=str, allow_nan=True).encode()
