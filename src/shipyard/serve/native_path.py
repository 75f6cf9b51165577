"""The native engine: a model's own scikit-learn pipeline, for models ONNX cannot serve.

A model whose ONNX export is refused (an unsupported step, a disagreement on the reference
sample) is served by ``Bundle.predict_input``. Two things made that path several times slower
than calling the estimator (issue 17):

- **Thread pools.** HistGradientBoosting, LightGBM and BLAS-backed steps parallelize each call
  over an OpenMP or BLAS pool. For the few rows of a serving batch the work is microseconds and
  waking and parking the pool is the whole cost, and far worse when the cores are busy (on a
  loaded 2-core box a one-row HistGradientBoosting predict took 890 ms with the default pool
  and 48 ms with one thread). A server's parallelism is its worker processes and its
  micro-batches, so each call runs with the pools held to one thread (``threadpoolctl``, as
  training does).
- **The frame.** The pipeline takes the pandas frame it was trained on; it is built once per
  batch from the decoded numpy matrix (``registry.inference.model_frame``), in one block when
  every feature is numeric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.registry.bundle import Bundle
    from shipyard.registry.inference import Predictions
    from shipyard.registry.input_contract import ModelInput


class NativePredictor:
    """``Bundle.predict_input`` with the native thread pools held to one thread per call."""

    def __init__(self, bundle: Bundle) -> None:
        from threadpoolctl import ThreadpoolController

        self._predict = bundle.predict_input
        self._pools = ThreadpoolController()

    def __call__(self, inputs: ModelInput) -> Predictions:
        """Predict rows already checked and decoded by the input contract."""
        with self._pools.limit(limits=1):
            return self._predict(inputs)
