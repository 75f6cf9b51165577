"""Models held in memory by a server, and the atomic swap that replaces one without a hiccup.

A ``ServedModel`` is immutable: one registry version with its compiled contract and its own
batcher. Swapping (an alias moved, a rollback) builds the new one in the background and then
replaces a single reference; a request that already holds the old object finishes on it, and the
old batcher is closed only once nothing has used it for a grace period.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.serve.batching import MicroBatcher
from shipyard.serve.contract import RequestContract, UnseenPolicy
from shipyard.serve.payloads import label_datatype

#: Most rows of a batch the ONNX engine scores on the event loop (measured: below ~64 rows a
#: worker-thread hand-off costs more than the graph; benchmarks/serving.py).
INLINE_ROWS = 64

if TYPE_CHECKING:
    from shipyard.registry.bundle import Bundle
    from shipyard.registry.inference import Predictions
    from shipyard.registry.input_contract import ModelInput
    from shipyard.registry.onnx_cache import OnnxCache


@dataclass(frozen=True)
class Scored:
    """One request's share of a batch: predictions, class probabilities and model CPU seconds.

    ``cpu_seconds`` is the request's share (by rows) of the CPU time the batch's model call
    took (see ``metered``); 0.0 when metering is off.
    """

    labels: list[Any]
    probabilities: list[list[float]] | None
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class _Metered:
    result: Predictions
    cpu_ns: int


def metered(predict: Any) -> Any:
    """Wrap a batch predict so its CPU seconds are counted per model version and variant."""

    # A batch in a worker thread (MicroBatcher's to_thread) costs that thread's CPU clock.
    # A small batch scored inline on the event loop runs start to end without yielding, so
    # its wall time is its CPU time, read from the monotonic clock, which needs no system
    # call (the thread CPU clock does, and on a busy box two such reads per batch cost more
    # than a one-row ONNX call; issue 17). Two clock reads per batch either way.
    def call(inputs: ModelInput) -> _Metered:
        clock = time.thread_time_ns if asyncio._get_running_loop() is None else time.perf_counter_ns
        started = clock()
        result = predict(inputs)
        return _Metered(result, clock() - started)

    return call


def _split(result: Predictions | _Metered, sizes: list[int]) -> list[Scored]:
    cpu_ns, total = 0, max(sum(sizes), 1)
    if isinstance(result, _Metered):
        cpu_ns, result = result.cpu_ns, result.result
    labels = np.asarray(result.labels).tolist()
    proba = None if result.proba is None else np.asarray(result.proba).tolist()
    out, start = [], 0
    for n in sizes:
        out.append(
            Scored(
                labels[start : start + n],
                None if proba is None else proba[start : start + n],
                cpu_ns * n / total / 1e9,
            )
        )
        start += n
    return out


@dataclass
class ServedModel:
    """One loaded model version, ready to answer requests."""

    name: str
    version: int
    bundle: Bundle
    contract: RequestContract
    batcher: MicroBatcher
    engine: str = "native"
    loaded_at: float = field(default_factory=time.time)
    predict: Any = field(default=None, repr=False)  # the batch predict the batcher calls

    @classmethod
    def build(
        cls,
        name: str,
        version: int,
        bundle: Bundle,
        *,
        unseen: UnseenPolicy | None,
        max_batch_rows: int,
        fast_path: bool = True,
        metering: bool = True,
        onnx_cache: OnnxCache | None = None,
    ) -> ServedModel:
        """Compile the contract, choose the engine (verified ONNX or native), make the batcher.

        ``metering`` counts model CPU per request (``Settings.cost.metering``, which
        ``SHIPYARD_COST__METERING=0`` or ``cost: {metering: false}`` turns off); the server
        passes it down from the workspace's settings. ``onnx_cache`` keeps verified exports
        between starts (``registry.onnx_cache``).
        """
        from shipyard.serve.native_path import NativePredictor

        predict: Any = NativePredictor(bundle)
        engine = "native"
        if fast_path:
            from shipyard.serve.fast_path import OnnxPredictor

            onnx, why = OnnxPredictor.try_build(bundle, onnx_cache)
            if onnx is not None:
                predict, engine = onnx, "onnx"
            else:
                engine = why
        if engine != "onnx":
            # A deferred model is loaded (and its types checked) now: a model that is refused
            # fails the load, as before, never a request.
            _ = bundle.model
        if metering:
            predict = metered(predict)
        # ONNX answers a small batch in tens of microseconds: scored on the loop, no thread.
        inline = INLINE_ROWS if engine == "onnx" else 0
        batcher = MicroBatcher(predict, _split, max_rows=max_batch_rows, inline_rows=inline)
        contract = RequestContract(bundle.contract, unseen=unseen)
        return cls(name, version, bundle, contract, batcher, engine, predict=predict)

    async def score(self, inputs: ModelInput) -> Scored:
        """Predict one request's decoded rows (batched with concurrent requests)."""
        result: Scored = await self.batcher.submit(inputs)
        return result

    def score_now(self, inputs: ModelInput) -> Scored:
        """Predict decoded rows in the calling thread, unbatched (benchmarks, tools)."""
        scored: Scored = _split(self.predict(inputs), [inputs.height])[0]
        return scored

    def warm(self) -> bool:
        """Score one made-up row, so the first real request does not pay for lazy set-up.

        Engines build caches and allocate on their first call (ONNX sessions, tree layouts);
        a replica reports ready only after this, so a balancer never sends its first
        requests into that pause (issue 20). The row takes each feature's first training
        category, or zero: it only has to pass the contract. Returns whether it did; a
        model the row does not suit is still served (its first request pays instead).
        """
        columns: dict[str, list[Any]] = {}
        for feature in self.bundle.manifest.features:
            if feature.categories:
                value: Any = feature.categories[0]
            elif feature.dtype == "bool":
                value = False
            elif feature.dtype.startswith(("int", "uint", "float")):
                value = 0
            else:
                value = ""
            columns[feature.name] = [value]
        try:
            self.score_now(self.contract.frame(columns))
        except Exception:  # a warm-up is an optimisation, never a reason not to serve
            return False
        return True

    def describe(self) -> dict[str, Any]:
        """Model metadata for ``GET /v2/models/{name}``."""
        m = self.bundle.manifest
        return {
            "name": self.name,
            "versions": [str(self.version)],
            "platform": f"shipyard-{m.model_format}",
            "engine": self.engine,
            "task": m.task,
            "classes": m.classes,
            "inputs": [
                {
                    "name": f.name,
                    "datatype": _v2_type(f.dtype),
                    "shape": [-1],
                    "categories": f.categories,
                }
                for f in m.features
            ],
            "outputs": [{"name": "predict", "datatype": label_datatype(m.classes), "shape": [-1]}],
        }


def _v2_type(dtype: str) -> str:
    if dtype.startswith(("int", "uint")):
        return dtype.upper().replace("UINT", "UINT").replace("INT", "INT")
    if dtype.startswith("float"):
        return "FP64" if dtype == "float64" else "FP32"
    if dtype == "bool":
        return "BOOL"
    return "BYTES"


class ModelSlot:
    """The current model for one name/variant; ``swap`` replaces it atomically."""

    def __init__(self, model: ServedModel, *, grace_s: float = 30.0) -> None:
        self._model = model
        self._lock = threading.Lock()
        self._grace_s = grace_s
        self._retired: list[tuple[float, ServedModel]] = []

    @property
    def model(self) -> ServedModel:
        """The model new requests should use (read once per request)."""
        return self._model

    def swap(self, model: ServedModel) -> ServedModel:
        """Make ``model`` current and return the one it replaced."""
        with self._lock:
            old, self._model = self._model, model
            self._retired.append((time.monotonic(), old))
        return old

    async def reap(self) -> None:
        """Close batchers of models retired longer ago than the grace period."""
        now = time.monotonic()
        with self._lock:
            done = [m for t, m in self._retired if now - t >= self._grace_s]
            self._retired = [(t, m) for t, m in self._retired if now - t < self._grace_s]
        for model in done:
            await model.batcher.close()

    async def close(self) -> None:
        """Close every batcher this slot ever held."""
        with self._lock:
            models = [self._model, *(m for _, m in self._retired)]
            self._retired = []
        await asyncio.gather(*(m.batcher.close() for m in models))
