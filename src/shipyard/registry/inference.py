"""Predicting with a bundle: the input contract enforced, codes mapped back to labels.

Schema enforcement fails loudly (RELIABILITY.md lesson 8): a missing feature or a column that
will not convert to its contract type is an ``InvalidData`` that names the column, never a
silent NaN. Categories unseen in training are reported by ``check_input`` but do not stop a
prediction, since the encoders were built to treat them as unknown.

The frame reaches the pipeline through ``shipyard.train.preprocess.model_input``, the same
conversion training used, so a column is never read one way in training and another in serving.
Which columns are categorical is read from the fitted ``ColumnTransformer`` (the columns whose
transformer encodes categories), so it always matches what the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from shipyard.core.errors import IntegrityFailure, InvalidData
from shipyard.data.dtypes import to_polars
from shipyard.train.preprocess import Columns, model_input

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.registry.manifest import BundleManifest

_SHOWN = 5


@dataclass(frozen=True)
class Predictions:
    """What a bundle predicts for a frame.

    Attributes:
        labels: One label per row: a class of ``manifest.classes`` or, for regression, a float.
        proba: Class probabilities, shape (n, k), column j for ``classes[j]``; None for
            regression.
        codes: Class codes 0..k-1 behind ``labels``; None for regression.
    """

    labels: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None
    codes: np.ndarray[Any, Any] | None


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with an input frame, about one column."""

    column: str
    kind: Literal["missing", "type", "unseen"]
    message: str


def check_input(manifest: BundleManifest, frame: pl.DataFrame) -> list[InputProblem]:
    """List the problems of ``frame`` against the manifest's contract, in feature order."""
    problems: list[InputProblem] = []
    for field in manifest.features:
        name = field.name
        if name not in frame.columns:
            problems.append(
                InputProblem(
                    name,
                    "missing",
                    f"column {name!r} is missing (the model needs it as {field.dtype})",
                )
            )
            continue
        column = frame.get_column(name)
        try:
            column.cast(to_polars(field.dtype), strict=True)
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as e:
            problems.append(
                InputProblem(
                    name,
                    "type",
                    f"column {name!r} has type {column.dtype}, which does not convert to the "
                    f"contract's {field.dtype}: {str(e).splitlines()[0]}",
                )
            )
            continue
        if field.categories is not None:
            seen = set(field.categories)
            values = column.drop_nulls().cast(pl.String).unique().sort().to_list()
            unseen = [v for v in values if v not in seen]
            if unseen:
                shown = ", ".join(repr(v) for v in unseen[:_SHOWN])
                more = f" and {len(unseen) - _SHOWN} more" if len(unseen) > _SHOWN else ""
                problems.append(
                    InputProblem(
                        name,
                        "unseen",
                        f"column {name!r} has categories never seen in training: {shown}{more} "
                        "(the model treats them as unknown)",
                    )
                )
    return problems


def feature_roles(manifest: BundleManifest, model: Any) -> Columns:
    """Split the manifest's features into numeric and categorical as the model encodes them."""
    steps = getattr(model, "steps", None)
    first = steps[0][1] if isinstance(steps, list) and steps else model
    transformers = getattr(first, "transformers_", None)
    if isinstance(transformers, list):
        categorical = {
            column
            for _, transformer, columns in transformers
            if _encodes_categories(transformer) and isinstance(columns, list | tuple)
            for column in columns
            if isinstance(column, str)
        }
    else:
        categorical = {f.name for f in manifest.features if f.dtype in ("string", "category")}
    names = manifest.feature_names
    return Columns(
        numeric=tuple(n for n in names if n not in categorical),
        categorical=tuple(n for n in names if n in categorical),
    )


def _encodes_categories(transformer: Any) -> bool:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

    steps = getattr(transformer, "steps", None)
    parts = [s for _, s in steps] if isinstance(steps, list) else [transformer]
    return any(isinstance(p, OneHotEncoder | OrdinalEncoder | TargetEncoder) for p in parts)


def predict(
    manifest: BundleManifest, model: Any, frame: pl.DataFrame | pd.DataFrame
) -> Predictions:
    """Predict with ``model`` under ``manifest``'s contract (see ``Bundle.predict``).

    Raises:
        InvalidData: A feature column is missing or will not convert (named in the message).
        IntegrityFailure: The model's output disagrees with the manifest's classes.
    """
    rows = _as_polars(frame)
    fatal = [p for p in check_input(manifest, rows) if p.kind != "unseen"]
    if fatal:
        columns = ", ".join(p.column for p in fatal)
        details = "; ".join(p.message for p in fatal)
        raise InvalidData(
            f"input does not match the model's contract (column(s) {columns}): {details}"
        )
    if rows.height == 0:  # scikit-learn refuses empty input; the answer is known
        return _empty(manifest)
    x = model_input(rows, feature_roles(manifest, model))[manifest.feature_names]
    if manifest.task == "regression":
        return Predictions(np.asarray(model.predict(x), dtype=np.float64), None, None)
    classes = manifest.classes or []
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise IntegrityFailure(
            f"the model returned probabilities of shape {proba.shape} but the manifest lists "
            f"{len(classes)} classes; the bundle is inconsistent"
        )
    if manifest.task == "binary":
        threshold = 0.5 if manifest.threshold is None else manifest.threshold
        codes = (proba[:, 1] >= threshold).astype(np.int64)
    else:
        codes = np.argmax(proba, axis=1).astype(np.int64)
    return Predictions(np.asarray(classes)[codes], proba, codes)


def _empty(manifest: BundleManifest) -> Predictions:
    if manifest.task == "regression":
        return Predictions(np.zeros(0, dtype=np.float64), None, None)
    classes = np.asarray(manifest.classes)
    proba = np.zeros((0, len(classes)), dtype=np.float64)
    return Predictions(classes[:0], proba, np.zeros(0, dtype=np.int64))


def _as_polars(frame: pl.DataFrame | pd.DataFrame) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        return pl.from_pandas(frame)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as e:
        raise InvalidData(f"the input frame cannot be read: {e}") from e
