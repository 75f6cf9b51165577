"""ONNX export: verified against the native pipeline, refused where it cannot be exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from shipyard.core.errors import IntegrityFailure, InvalidArgument
from shipyard.registry.bundle import Bundle, read_bundle, write_bundle
from shipyard.registry.onnx_export import export_onnx, onnx_inputs, verify_onnx
from tests.unit.registry.models import Fitted, fitted


def _bundle(tmp_path: Path, model: Fitted) -> Bundle:
    path = tmp_path / "bundle.zip"
    write_bundle(path, model.model, model.manifest)
    return read_bundle(path)


def _run(onnx_bytes: bytes, bundle: Bundle, model: Fitted) -> list[np.ndarray]:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, onnx_inputs(bundle, model.frame))


@pytest.mark.parametrize(
    ("estimator", "task", "options"),
    [
        ("logistic", "binary", {}),
        ("logistic", "multiclass", {"encoding": "ordinal"}),
        ("hist_gradient_boosting", "binary", {}),
        ("hist_gradient_boosting", "regression", {"encoding": "target"}),
        ("lightgbm", "binary", {}),
        ("lightgbm", "regression", {}),
        ("linear", "regression", {}),
        ("logistic", "binary", {"resample": "smote"}),
        ("random_forest", "binary", {"scale": "none"}),
        ("xgboost", "multiclass", {"scale": "none"}),
    ],
)
def test_export_agrees_with_the_native_model(
    tmp_path: Path, estimator: str, task: str, options: dict[str, str]
):
    model = fitted(estimator, task, **options)
    bundle = _bundle(tmp_path, model)
    onnx_bytes = export_onnx(bundle, model.frame)
    outputs = _run(onnx_bytes, bundle, model)
    x = model.x()
    if task == "regression":
        np.testing.assert_allclose(outputs[0].ravel(), model.model.predict(x), atol=1e-4)
    else:
        np.testing.assert_allclose(outputs[1], model.model.predict_proba(x), atol=1e-4)
        # the frame has missing numbers and categories: the export handles both
        assert model.frame["a"].null_count() > 0
        assert model.frame["color"].null_count() > 0
    assert verify_onnx(bundle, onnx_bytes, model.frame) <= 1e-4


def test_verification_catches_an_export_of_another_model(tmp_path: Path):
    model = fitted("logistic", "binary")
    other = fitted("hist_gradient_boosting", "binary")
    onnx_bytes = export_onnx(_bundle(tmp_path / "other", other), other.frame)
    with pytest.raises(IntegrityFailure, match="disagrees"):
        verify_onnx(_bundle(tmp_path, model), onnx_bytes, model.frame)
    with pytest.raises(IntegrityFailure, match="does not run"):
        verify_onnx(_bundle(tmp_path, model), b"not onnx", model.frame)
    with pytest.raises(InvalidArgument, match="at least one"):
        verify_onnx(_bundle(tmp_path, model), onnx_bytes, model.frame.head(0))


def test_unsupported_parts_are_named(tmp_path: Path):
    multiclass_target = fitted("logistic", "multiclass", encoding="target")
    with pytest.raises(InvalidArgument, match="TargetEncoder"):
        export_onnx(_bundle(tmp_path, multiclass_target), multiclass_target.frame)
    model = fitted("logistic", "binary")
    bundle = _bundle(tmp_path, model)
    not_a_pipeline = Bundle(bundle.manifest, model.model.steps[-1][1], bundle.sha256, {})
    with pytest.raises(InvalidArgument, match="needs a pipeline"):
        export_onnx(not_a_pipeline, model.frame)

    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    knn = Pipeline([model.model.steps[0], ("model", KNeighborsClassifier())])
    knn.fit(model.x(), (model.frame["binary"] == "yes").to_numpy().astype(int))
    unsupported = Bundle(bundle.manifest, knn, bundle.sha256, {})
    with pytest.raises(InvalidArgument, match="KNeighborsClassifier"):
        export_onnx(unsupported, model.frame)


def test_scaled_trees_that_flip_in_float32_are_refused_not_returned(tmp_path: Path):
    # XGBoost splits at training values; float32 scaling moves some rows across a split.
    model = fitted("xgboost", "regression")
    bundle = _bundle(tmp_path, model)
    with pytest.raises(IntegrityFailure, match=r"disagrees.*scale: none"):
        export_onnx(bundle, model.frame)
    unscaled = fitted("xgboost", "regression", scale="none")
    exported = export_onnx(_bundle(tmp_path / "unscaled", unscaled), unscaled.frame)
    assert exported.startswith(b"\x08")  # an ONNX ModelProto (field 1, ir_version)
