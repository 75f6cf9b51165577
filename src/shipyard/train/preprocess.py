"""Feature preparation that ships with the model: column roles, frame conversion, transformers.

Imputation, scaling and encoding live inside the fitted pipeline, so they are learned from the
training fold only and applied unchanged at serving time. ``model_input`` is the one place a
Polars frame becomes the pandas frame scikit-learn sees: training and every prediction path call
it, so a column can never be converted one way in training and another way in serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument, InvalidData

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from shipyard.train.spec import PreprocessSpec, TrainSpec

_CATEGORICAL_DTYPES = (pl.String, pl.Categorical, pl.Enum)


@dataclass(frozen=True)
class Columns:
    """The feature columns in model order, split by how they are encoded."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric first (the order the model sees)."""
        return [*self.numeric, *self.categorical]


def resolve_columns(spec: TrainSpec, schema: pl.Schema) -> Columns:
    """Pick the feature columns and their roles from the spec and the data's schema.

    Without ``features``, every column but the target, ``exclude``, split/group/time columns and
    temporal columns is a feature. Strings (and categoricals) are categorical unless
    ``categorical`` says otherwise; numbers and booleans are numeric.

    Raises:
        InvalidData: The target or a named column is missing, or a feature has an unusable type.
    """
    names = list(schema.names())
    named = [spec.target, *(spec.features or []), *spec.exclude, *(spec.categorical or [])]
    missing = sorted({c for c in named if c not in names})
    if missing:
        raise InvalidData(
            f"train: column(s) {', '.join(missing)} not in the data; it has: {', '.join(names)}"
        )
    if spec.features is not None:
        features = list(spec.features)
    else:
        skip = {spec.target, *spec.exclude, spec.split.group_column, spec.split.time_column}
        features = [
            c for c in names if c not in skip and not c.startswith("_") and not _temporal(schema[c])
        ]
    if not features:
        raise InvalidData("train: no feature columns left; list them under train.features")
    categorical = set(spec.categorical) if spec.categorical is not None else set()
    if spec.categorical is None:
        categorical = {c for c in features if isinstance(schema[c], _CATEGORICAL_DTYPES)}
    for c in features:
        dtype = schema[c]
        if c not in categorical and not (dtype.is_numeric() or dtype == pl.Boolean):
            raise InvalidData(
                f"train: feature {c!r} has type {dtype}, which a model cannot take as a number; "
                "list it under train.categorical, cast it in a features step, or exclude it"
            )
    return Columns(
        numeric=tuple(c for c in features if c not in categorical),
        categorical=tuple(c for c in features if c in categorical),
    )


def _temporal(dtype: pl.DataType) -> bool:
    return dtype.is_temporal()


def model_input(frame: pl.DataFrame, columns: Columns) -> pd.DataFrame:
    """Return the pandas frame the pipeline takes: floats with NaN, categories as text.

    Raises:
        InvalidData: A feature column is missing or will not convert (the message names it).
    """
    missing = [c for c in columns.features if c not in frame.columns]
    if missing:
        raise InvalidData(f"missing feature column(s): {', '.join(missing)}")
    exprs = []
    for c in columns.numeric:
        exprs.append(pl.col(c).cast(pl.Float64, strict=True))
    for c in columns.categorical:
        exprs.append(pl.col(c).cast(pl.String))
    try:
        selected = frame.select(exprs)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as e:
        raise InvalidData(f"a feature column will not convert to the model's types: {e}") from e
    pdf = selected.to_pandas()
    for c in columns.categorical:
        # Plain objects with NaN for missing: every sklearn encoder and imputer agrees on these.
        values = pdf[c].to_numpy(dtype=object, na_value=np.nan)
        pdf[c] = values
    return pdf


def build_preprocessor(
    spec: PreprocessSpec,
    columns: Columns,
    *,
    seed: int,
    linear: bool = True,
    native: bool = False,
) -> Any:
    """Return the unfitted ColumnTransformer for these columns.

    ``linear`` says whether the estimator is scale-sensitive (``scale: auto`` scales only then).
    With ``spec.clean`` rules, it is a Pipeline whose first step (``clean``) fits them on the
    training rows (``train.cleaning``) before the ColumnTransformer (``columns``).

    ``native`` is for estimators that handle missing values and categories themselves
    (LightGBM): numbers pass through with their NaN, categories become integer codes (NaN for
    missing and unseen), and the estimator is told which outputs are categorical. One-hot and
    median imputation would throw away what the library does best (issue 16).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    transformers: list[tuple[str, Any, list[str]]] = []
    if native:
        from sklearn.preprocessing import OrdinalEncoder

        if columns.numeric:
            # An identity (no centring, no scaling) rather than "passthrough": its fitted form
            # is a FunctionTransformer, which neither the safe model format nor ONNX takes.
            identity = StandardScaler(with_mean=False, with_std=False)
            transformers.append(("numeric", identity, list(columns.numeric)))
        if columns.categorical:
            codes = OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                dtype=np.float64,
            )
            transformers.append(("categorical", codes, list(columns.categorical)))
    else:
        if columns.numeric:
            steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=spec.impute_numeric))]
            if spec.scale == "standard" or (spec.scale == "auto" and linear):
                steps.append(("scale", StandardScaler()))
            transformers.append(("numeric", Pipeline(steps), list(columns.numeric)))
        if columns.categorical:
            encoder = _encoder(spec, seed)
            steps = [("impute", SimpleImputer(strategy="most_frequent")), ("encode", encoder)]
            transformers.append(("categorical", Pipeline(steps), list(columns.categorical)))
    encode = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    # The training-row cleaner (clean: rules fitted on training rows only) goes in front of
    # either encoding: a native model gets clipped outliers and user-asked imputation too.
    if spec.clean is None or spec.clean.empty:
        return encode
    from shipyard.train.cleaning import TrainingRowCleaner

    return Pipeline([("clean", TrainingRowCleaner.of(spec.clean)), ("columns", encode)])


def _encoder(spec: PreprocessSpec, seed: int) -> Any:
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

    if spec.categorical == "onehot":
        if spec.max_categories is None:
            return OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        return OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=spec.max_categories,
            sparse_output=False,
        )
    if spec.categorical == "ordinal":
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    if spec.categorical == "target":
        return TargetEncoder(cv=KFold(5, shuffle=True, random_state=seed))
    raise InvalidArgument(f"unknown categorical encoding {spec.categorical!r}")


def feature_names(columns: Columns) -> Sequence[str]:
    """The raw feature names, in model order (for importances and contracts)."""
    return columns.features
