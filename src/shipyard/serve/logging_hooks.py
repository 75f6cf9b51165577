"""What a served request leaves in the prediction log: one row per answer, shadows alongside.

Called after the response body is ready; ``PredictionLog.record`` only enqueues, so nothing
here waits on disk, and the row itself (the inputs and outputs as JSON text, the anomaly
score) is built by the log's writer thread (``LazyRecord``), a batch at a time, not on the
serving loop. The key and the timestamp are taken at once. A shadow answer is logged when it
completes, under the same request id with the variant ``shadow:<alias>``, so the two outputs
sit side by side for comparison.

Each row also carries the request's input anomaly score against the answering model's training
reference (``shipyard.monitor.anomaly``): vectorized over the request's rows, and never allowed
to fail the request (a scoring error logs the row with a null score).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.serve.contract import records_to_columns
from shipyard.serve.prediction_log import LazyRecord, PredictionRecord

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Sequence

    import numpy as np

    from shipyard.registry.input_contract import ModelInput
    from shipyard.serve.host import Scored, ServedModel
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Answer

logger = logging.getLogger("shipyard.serve")


def anomaly_score(model: ServedModel, columns: dict[str, list[Any]]) -> float | None:
    """The request's input anomaly score for ``model``; None without a reference or on error."""
    return anomaly_scores(model, [columns])[0]


def anomaly_scores(model: ServedModel, requests: list[dict[str, list[Any]]]) -> list[float | None]:
    """Input anomaly scores of several requests to ``model``, in one pass (None on error)."""
    from shipyard.monitor.anomaly import scorer_for

    try:
        scorer = scorer_for(model.bundle)
        if scorer is None:
            return [None] * len(requests)
        return scorer.score_requests(requests)
    except Exception:  # a monitoring aid must never fail or drop the answer it describes
        logger.warning("anomaly score of %s v%s failed", model.name, model.version, exc_info=True)
        return [None] * len(requests)


class _Answered:
    """What the loop keeps of one answer until the writer turns it into a row.

    A plain class with slots, not a frozen dataclass: one is made per answer on the serving
    loop, and a frozen dataclass sets each field through ``object.__setattr__`` (issue 17).
    ``numbers`` are the request's rows as the contract decoded them (plain numeric records
    only; columns named ``order``), which the writer scores against the reference directly.
    """

    __slots__ = (
        "given",
        "latency_ms",
        "model",
        "name",
        "numbers",
        "order",
        "records",
        "request_id",
        "scored",
        "ts_ms",
        "variant",
    )

    def __init__(
        self,
        name: str,
        model: ServedModel,
        variant: str,
        scored: Scored,
        given: dict[str, list[Any]] | None,
        request_id: str,
        latency_ms: float,
        ts_ms: int,
        records: Any = None,
        inputs: ModelInput | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.variant = variant
        self.scored = scored
        self.given = given  # the request's columns, when the loop made them
        self.request_id = request_id
        self.latency_ms = latency_ms
        self.ts_ms = ts_ms
        self.records = records  # else the plain records they are made from, in the writer
        self.numbers = None if inputs is None else inputs.numbers
        self.order = None if inputs is None else inputs.number_names

    @property
    def columns(self) -> dict[str, list[Any]]:
        """The request's inputs as columns (made from the records on first use)."""
        if self.given is not None:
            return self.given
        columns = records_to_columns(self.records)
        self.given = columns
        return columns

    def inputs_json(self) -> str:
        """The request's inputs as JSON columns: ``orjson.dumps(self.columns)``.

        A one-record request whose feature names need no escaping and hold no ``:`` or ``,``
        (checked once per name set) is rewritten from the record's own JSON, which gives the
        same text without one list per feature (issue 17; tests/unit/serve/test_direct.py).
        """
        records = self.records
        if self.given is None and self.order is not None and len(records) == 1:
            record = records[0]
            if _plain_names(self.order):
                text = orjson.dumps(record).replace(b'":', b'":[').replace(b',"', b'],"')
                return (text[:-1] + b"]}").decode()
        return orjson.dumps(self.columns).decode()


_PLAIN_NAMES: dict[tuple[str, ...], bool] = {}


def _plain_names(names: tuple[str, ...]) -> bool:
    """Whether JSON writes every name as itself, and none holds a ``:`` or a ``,``."""
    plain = _PLAIN_NAMES.get(names)
    if plain is None:
        plain = all(not any(c in '"\\:,' or c < " " or c == "\x7f" for c in name) for name in names)
        if len(_PLAIN_NAMES) < 1024:
            _PLAIN_NAMES[names] = plain
    return plain


class _AnswerRows:
    """The prediction log's builder of answer rows: anomaly scores per model, in one pass."""

    def build(self, payloads: Sequence[Any]) -> list[PredictionRecord]:
        """One row per ``_Answered``, in order."""
        by_model: dict[int, list[int]] = {}
        for i, answered in enumerate(payloads):
            by_model.setdefault(id(answered.model), []).append(i)
        scores: list[float | None] = [None] * len(payloads)
        for indices in by_model.values():
            model = payloads[indices[0]].model
            found = _decoded_scores(model, [payloads[i] for i in indices])
            for i, score in zip(indices, found, strict=True):
                scores[i] = score
        return [_record(a, score) for a, score in zip(payloads, scores, strict=True)]


def _decoded_scores(model: ServedModel, answers: list[_Answered]) -> list[float | None]:
    """Anomaly scores of one model's answers: decoded rows in one pass, the rest by columns."""
    scores: list[float | None] = [None] * len(answers)
    rest = list(range(len(answers)))
    blocks: list[np.ndarray[Any, Any]] = []
    same: list[int] = []
    order = next((a.order for a in answers if a.order is not None), None)
    for i, a in enumerate(answers):
        if a.numbers is not None and a.order == order:
            same.append(i)
            blocks.append(a.numbers)
    if order is not None:
        from shipyard.monitor.anomaly import scorer_for

        found: list[float] | None = None
        try:
            scorer = scorer_for(model.bundle)
            if scorer is None:
                return scores
            found = scorer.score_numbers(blocks, order)
        except Exception:  # the general path below decides (and logs)
            found = None
        if found is not None:
            for i, score in zip(same, found, strict=True):
                scores[i] = score
            taken = set(same)
            rest = [i for i in rest if i not in taken]
    if rest:
        found_rest = anomaly_scores(model, [answers[i].columns for i in rest])
        for i, maybe in zip(rest, found_rest, strict=True):
            scores[i] = maybe
    return scores


_ROWS = _AnswerRows()


def _record(answered: _Answered, score: float | None) -> PredictionRecord:
    scored = answered.scored
    first = scored.labels[0] if scored.labels else None
    probability = None
    if scored.probabilities:
        probability = float(scored.probabilities[0][-1])
    return PredictionRecord(
        request_id=answered.request_id,
        model=answered.name,
        version=answered.model.version,
        variant=answered.variant,
        ts_ms=answered.ts_ms,
        latency_ms=answered.latency_ms,
        inputs_json=answered.inputs_json(),
        outputs_json=orjson.dumps(
            {"predictions": scored.labels, "probabilities": scored.probabilities}
        ).decode(),
        prediction=None if first is None else str(first),
        probability=probability,
        status=200,
        anomaly_score=score,
    )


def log_answer(
    log: PredictionLog,
    name: str,
    answer: Answer,
    columns: dict[str, list[Any]] | None,
    request_id: str,
    seconds: float,
    *,
    records: Any = None,
    inputs: ModelInput | None = None,
) -> None:
    """Enqueue the answer's row, and the shadow's row once the shadow finishes.

    The inputs are ``columns``, or, when None, the plain ``records`` they come from: the
    writer turns those into columns. A queued record then holds two containers for the
    collector to walk instead of one list per feature: with thousands queued, the full
    collections after ``gc.freeze`` walked them all and stalled the loop (issue 17).
    """
    answered = _Answered(
        name,
        answer.model,
        answer.alias,
        answer.scored,
        columns,
        request_id,
        seconds * 1000,
        log.now_ms(),  # the log's clock: tests can inject one
        records,
        inputs,
    )
    log.record(LazyRecord(request_id, answer.alias, answered, _ROWS))
    if answer.shadow is None:
        return
    started = time.perf_counter()

    def _shadow_done(task: asyncio.Task[tuple[ServedModel, str, Scored | None]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        model, alias, scored = task.result()
        if scored is None:
            return
        variant = f"shadow:{alias}"
        latency_ms = (time.perf_counter() - started) * 1000
        shadow = _Answered(
            name,
            model,
            variant,
            scored,
            columns,
            request_id,
            latency_ms,
            log.now_ms(),
            records,
            inputs,
        )
        log.record(LazyRecord(request_id, variant, shadow, _ROWS))

    answer.shadow.add_done_callback(_shadow_done)
