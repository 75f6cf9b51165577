"""``clean``'s fitted statistics as a step of the model pipeline, fitted on training rows only.

``clean`` (``shipyard.data.clean``) fits imputation values and outlier bounds on the whole batch.
When the project trains a model, that batch holds the validation and test rows too, so they
shaped the values written into the training rows (issue 16). The pipeline runner therefore
moves the statistic-fitted rules of a project that trains (``impute: mean | median | mode``,
``outliers`` with ``action: clip``) out of the data stage and into ``train.preprocess.clean``;
``TrainingRowCleaner`` is the first step of the model's preprocessing, so it is fitted inside
each cross-validation fold and on the training rows at refit, and the bundle carries the fitted
values to validation, test, serving and batch scoring unchanged.

The statistics are those of ``clean``: ``median`` / ``mean`` of the observed values, ``mode``
the smallest of tied modes; ``iqr`` bounds ``[Q1 - k·IQR, Q3 + k·IQR]`` (linear quantiles) and
``robust_z`` bounds ``median ± threshold · MAD / 0.6745``, fitted on the observed values before
imputation. ``statistics_`` holds them in ``CleanReport.statistics``' shape, and
``fitted_cleaning`` finds them in a fitted model.

The class holds plain dicts, floats and strings only, so the bundle's safe format can load it
(``shipyard.registry.safe_format.TRUSTED_TYPES`` lists it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from shipyard.core.errors import InvalidData

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.train.cleaning_spec import ModelCleaningSpec

__all__ = ["TrainingRowCleaner", "fitted_cleaning"]

_Z = 0.6744897501960817  # as in data.clean: MAD / _Z estimates sigma


class TrainingRowCleaner(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Impute and clip with values fitted on the rows passed to ``fit``.

    Args:
        impute: Column -> ``mean`` | ``median`` | ``mode``.
        outliers: Column -> ``{"method": "iqr" | "robust_z", "k": float, "threshold": float}``;
            values outside the fitted bounds are clipped to them.
    """

    def __init__(
        self,
        impute: dict[str, str] | None = None,
        outliers: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.impute = impute
        self.outliers = outliers

    @classmethod
    def of(cls, spec: ModelCleaningSpec) -> TrainingRowCleaner:
        """The unfitted cleaner for ``spec``."""
        return cls(
            impute=dict(spec.impute),
            outliers={
                c: {"method": r.method, "k": r.k, "threshold": r.threshold}
                for c, r in spec.outliers.items()
            },
        )

    def fit(self, x: pd.DataFrame, y: Any = None) -> TrainingRowCleaner:
        """Fit every rule's statistic on the observed values of these rows."""
        del y
        statistics: dict[str, dict[str, Any]] = {}
        fill: dict[str, Any] = {}
        bounds: dict[str, list[float | None]] = {}
        for column, rule in (self.outliers or {}).items():
            values = _numeric(x, column, "outliers")
            stats = _bounds(values, rule)
            statistics[f"outliers.{column}"] = stats
            bounds[column] = [stats["lower"], stats["upper"]]
        for column, how in (self.impute or {}).items():
            value = _impute_value(x, column, how)
            statistics[f"impute.{column}"] = {"value": value}
            if value is not None:
                fill[column] = value
        self.statistics_ = statistics
        self.fill_ = fill
        self.bounds_ = bounds
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        """Clip to the fitted bounds, then fill missing values with the fitted ones."""
        out = x.copy()
        for column, (lo, hi) in self.bounds_.items():
            out[column] = out[column].clip(lower=lo, upper=hi)
        for column, value in self.fill_.items():
            out[column] = out[column].fillna(value)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        """The columns pass through under their own names."""
        return np.asarray(input_features, dtype=object)


def fitted_cleaning(model: Any) -> dict[str, dict[str, Any]]:
    """The statistics of the ``TrainingRowCleaner`` in a fitted model (empty when none)."""
    stack = [model]
    while stack:
        step = stack.pop()
        if isinstance(step, TrainingRowCleaner):
            return dict(getattr(step, "statistics_", {}))
        stack.extend(inner for _, inner in getattr(step, "steps", []))
    return {}


def _column(x: pd.DataFrame, column: str, rule: str) -> Any:
    if column not in x.columns:
        raise InvalidData(
            f"train.preprocess.clean.{rule}: {column!r} is not a feature of the model; "
            f"features are {', '.join(map(str, x.columns))}"
        )
    return x[column]


def _numeric(x: pd.DataFrame, column: str, rule: str) -> np.ndarray[Any, Any]:
    series = _column(x, column, rule)
    try:
        values = np.asarray(series, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidData(
            f"train.preprocess.clean.{rule}.{column}: needs a numeric column; cast it first"
        ) from e
    return values[~np.isnan(values)]


def _impute_value(x: pd.DataFrame, column: str, how: str) -> Any:
    if how == "mode":
        observed = _column(x, column, "impute").dropna()
        if observed.empty:
            return None
        counts = observed.value_counts()
        tied = counts[counts == counts.max()].index
        value = sorted(tied)[0]
        return value.item() if isinstance(value, np.generic) else value
    values = _numeric(x, column, "impute")
    if values.size == 0:
        return None
    return float(np.median(values) if how == "median" else np.mean(values))


def _bounds(values: np.ndarray[Any, Any], rule: dict[str, Any]) -> dict[str, Any]:
    if values.size == 0:
        return {"lower": None, "upper": None}
    if rule["method"] == "iqr":
        q1, q3 = (float(q) for q in np.quantile(values, [0.25, 0.75]))
        iqr = q3 - q1
        return {"q1": q1, "q3": q3, "lower": q1 - rule["k"] * iqr, "upper": q3 + rule["k"] * iqr}
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    if not mad:
        return {"median": median, "mad": mad, "lower": None, "upper": None}
    spread = rule["threshold"] * mad / _Z
    return {"median": median, "mad": mad, "lower": median - spread, "upper": median + spread}
