"""Estimators by name: the candidates a spec may list, built for its task.

Each name maps to one factory that knows its library's quirks (LogisticRegression's penalty
spelling, boosters' thread and verbosity settings, which ones take class weights), so specs stay
short and library-neutral. Every estimator is single-threaded: parallelism comes from running
trials side by side, which scales better than threads inside small fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.core.errors import InvalidArgument
from shipyard.train.spec import Task

Factory = Callable[[Task, dict[str, Any], int, str | None], Any]
CLASSIFICATION: frozenset[Task] = frozenset({"binary", "multiclass"})
ALL_TASKS: frozenset[Task] = frozenset({"binary", "multiclass", "regression"})


@dataclass(frozen=True)
class EstimatorKind:
    """A named estimator family.

    Attributes:
        booster: ``"lightgbm"`` or ``"xgboost"`` when fitting takes an early-stopping eval set.
        native_categorical: The estimator splits on category codes itself and handles missing
            values, so the pipeline passes numbers through and codes categories (no one-hot,
            no imputation) - the way the library is meant to be used.
    """

    name: str
    tasks: frozenset[Task]
    factory: Factory
    booster: str | None = None
    description: str = ""
    native_categorical: bool = False


def _logistic(task: Task, params: dict[str, Any], seed: int, weight: str | None) -> Any:
    from sklearn.linear_model import LogisticRegression

    p = dict(params)
    penalty = p.pop("penalty", "l2")
    ratios = {"l2": 0.0, "l1": 1.0, "elasticnet": p.pop("l1_ratio", 0.5), "none": 0.0}
    if penalty not in ratios:
        raise InvalidArgument(f"logistic penalty {penalty!r}: use l1, l2, elasticnet or none")
    if penalty == "none":
        p["C"] = float("inf")
    l1_ratio = float(ratios[penalty])
    p.setdefault("solver", "saga" if l1_ratio > 0 else "lbfgs")
    p.setdefault("max_iter", 2000 if l1_ratio > 0 else 1000)
    return LogisticRegression(l1_ratio=l1_ratio, class_weight=weight, random_state=seed, **p)


def _linear(task: Task, params: dict[str, Any], seed: int, weight: str | None) -> Any:
    from sklearn import linear_model

    p = dict(params)
    penalty = p.pop("penalty", "l2")
    if penalty == "none":
        return linear_model.LinearRegression(**p)
    if penalty == "l2":
        return linear_model.Ridge(random_state=seed, **p)
    if penalty == "l1":
        return linear_model.Lasso(random_state=seed, max_iter=5000, **p)
    if penalty == "elasticnet":
        return linear_model.ElasticNet(random_state=seed, max_iter=5000, **p)
    raise InvalidArgument(f"linear penalty {penalty!r}: use l1, l2, elasticnet or none")


def _random_forest(task: Task, params: dict[str, Any], seed: int, weight: str | None) -> Any:
    from sklearn import ensemble

    p = {"n_estimators": 200, "n_jobs": 1, "random_state": seed, **params}
    if task == "regression":
        return ensemble.RandomForestRegressor(**p)
    return ensemble.RandomForestClassifier(class_weight=weight, **p)


def _hist_gradient_boosting(
    task: Task, params: dict[str, Any], seed: int, weight: str | None
) -> Any:
    from sklearn import ensemble

    # Early stopping on a validation fraction of the rows ``fit`` receives: the training fold.
    p = {"early_stopping": True, "validation_fraction": 0.1, "random_state": seed, **params}
    if task == "regression":
        return ensemble.HistGradientBoostingRegressor(**p)
    return ensemble.HistGradientBoostingClassifier(class_weight=weight, **p)


def _lightgbm(task: Task, params: dict[str, Any], seed: int, weight: str | None) -> Any:
    import lightgbm

    # The library's own defaults (100 trees, 31 leaves, learning rate 0.1): on tabular data of
    # every size they are a strong baseline, which the issue-16 benchmark holds Shipyard to.
    p = {"n_jobs": 1, "verbose": -1, "random_state": seed, **params}
    if task == "regression":
        return lightgbm.LGBMRegressor(**p)
    return lightgbm.LGBMClassifier(class_weight=weight, **p)


def _xgboost(task: Task, params: dict[str, Any], seed: int, weight: str | None) -> Any:
    import xgboost

    p = {"n_estimators": 500, "n_jobs": 1, "random_state": seed, "verbosity": 0, **params}
    if task == "regression":
        return xgboost.XGBRegressor(**p)
    # XGBoost has no class_weight; balanced weights go in as sample weights at fit time.
    return xgboost.XGBClassifier(**p)


ESTIMATORS: dict[str, EstimatorKind] = {
    k.name: k
    for k in (
        EstimatorKind(
            "logistic", CLASSIFICATION, _logistic, description="L1/L2/elastic-net logistic"
        ),
        EstimatorKind("linear", frozenset({"regression"}), _linear, description="OLS/ridge/lasso"),
        EstimatorKind("random_forest", ALL_TASKS, _random_forest),
        EstimatorKind("hist_gradient_boosting", ALL_TASKS, _hist_gradient_boosting),
        EstimatorKind(
            "lightgbm", ALL_TASKS, _lightgbm, booster="lightgbm", native_categorical=True
        ),
        EstimatorKind("xgboost", ALL_TASKS, _xgboost, booster="xgboost"),
    )
}


def estimator_kind(name: str, task: Task) -> EstimatorKind:
    """Return the family called ``name`` after checking it can learn ``task``.

    Raises:
        InvalidArgument: Unknown name, or a family that does not do this task.
    """
    kind = ESTIMATORS.get(name)
    if kind is None:
        raise InvalidArgument(
            f"unknown estimator {name!r}; choose from: {', '.join(sorted(ESTIMATORS))}"
        )
    if task not in kind.tasks:
        able = sorted(n for n, k in ESTIMATORS.items() if task in k.tasks)
        raise InvalidArgument(f"estimator {name!r} cannot do {task}; use one of {able}")
    return kind


def build_estimator(
    name: str, task: Task, params: dict[str, Any], *, seed: int, class_weight: str | None
) -> Any:
    """Construct an unfitted estimator, translating library errors into a spec error.

    Raises:
        InvalidArgument: A parameter the estimator does not take.
    """
    kind = estimator_kind(name, task)
    try:
        return kind.factory(task, params, seed, class_weight)
    except TypeError as e:
        raise InvalidArgument(f"estimator {name!r}: {e}; check the params and space") from e
