"""Predicting with a bundle: the input contract enforced, codes mapped back to labels.

Schema enforcement fails loudly (RELIABILITY.md lesson 8): every frame is read through the
bundle's compiled ``InputContract`` (``shipyard.registry.input_contract``), the same one HTTP
serving and batch scoring use, so a missing feature, a value of the wrong kind, a missing value
where the manifest says ``nullable: false``, infinity, or (under the strict default policy) an
unseen category is a ``ContractViolation`` naming the field and rows, never a silent NaN.

The decoded rows reach the pipeline as the frame training produced with
``shipyard.train.preprocess.model_input``: numeric features as float64 with NaN, categorical
ones as text objects with NaN. Which columns are categorical is read from the fitted
``ColumnTransformer`` (the columns whose transformer encodes categories), so it always matches
what the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from shipyard.core.errors import IntegrityFailure, InvalidData
from shipyard.registry.input_contract import (
    MISSING_COLUMN,
    UNSEEN,
    InputContract,
    ModelInput,
    group_problems,
)
from shipyard.train.preprocess import Columns

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
    """List the problems of ``frame`` against the manifest's contract, in feature order.

    Unseen categories are always listed (kind ``unseen``), whatever the manifest's policy, so
    a caller such as the promotion gate can tell them from values the model cannot take.
    """
    contract = InputContract(
        manifest, manifest.input_policy.model_copy(update={"unseen_categories": "error"})
    )
    missing = [n for n in contract.names if n not in frame.columns]
    # The other columns are still checked: a stand-in null column is read, its problems dropped.
    padded = frame.with_columns(pl.lit(None).alias(n) for n in missing)
    rejected = [
        (row, [(f, m) for f, m in pairs if f not in missing])
        for row, pairs in contract.check_frame(padded).rejected
    ]
    problems = [
        *contract.column_problems(frame.columns, allow_extra=True),
        *group_problems([(r, p) for r, p in rejected if p], contract.names),
    ]
    kinds: dict[str, Literal["missing", "type", "unseen"]] = {
        MISSING_COLUMN: "missing",
        UNSEEN: "unseen",
    }
    return [InputProblem(p.field, kinds.get(p.problem, "type"), p.describe()) for p in problems]


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
    manifest: BundleManifest,
    model: Any,
    frame: pl.DataFrame | pd.DataFrame,
    *,
    contract: InputContract | None = None,
) -> Predictions:
    """Predict with ``model`` under ``manifest``'s contract (see ``Bundle.predict``).

    Raises:
        ContractViolation: A feature column is missing or some values break the contract
            (an ``InvalidData``; the message names the fields and rows).
        IntegrityFailure: The model's output disagrees with the manifest's classes.
    """
    contract = contract if contract is not None else InputContract(manifest)
    inputs = contract.decode_frame(_as_polars(frame))
    return predict_input(manifest, model, inputs, feature_roles(manifest, model))


def predict_input(
    manifest: BundleManifest, model: Any, inputs: ModelInput, roles: Columns
) -> Predictions:
    """Predict rows already checked and decoded by the contract (the serving path).

    Raises:
        IntegrityFailure: The model's output disagrees with the manifest's classes.
    """
    if inputs.height == 0:  # scikit-learn refuses empty input; the answer is known
        return _empty(manifest)
    x = model_frame(manifest, inputs, roles)
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


def model_frame(manifest: BundleManifest, inputs: ModelInput, roles: Columns) -> pd.DataFrame:
    """The pandas frame the pipeline takes, as ``model_input`` made it in training.

    Numeric features are float64 with NaN; categorical ones plain objects with NaN for
    missing (a number the model encodes as a category is written as Polars casts it).
    """
    import pandas as pd

    categorical = set(roles.categorical)
    if not categorical and inputs.number_names == tuple(manifest.feature_names):
        # Every feature a number, in the manifest's order: one float64 block, no copy per
        # column (building the frame column by column was most of a small batch's time).
        return pd.DataFrame(inputs.numbers, columns=manifest.feature_names, copy=False)
    data: dict[str, Any] = {}
    for field in manifest.features:
        name = field.name
        if name in categorical:
            data[name] = category_column(inputs, name, field.dtype, missing=np.nan)
        else:
            data[name] = inputs.number(name)
    return pd.DataFrame(data, columns=manifest.feature_names)


def category_column(
    inputs: ModelInput, name: str, dtype: str, *, missing: Any
) -> np.ndarray[Any, Any]:
    """A categorical feature as an object array of text, ``missing`` where there is none."""
    if name in inputs.text_names:
        values = inputs.text(name)
        return np.array([missing if v is None else v for v in values], dtype=object)
    numbers = inputs.number(name)  # a number or boolean the model encodes as a category
    if dtype == "bool":
        spelled = [missing if np.isnan(v) else ("true" if v else "false") for v in numbers]
    elif dtype.startswith(("int", "uint")):
        spelled = [missing if np.isnan(v) else str(int(v)) for v in numbers]
    else:
        spelled = [missing if np.isnan(v) else str(float(v)) for v in numbers]
    return np.array(spelled, dtype=object)


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
