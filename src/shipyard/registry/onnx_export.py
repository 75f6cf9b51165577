"""Optional ONNX export of a bundle's pipeline, verified against the native model before use.

The pipeline is converted with skl2onnx; LightGBM and XGBoost estimators with onnxmltools'
converters, registered with skl2onnx (``update_registered_converter``, as skl2onnx documents).
Every export is run through onnxruntime on a sample and compared with the native model
(``verify_onnx``): an export that disagrees beyond the tolerance is refused, never returned.

The ONNX graph takes one input per feature, named after it, shaped ``[n, 1]``: ``float32`` for
numeric features (NaN for missing) and ``string`` for categorical ones (``""`` for missing).
``onnx_inputs`` builds that feed from a Polars frame. How the native pipeline is adapted:

* Samplers (imbalanced-learn) act only in ``fit``, so the exported graph is the same pipeline
  without them.
* The categorical ``SimpleImputer`` learned with NaN as its missing marker; ONNX string tensors
  have no NaN, so the exported copy marks missing categories with ``""``.
* skl2onnx 1.20 writes a Python ``False`` into an integer attribute for HistGradientBoosting
  leaves, which current protobuf rejects; the converter runs with a container that writes such
  booleans as integers.

Limits (each raises ``InvalidArgument`` naming the part): estimators other than the linear
models, random forests, HistGradientBoosting, LightGBM and XGBoost; one-hot encoders that grouped
infrequent categories; target encoding for multiclass tasks. A known numerical limit: ONNX runs
the imputer and scaler in float32, which can move a value by one ulp. Random forests and XGBoost
place splits exactly at training values, so with ``scale: standard`` a few rows can land on the
other side of a split and verification fails; trees need no scaling, so train them with
``preprocess.scale: none`` to export them. Linear models, HistGradientBoosting (splits between
bin edges) and LightGBM agree to about 1e-6.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import IntegrityFailure, InvalidArgument
from shipyard.registry.inference import feature_roles
from shipyard.train.preprocess import model_input

if TYPE_CHECKING:
    import polars as pl

    from shipyard.registry.bundle import Bundle

TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
_SUPPORTED = frozenset(
    {
        "LogisticRegression",
        "LinearRegression",
        "Ridge",
        "Lasso",
        "ElasticNet",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "LGBMClassifier",
        "LGBMRegressor",
        "XGBClassifier",
        "XGBRegressor",
    }
)


def export_onnx(bundle: Bundle, sample: pl.DataFrame, *, atol: float = 1e-4) -> bytes:
    """Convert the bundle's pipeline to ONNX and verify it on ``sample``.

    Args:
        bundle: A loaded bundle.
        sample: Rows with the feature columns, used to check the export (the reference sample
            or some test rows).
        atol: Largest accepted absolute difference in probabilities (or regression outputs).

    Returns:
        The serialized ONNX model.

    Raises:
        InvalidArgument: The model, or a part of it, cannot be expressed in ONNX (named).
        IntegrityFailure: The export disagrees with the native model beyond ``atol``.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    model = _exportable(bundle.model)
    roles = feature_roles(bundle.manifest, bundle.model)
    inputs = [
        (
            name,
            StringTensorType([None, 1])
            if name in roles.categorical
            else FloatTensorType([None, 1]),
        )
        for name in bundle.manifest.feature_names
    ]
    options = None
    if bundle.manifest.task != "regression":
        options = {id(model.steps[-1][1]): {"zipmap": False}}
    _register_boosters()
    try:
        onnx_model = convert_sklearn(
            model,
            initial_types=inputs,
            options=options,
            target_opset=TARGET_OPSET,
            custom_conversion_functions=_hist_gradient_boosting_converters(),
        )
    except (NotImplementedError, RuntimeError, ValueError, TypeError, KeyError) as e:
        raise InvalidArgument(
            f"this model cannot be exported to ONNX ({type(e).__name__}: {e}); serve it with "
            "the native bundle instead"
        ) from e
    data = bytes(onnx_model.SerializeToString())
    verify_onnx(bundle, data, sample, atol=atol)
    return data


def verify_onnx(
    bundle: Bundle, onnx_bytes: bytes, sample: pl.DataFrame, *, atol: float = 1e-4
) -> float:
    """Run the ONNX model on ``sample`` and compare it with the bundle's native model.

    Classification compares class probabilities, regression the predictions.

    Returns:
        The largest absolute difference found.

    Raises:
        InvalidArgument: The sample has no rows.
        IntegrityFailure: The difference exceeds ``atol``, or the ONNX model does not run.
    """
    import onnxruntime as ort

    if sample.height == 0:
        raise InvalidArgument("verify_onnx needs at least one sample row")
    native = bundle.predict(sample)
    try:
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        outputs = session.run(None, onnx_inputs(bundle, sample))
    except Exception as e:  # onnxruntime raises its own Fail/InvalidArgument/... kinds
        raise IntegrityFailure(f"the ONNX model does not run: {type(e).__name__}: {e}") from e
    names = [o.name for o in session.get_outputs()]
    if native.proba is not None:
        got = np.asarray(
            outputs[names.index("probabilities")] if "probabilities" in names else outputs[-1]
        )
        expected = native.proba
    else:
        got = np.asarray(outputs[0]).reshape(-1)
        expected = native.labels
    if got.shape != expected.shape:
        raise IntegrityFailure(
            f"the ONNX model returned shape {got.shape}, the native model {expected.shape}"
        )
    difference = float(np.max(np.abs(got.astype(np.float64) - expected)))
    if not difference <= atol:
        raise IntegrityFailure(
            f"the ONNX export disagrees with the native model by {difference:.3g} on the sample "
            f"(tolerance {atol}); do not serve it. Tree models trained with standard scaling "
            "can flip splits in float32; retrain them with preprocess.scale: none"
        )
    return difference


def onnx_inputs(bundle: Bundle, frame: pl.DataFrame) -> dict[str, np.ndarray[Any, Any]]:
    """Build the ONNX feed for ``frame``: one ``[n, 1]`` array per feature (see module doc)."""
    roles = feature_roles(bundle.manifest, bundle.model)
    x = model_input(frame, roles)
    feed: dict[str, np.ndarray[Any, Any]] = {}
    for name in roles.numeric:
        feed[name] = x[name].to_numpy(dtype=np.float32).reshape(-1, 1)
    for name in roles.categorical:
        values = [v if isinstance(v, str) else "" for v in x[name]]
        feed[name] = np.asarray(values, dtype=object).reshape(-1, 1)
    return feed


def _exportable(model: Any) -> Any:
    """A copy of ``model`` that skl2onnx can convert (see the module docstring)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    steps = getattr(model, "steps", None)
    if not isinstance(steps, list):
        raise InvalidArgument(f"ONNX export needs a pipeline, not {type(model).__name__}")
    kept = [(name, step) for name, step in steps if not hasattr(step, "fit_resample")]
    estimator = kept[-1][1]
    if type(estimator).__name__ not in _SUPPORTED:
        raise InvalidArgument(
            f"ONNX export does not support {type(estimator).__name__}; supported are: "
            + ", ".join(sorted(_SUPPORTED))
        )
    copied = Pipeline(copy.deepcopy(kept))
    first = copied.steps[0][1]
    if isinstance(first, ColumnTransformer):
        for _, transformer, _ in first.transformers_:
            parts = getattr(transformer, "steps", [])
            for _, part in parts:
                if isinstance(part, SimpleImputer) and part.statistics_.dtype == object:
                    part.missing_values = ""
    return copied


@functools.cache
def _register_boosters() -> None:
    """Teach skl2onnx the LightGBM and XGBoost estimators (onnxmltools' converters); once."""
    import lightgbm
    import xgboost
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for estimator, converter, alias in (
        (lightgbm.LGBMClassifier, convert_lightgbm, "LightGbmLGBMClassifier"),
        (xgboost.XGBClassifier, convert_xgboost, "XGBoostXGBClassifier"),
    ):
        update_registered_converter(
            estimator,
            alias,
            calculate_linear_classifier_output_shapes,
            converter,
            options=classifier_options,
        )
    update_registered_converter(
        lightgbm.LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )
    update_registered_converter(
        xgboost.XGBRegressor,
        "XGBoostXGBRegressor",
        calculate_linear_regressor_output_shapes,
        convert_xgboost,
    )


def _hist_gradient_boosting_converters() -> dict[Any, Any]:
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return {
        HistGradientBoostingClassifier: _with_int_attributes(
            convert_sklearn_random_forest_classifier
        ),
        HistGradientBoostingRegressor: _with_int_attributes(
            convert_sklearn_random_forest_regressor_converter
        ),
    }


def _with_int_attributes(converter: Any) -> Any:
    def convert(scope: Any, operator: Any, container: Any) -> Any:
        return converter(scope, operator, _IntAttributes(container))

    return convert


class _IntAttributes:
    """A converter container that writes boolean attribute list items as integers."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attrs: Any) -> Any:
        fixed = {
            key: [int(v) if isinstance(v, bool | np.bool_) else v for v in value]
            if isinstance(value, list)
            else value
            for key, value in attrs.items()
        }
        return self._container.add_node(*args, **fixed)
