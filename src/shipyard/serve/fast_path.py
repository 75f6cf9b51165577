"""The compiled fast path: serve through onnxruntime when the ONNX export agrees with the model.

A scikit-learn pipeline spends ~10 ms per call on input validation and dispatch, whatever the
row count; onnxruntime runs the same graph in microseconds. At load, the bundle is exported
(``registry.onnx_export``, which verifies the export against the native model on the bundle's
reference sample and refuses any disagreement); the server uses it only if that succeeds and
falls back to the native pipeline otherwise, saying why in the model metadata. A verified
export is kept in the workspace's ONNX cache (``registry.onnx_cache``, keyed by the bundle's
SHA-256), so later starts of the same bundle skip the export and the native model altogether.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.registry.inference import Predictions, category_column
from shipyard.train.preprocess import Columns

if TYPE_CHECKING:
    from shipyard.registry.bundle import Bundle
    from shipyard.registry.input_contract import ModelInput
    from shipyard.registry.onnx_cache import OnnxCache

log = logging.getLogger("shipyard.serve")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class OnnxPredictor:
    """``Bundle.predict`` semantics (threshold, class labels) over an onnxruntime session."""

    def __init__(self, bundle: Bundle, onnx_bytes: bytes, roles: Columns | None = None) -> None:
        """Open ``onnx_bytes``; ``roles`` are the feature roles it was exported with.

        Without ``roles`` they are read from the native model, which loads it.
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one request batch per worker thread; no pool spin
        options.inter_op_num_threads = 1
        self.onnx = onnx_bytes
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.manifest = bundle.manifest
        roles = roles or bundle.roles
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
    def try_build(
        cls, bundle: Bundle, cache: OnnxCache | None = None
    ) -> tuple[OnnxPredictor | None, str]:
        """Export and verify; return the predictor, or None and the reason it is not used.

        A verified export of this very bundle (same SHA-256) in ``cache`` is used as it is:
        neither the native model nor the export libraries are loaded (issue #17). A fresh
        export that verifies is kept there for the next start.
        """
        from shipyard.registry.onnx_cache import CachedExport

        cached = cache.get(bundle.sha256) if cache is not None else None
        if cached is not None:
            try:
                roles = Columns(numeric=cached.numeric, categorical=cached.categorical)
                return cls(bundle, cached.onnx, roles), "onnx export verified (cached)"
            except Exception as e:  # an unreadable entry: export again below
                log.info("ignoring the cached ONNX export of %s: %s", bundle.manifest.name, e)
        from shipyard.registry.onnx_export import export_onnx

        sample = bundle.reference_sample()
        if sample is None or sample.height == 0:
            return None, "no reference sample to verify an ONNX export on"
        try:
            predictor = cls(bundle, export_onnx(bundle, sample))
        except Exception as e:  # unsupported model kinds, disagreement: the native path serves
            log.info("serving %s natively: %s", bundle.manifest.name, e)
            return None, f"native: {e}"
        if cache is not None:
            export = CachedExport(
                predictor.onnx, tuple(predictor.numeric), tuple(predictor.categorical)
            )
            cache.put(bundle.sha256, export)
        return predictor, "onnx export verified on the reference sample"

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
            # Column-major: each one-column slice below is contiguous, which onnxruntime can
            # take as it is instead of copying it (issue 17). The values are the same.
            block = np.asfortranarray(wide, dtype=np.float32)
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
