"""Build one candidate's pipeline and fit it on one set of rows.

The pipeline is preprocessing -> optional sampler -> estimator, so whatever is learned from data
(imputation values, scales, categories, synthetic rows) is learned from the rows passed to
``fit_pipeline`` and nothing else. Boosters stop early on a slice of those same rows, never on
validation or test rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.train.estimators import build_estimator, estimator_kind
from shipyard.train.imbalance import balanced_sample_weight, make_sampler
from shipyard.train.preprocess import build_preprocessor

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.train.preprocess import Columns
    from shipyard.train.spec import Task, TrainSpec

_EARLY_STOPPING_SHARE = 0.1
_LINEAR = frozenset({"logistic", "linear"})


@dataclass(frozen=True)
class Candidate:
    """An estimator name with its full parameter set (fixed params plus sampled ones)."""

    estimator: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Flat params for the run: ``estimator`` plus each parameter."""
        return {"estimator": self.estimator, **self.params}


def build_pipeline(
    spec: TrainSpec, task: Task, columns: Columns, candidate: Candidate, *, minority_rows: int
) -> Any:
    """Return the unfitted pipeline for ``candidate`` (imbalanced-learn's when it resamples)."""
    estimator = build_estimator(
        candidate.estimator,
        task,
        candidate.params,
        seed=spec.seed,
        class_weight=spec.imbalance.class_weight if task != "regression" else None,
    )
    native = uses_native_categories(spec, task, candidate)
    steps: list[tuple[str, Any]] = [
        (
            "preprocess",
            build_preprocessor(
                spec.preprocess,
                columns,
                seed=spec.seed,
                linear=candidate.estimator in _LINEAR,
                native=native,
            ),
        )
    ]
    sampler = None
    if task != "regression":
        sampler = make_sampler(spec.imbalance, seed=spec.seed, minority_rows=minority_rows)
    if sampler is None:
        from sklearn.pipeline import Pipeline

        return Pipeline([*steps, ("model", estimator)])
    from imblearn.pipeline import Pipeline as ImbPipeline

    return ImbPipeline([*steps, ("resample", sampler), ("model", estimator)])


def uses_native_categories(spec: TrainSpec, task: Task, candidate: Candidate) -> bool:
    """Whether ``candidate`` gets raw numbers and category codes instead of imputed one-hot.

    Only for estimators that handle both themselves, and only while the spec does not ask for
    an encoding by name (``preprocess.categorical`` or ``impute_numeric`` set explicitly).
    """
    asked = {"categorical", "impute_numeric", "scale"} & spec.preprocess.model_fields_set
    return estimator_kind(candidate.estimator, task).native_categorical and not asked


def _categorical_outputs(pipeline: Any) -> list[int]:
    """Positions of the category-code columns in the preprocessor's output."""
    encode = pipeline.named_steps["preprocess"]
    if "columns" in getattr(encode, "named_steps", {}):  # behind the training-row cleaner
        encode = encode.named_steps["columns"]
    widths = {name: len(cols) for name, _, cols in encode.transformers}
    start = widths.get("numeric", 0)
    return list(range(start, start + widths.get("categorical", 0)))


def fit_pipeline(
    pipeline: Any,
    x: pd.DataFrame,
    y: np.ndarray[Any, Any],
    *,
    spec: TrainSpec,
    task: Task,
    candidate: Candidate,
) -> Any:
    """Fit ``pipeline`` on these rows only and return it.

    LightGBM and XGBoost stop early on a held-back share of these rows (stratified for
    classification); the other estimators fit all of them. XGBoost gets balanced sample weights
    when the spec asks for balanced classes, since it has no ``class_weight``.
    """
    kind = estimator_kind(candidate.estimator, task)
    weighted = (
        kind.booster == "xgboost"
        and task != "regression"
        and spec.imbalance.class_weight == "balanced"
        and "resample" not in pipeline.named_steps
    )
    native: dict[str, Any] = {}
    if uses_native_categories(spec, task, candidate):
        native["categorical_feature"] = _categorical_outputs(pipeline) or "auto"
    rounds = spec.early_stopping_rounds
    if kind.booster is None or rounds is None or len(y) < 50:
        fit_params = {"model__sample_weight": balanced_sample_weight(y)} if weighted else {}
        fit_params.update({f"model__{k}": v for k, v in native.items()})
        pipeline.fit(x, y, **fit_params)
        return pipeline
    return _fit_with_early_stopping(
        pipeline, x, y, task, kind.booster, rounds, weighted, spec.seed, native
    )


def _fit_with_early_stopping(
    pipeline: Any,
    x: pd.DataFrame,
    y: np.ndarray[Any, Any],
    task: Task,
    booster: str,
    rounds: int,
    weighted: bool,
    seed: int,
    native: dict[str, Any],
) -> Any:
    from sklearn.model_selection import train_test_split

    stratify = y if task != "regression" and np.min(np.bincount(y.astype(np.int64))) >= 2 else None
    x_fit, x_stop, y_fit, y_stop = train_test_split(
        x, y, test_size=_EARLY_STOPPING_SHARE, stratify=stratify, random_state=seed
    )
    steps = pipeline.named_steps
    xt = steps["preprocess"].fit_transform(x_fit, y_fit)
    yt = y_fit
    if "resample" in steps:
        xt, yt = steps["resample"].fit_resample(xt, y_fit)
    x_stop_t = steps["preprocess"].transform(x_stop)
    model = steps["model"]
    kwargs: dict[str, Any] = dict(native)
    if weighted:
        kwargs["sample_weight"] = balanced_sample_weight(yt)
    if booster == "lightgbm":
        import lightgbm

        kwargs["eval_X"], kwargs["eval_y"] = (x_stop_t,), (y_stop,)
        kwargs["callbacks"] = [lightgbm.early_stopping(rounds, verbose=False)]
    else:
        model.set_params(early_stopping_rounds=rounds)
        kwargs["eval_set"], kwargs["verbose"] = [(x_stop_t, y_stop)], False
    model.fit(xt, yt, **kwargs)
    return pipeline


def predict_scores(
    pipeline: Any, x: pd.DataFrame, task: Task
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """Return (predictions, class probabilities or None) at the default decision rule."""
    if task == "regression":
        return np.asarray(pipeline.predict(x), dtype=np.float64), None
    proba = np.asarray(pipeline.predict_proba(x), dtype=np.float64)
    return np.argmax(proba, axis=1).astype(np.int64), proba
