"""What a served request leaves in the prediction log: one row per answer, shadows alongside.

Called after the response body is ready; ``PredictionLog.record`` only enqueues, so nothing
here waits on disk. A shadow answer is logged when it completes, under the same request id with
the variant ``shadow:<alias>``, so the two outputs sit side by side for comparison.

Each row also carries the request's input anomaly score against the answering model's training
reference (``shipyard.monitor.anomaly``): vectorized over the request's rows, and never allowed
to fail the request (a scoring error logs the row with a null score).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.serve.prediction_log import PredictionRecord

if TYPE_CHECKING:
    import asyncio

    from shipyard.serve.host import Scored, ServedModel
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Answer

logger = logging.getLogger("shipyard.serve")


def anomaly_score(model: ServedModel, columns: dict[str, list[Any]]) -> float | None:
    """The request's input anomaly score for ``model``; None without a reference or on error."""
    from shipyard.monitor.anomaly import scorer_for

    try:
        scorer = scorer_for(model.bundle)
        return None if scorer is None else scorer.score_columns(columns)
    except Exception:  # a monitoring aid must never fail or drop the answer it describes
        logger.warning("anomaly score of %s v%s failed", model.name, model.version, exc_info=True)
        return None


def _record(
    log: PredictionLog,
    name: str,
    model: ServedModel,
    variant: str,
    scored: Scored,
    columns: dict[str, list[Any]],
    request_id: str,
    latency_ms: float,
) -> PredictionRecord:
    first = scored.labels[0] if scored.labels else None
    probability = None
    if scored.probabilities:
        probability = float(scored.probabilities[0][-1])
    return PredictionRecord(
        request_id=request_id,
        model=name,
        version=model.version,
        variant=variant,
        ts_ms=log.now_ms(),  # the log's clock: tests can inject one
        latency_ms=latency_ms,
        inputs_json=orjson.dumps(columns).decode(),
        outputs_json=orjson.dumps(
            {"predictions": scored.labels, "probabilities": scored.probabilities}
        ).decode(),
        prediction=None if first is None else str(first),
        probability=probability,
        status=200,
        anomaly_score=anomaly_score(model, columns),
    )


def log_answer(
    log: PredictionLog,
    name: str,
    answer: Answer,
    columns: dict[str, list[Any]],
    request_id: str,
    seconds: float,
) -> None:
    """Enqueue the answer's row, and the shadow's row once the shadow finishes."""
    log.record(
        _record(
            log,
            name,
            answer.model,
            answer.alias,
            answer.scored,
            columns,
            request_id,
            seconds * 1000,
        )
    )
    if answer.shadow is None:
        return
    started = time.perf_counter()

    def _shadow_done(task: asyncio.Task[tuple[ServedModel, str, Scored | None]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        model, alias, scored = task.result()
        if scored is None:
            return
        latency = (time.perf_counter() - started) * 1000
        log.record(
            _record(log, name, model, f"shadow:{alias}", scored, columns, request_id, latency)
        )

    answer.shadow.add_done_callback(_shadow_done)
