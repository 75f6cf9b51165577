"""``search: auto``: a budgeted search over a few strong families, for users who ask for the best.

The default ``train:`` fits LightGBM's defaults once. Asking for ``search: auto`` (with
``budget_cpu_s``) searches LightGBM, XGBoost and a linear model with successive halving over
the CV folds; the first trial is LightGBM's defaults, so the search can only be reported
against what the default would have shipped. The search stops early when the last trials'
best gain is inside the noise of the CV score (its standard error), and the result carries
the price of what it bought: the gain over the defaults and the CPU it cost.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from shipyard.train.spec import EstimatorSpec

if TYPE_CHECKING:
    from shipyard.train.spec import Task, TrainSpec
    from shipyard.train.tuning import TrialOutcome

# LightGBM's own defaults, the first trial (so "gain over the defaults" is measured, not guessed).
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "num_leaves": 31,
    "learning_rate": 0.1,
    "min_child_samples": 20,
    "n_estimators": 100,
    "colsample_bytree": 1.0,
}
# Trials without a gain beyond the noise before the search stops.
PATIENCE = 8


def auto_estimators(task: Task) -> list[EstimatorSpec]:
    """The families and spaces of ``search: auto`` for ``task``."""
    lightgbm = EstimatorSpec(
        name="lightgbm",
        space={
            "num_leaves": {"low": 8, "high": 128},
            "learning_rate": {"low": 0.02, "high": 0.3, "log": True},
            "min_child_samples": {"low": 5, "high": 100},
            "n_estimators": [100, 300],
            "colsample_bytree": [0.6, 0.8, 1.0],
        },
    )
    xgboost = EstimatorSpec(
        name="xgboost",
        space={
            "max_depth": {"low": 3, "high": 10},
            "learning_rate": {"low": 0.02, "high": 0.3, "log": True},
            "n_estimators": [100, 300],
            "subsample": [0.7, 1.0],
        },
    )
    if task == "regression":
        linear = EstimatorSpec(
            name="linear", space={"alpha": {"low": 1e-3, "high": 100.0, "log": True}}
        )
    else:
        linear = EstimatorSpec(
            name="logistic", space={"C": {"low": 1e-3, "high": 100.0, "log": True}}
        )
    return [lightgbm, xgboost, linear]


def with_auto_search(spec: TrainSpec, task: Task) -> TrainSpec:
    """``spec`` with the auto families in place of its estimators (no-op without ``search``)."""
    if spec.search != "auto":
        return spec
    return spec.model_copy(update={"estimators": auto_estimators(task)})


def default_trial_params() -> dict[str, Any]:
    """The enqueued first trial: LightGBM with its library defaults."""
    return {"estimator": "lightgbm", **{f"lightgbm.{k}": v for k, v in LIGHTGBM_DEFAULTS.items()}}


def gain_inside_noise(trials: list[TrialOutcome], sign: float, n_folds: int) -> str | None:
    """Why the search should stop: the last ``PATIENCE`` trials gained less than the noise.

    The noise is the best trial's standard error (fold spread / sqrt(folds)): a gain smaller
    than that is not distinguishable from a re-draw of the folds.
    """
    done = [t for t in trials if t.state == "complete" and t.fold_scores]
    if len(done) <= PATIENCE:
        return None
    best = max(done, key=lambda t: sign * t.mean)
    before = max(done[:-PATIENCE], key=lambda t: sign * t.mean)
    noise = best.std / math.sqrt(max(n_folds, 1))
    gain = sign * (best.mean - before.mean)
    if gain > noise:
        return None
    return (
        f"the last {PATIENCE} trials gained {gain:.4g}, inside the CV score's noise "
        f"(standard error {noise:.3g})"
    )


def price_of_search(trials: list[TrialOutcome], metric: str, sign: float) -> str | None:
    """What the search bought over LightGBM's defaults, and at what CPU price."""
    done = [t for t in trials if t.state == "complete" and t.fold_scores]
    if not done:
        return None
    default = done[0]
    best = max(done, key=lambda t: sign * t.mean)
    spent = sum(t.cpu_s for t in trials)
    gain = sign * (best.mean - default.mean)
    text = (
        f"search: {len(trials)} trials, {spent:.1f} CPU-s; best {best.estimator} CV {metric} "
        f"{best.mean:.4f} vs LightGBM defaults {default.mean:.4f} (gain {gain:+.4f})"
    )
    if gain > 0:
        text += f"; {spent / (gain * 1000):.2f} CPU-s per 0.001 gained"
    return text
