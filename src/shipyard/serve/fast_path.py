"""The compiled fast path: serve through onnxruntime when the ONNX export agrees with the model.

A scikit-learn pipeline spends ~10 ms per call on input validation and dispatch, whatever the
row count; onnxruntime runs the same graph in microseconds. At load, the bundle is exported
(``registry.onnx_export``, which verifies the export against the native model on the bundle's
reference sample and refuses any disagreement); the server uses it only if that succeeds and
falls back to the native pipeline otherwise, saying why in the model metadata.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.registry.inference import Predictions, category_column

if TYPE_CHECKING:
    from shipyard.registry.bundle import Bundle
    from shipyard.registry.input_contract import ModelInput

log = logging.getLogger("shipyard.serve")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class OnnxPredictor:
    """``Bundle.predict`` semantics (threshold, class labels) over an onnxruntime session."""

    def __init__(self, bundle: Bundle, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one request batch per worker thread; no pool spin
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.manifest = bundle.manifest
        roles = bundle.roles
        self.numeric, self.categorical = list(roles.numeric), list(roles.categorical)
        self.dtypes = {f.name: f.dtype for f in bundle.manifest.features}
        names = bundle.contract.number_names
        self.numeric_slots = [names.index(n) for n in self.numeric]
        outputs = [o.name for o in self.session.get_outputs()]
        self.proba_index = (
            outputs.index("probabilities") if "probabilities" in outputs else len(outputs) - 1
        )
        self.classes = np.asarray(bundle.manifest.classes or [])
        self.native = bundle.predict_input

    @classmethod
    def try_build(cls, bundle: Bundle) -> tuple[OnnxPredictor | None, str]:
        """Export and verify; return the predictor, or None and the reason it is not used."""
        from shipyard.registry.onnx_export import export_onnx

        sample = bundle.reference_sample()
        if sample is None or sample.height == 0:
            return None, "no reference sample to verify an ONNX export on"
        try:
            return cls(
                bundle, export_onnx(bundle, sample)
            ), "onnx export verified on the reference sample"
        except Exception as e:  # unsupported model kinds, disagreement: the native path serves
            log.info("serving %s natively: %s", bundle.manifest.name, e)
            return None, f"native: {e}"

    def __call__(self, inputs: ModelInput) -> Predictions:
        """Predict rows already checked and decoded by the input contract."""
        feed: dict[str, np.ndarray[Any, Any]] = {}
        if self.numeric:
            # One slice for all numeric columns, straight from the decoded matrix (NaN missing).
            wide = inputs.numbers[:, self.numeric_slots]
            if (np.abs(wide) > _FLOAT32_MAX).any():
                # float32 would make these +-inf and the graph's probabilities NaN (found by
                # tests/integration/test_api_fuzz.py); the native model computes in float64.
                return self.native(inputs)
            block = wide.astype(np.float32)
            for j, name in enumerate(self.numeric):
                feed[name] = block[:, j : j + 1]
        for name in self.categorical:
            column = category_column(inputs, name, self.dtypes[name], missing="")
            feed[name] = column.reshape(-1, 1)
        outputs = self.session.run(None, feed)
        m = self.manifest
        if m.task == "regression":
            return Predictions(np.asarray(outputs[0], dtype=np.float64).reshape(-1), None, None)
        proba = np.asarray(outputs[self.proba_index], dtype=np.float64)
        if m.task == "binary":
            threshold = 0.5 if m.threshold is None else m.threshold
            codes = (proba[:, 1] >= threshold).astype(np.int64)
        else:
            codes = np.argmax(proba, axis=1).astype(np.int64)
        return Predictions(self.classes[codes], proba, codes)
