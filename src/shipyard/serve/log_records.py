"""What the prediction log holds: one record per answer, or a lazy one the writer completes.

Apart from the writer (``prediction_log``) because the serving path builds these on every
request and the writer's queueing and file handling are another job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from shipyard.monitor.logfiles import SCHEMA

if TYPE_CHECKING:
    from collections.abc import Sequence


class PredictionRecord(NamedTuple):
    """One answered request (or one shadow answer, variant ``shadow:<alias>``).

    A named tuple in the order of the log's ``SCHEMA``: the writer makes one per answer and
    turns a batch into columns with one ``zip`` (issue 17).
    """

    request_id: str
    model: str
    version: int
    variant: str
    ts_ms: int
    latency_ms: float
    inputs_json: str
    outputs_json: str
    prediction: str | None
    probability: float | None
    status: int = 200
    anomaly_score: float | None = None


assert PredictionRecord._fields == tuple(SCHEMA), "PredictionRecord must follow SCHEMA's order"


class RecordBuilder(Protocol):
    """Turns the payloads of lazy records into rows, a batch at a time (the writer calls it)."""

    def build(self, payloads: Sequence[Any]) -> list[PredictionRecord]:
        """One record per payload, in order."""


class LazyRecord(NamedTuple):
    """A record whose costly fields (JSON text, anomaly score) the writer thread fills in.

    The serving loop knows the key and the time at once; serializing the inputs and scoring
    them against the training reference can wait for the writer, which builds a whole batch
    in one call of ``builder`` while the loop answers requests (issue 17). A payload the
    builder fails on is dropped and counted like a malformed record. A named tuple: one is
    made per answer on the serving loop, and a frozen dataclass costs several times more.
    """

    request_id: str
    variant: str
    payload: Any
    builder: RecordBuilder
