"""One training job, start to finish: split, tune, refit, choose a threshold, judge once.

The order is what keeps the numbers honest. Tuning sees only cross-validation folds of the
training rows; the refit model sees the training rows; the binary threshold is chosen on
validation rows; the test rows are predicted exactly once, at the end, and those predictions are
the only source of the reported test metrics. Bundling and registering happen a layer up
(``registry``), so this module returns everything a bundle needs as plain values.
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
from shipyard.train.metrics import check_metric, compute_metric
from shipyard.train.nested import nested_cv_scores
from shipyard.train.plots import evaluation_plots
from shipyard.train.preprocess import Columns, model_input, resolve_columns
from shipyard.train.reference import ReferenceProfile, build_reference
from shipyard.train.spec import DEFAULT_METRIC, Task, TrainSpec
from shipyard.train.splits import HoldOut, cv_folds, cv_splitter, hold_out
from shipyard.train.tuning import TrialOutcome, TuningResult, check_search, tune

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from shipyard.cost.budget import TrialBudget
    from shipyard.track.run import ActiveRun

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
) -> TrainResult:
    """Train, tune and evaluate the model ``spec`` describes on ``frame``.

    Args:
        spec: What to learn and how.
        frame: The full dataset; it is split here.
        run: The tracked run to log to (trials become its child runs).
        on_trial: Called after each trial (progress display).
        cost_budget: CPU time tuning may spend (``shipyard.cost.budget.trial_budget``).

    Raises:
        InvalidData: The data cannot support the spec (missing columns, one class, too few
            rows); the message names what to change.
        InvalidArgument: An inconsistent spec (unknown estimator or metric, bad space).
    """
    columns = resolve_columns(spec, frame.schema)
    labelled = frame.filter(pl.col(spec.target).is_not_null())
    dropped = frame.height - labelled.height
    task = spec.task or infer_task(labelled[spec.target])
    metric = spec.metric or DEFAULT_METRIC[task]
    check_metric(metric, task)
    check_search(spec, task)
    y, classes = encode_target(labelled[spec.target], task)
    split = hold_out(spec.split, labelled, y, task=task, seed=spec.seed)
    x = model_input(labelled, columns)
    if run is not None:
        _log_setup(run, spec, task, metric, columns, split, dropped)
    with single_threaded_quiet_fits():
        return _train(
            spec,
            task,
            metric,
            columns,
            labelled,
            x,
            y,
            classes,
            split,
            dropped,
            run,
            on_trial,
            cost_budget,
        )


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
) -> TrainResult:
    n_classes = 0 if classes is None else len(classes)
    x_train, y_train = x.iloc[split.train], y[split.train]
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
    )
    best = result.best.candidate
    minority = int(np.bincount(y_train.astype(np.int64)).min()) if n_classes else 0
    model = build_pipeline(spec, task, columns, best, minority_rows=minority)
    fit_pipeline(model, x_train, y_train, spec=spec, task=task, candidate=best)

    train_pred, train_proba = predict_scores(model, x_train, task)
    x_val, y_val = x.iloc[split.validation], y[split.validation]
    val_pred, val_proba = predict_scores(model, x_val, task)
    threshold = None
    if task == "binary":
        assert val_proba is not None
        threshold = tune_threshold(spec.imbalance.threshold, y_val, val_proba[:, 1])
        val_pred = _decide(val_proba, threshold.threshold)
        train_pred = _decide(train_proba, threshold.threshold)

    # The one and only look at the test rows.
    x_test, y_test = x.iloc[split.test], y[split.test]
    test_pred, test_proba = predict_scores(model, x_test, task)
    if threshold is not None:
        test_pred = _decide(test_proba, threshold.threshold)

    scores = {
        "train": compute_metric(metric, task, y_train, train_pred, train_proba, n_classes),
        "cv_mean": result.best.mean,
        "cv_std": result.best.std,
        "validation": compute_metric(metric, task, y_val, val_pred, val_proba, n_classes),
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
    generalization = check_generalization(
        metric, _num(scores["train"]), result.best.fold_scores, _num(scores["test"])
    )
    importance: dict[str, float] = {}
    plots: dict[str, bytes] = {}
    if spec.explain:
        importance = permutation_importances(
            model, x_val, y_val, columns.features,
            metric=metric, task=task, n_classes=n_classes, seed=spec.seed,
        )  # fmt: skip
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
        )
    out = TrainResult(
        spec=spec, task=task, metric=metric, columns=columns, classes=classes, model=model,
        threshold=threshold, tuning=result, scores=scores, evaluation=evaluation,
        generalization=generalization, importance=importance, plots=plots, reference=reference,
        train_features=train_features, split_sizes=split.sizes(), dropped_target_nulls=dropped,
        nested=nested, test_frame=test_rows,
    )  # fmt: skip
    if run is not None:
        _log_result(run, out)
    return out


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
            "trials": spec.tuning.trials,
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
