"""The consume loop: read a batch, check it, score it, commit outputs and acks, repeat.

One batch at a time, so in-flight work is bounded by the batch size: a slow model or sink slows
reading, and memory stays flat. Acknowledgement happens in the backend's commit, after the
outputs and prediction-log rows of the batch are written (``redis_backend``). ``stop()`` (the
CLI wires SIGTERM to it) lets the batch in hand finish and be acknowledged, then the loop ends;
entries read but not committed stay pending and are delivered again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from shipyard.core import faults
from shipyard.stream.backend import BrokerUnavailable, Commit, Output
from shipyard.stream.events import check_batch

if TYPE_CHECKING:
    from shipyard.stream.backend import Delivery, StreamBackend
    from shipyard.stream.config import StreamConfig
    from shipyard.stream.scoring import LoadedModel, ModelFollower
    from shipyard.stream.windows import StreamWindows

log = logging.getLogger("shipyard.stream")
MAX_PAUSE_S = 5.0  # the longest wait between tries while the broker is away


@dataclass
class ConsumerStats:
    """Counters since start, and latencies since the last ``take_latencies``."""

    events: int = 0
    outputs: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    late: int = 0
    batches: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def take_latencies(self) -> list[float]:
        """Return and forget the latencies gathered so far."""
        taken, self.latencies_ms = self.latencies_ms, []
        return taken


class StreamConsumer:
    """Scores events of one input stream with a followed model, until stopped."""

    def __init__(
        self,
        config: StreamConfig,
        backend: StreamBackend,
        follower: ModelFollower,
        *,
        log_rows: bool = True,
        clock_ms: Any = None,
        windows: StreamWindows | None = None,
    ) -> None:
        """Wire the parts; nothing is read until ``run``.

        Args:
            config: The stream section.
            backend: The broker.
            follower: The model, following its alias.
            log_rows: Build prediction-log rows (the backend queues them for the log).
            clock_ms: Epoch-ms clock for prediction-log times (tests inject one).
            windows: The project's window features (those the model reads are computed).
        """
        self.config = config
        self.backend = backend
        self.follower = follower
        self.log_rows = log_rows
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.windows = windows
        self.stats = ConsumerStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it, and end ``run`` (signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stop.is_set()

    def run(self, *, max_events: int | None = None, on_batch: Any = None) -> ConsumerStats:
        """Consume until stopped; return the counters.

        With ``max_events`` it also ends once that many were handled, or when a read finds
        the stream idle (tests and the benchmark).
        """
        self.backend.ensure_group()
        cfg = self.config
        pause_s = 0.0
        deliveries: list[Delivery] = []  # read, not yet committed
        while True:
            try:
                if not deliveries:
                    if self._stop.is_set():
                        break
                    deliveries = self.backend.read(cfg.batch_size, cfg.block_ms)
                    if not deliveries:
                        if max_events is not None:
                            break
                        continue
                # The next batch is read in the commit's round trip, unless stopping (a batch
                # read after SIGTERM would only wait in the pending list) or at max_events.
                prefetch = not self._stop.is_set() and (
                    max_events is None or self.stats.events + len(deliveries) < max_events
                )
                deliveries = self._process(deliveries, prefetch=prefetch)
            except BrokerUnavailable as e:
                # Nothing read is lost: uncommitted entries stay pending and come back, and
                # the batch in hand is scored and committed again (the commit is idempotent).
                # Wait, doubling up to MAX_PAUSE_S, then retry; a stop meanwhile ends the loop.
                pause_s = min(max(pause_s * 2, 0.1), MAX_PAUSE_S)
                log.warning("%s; retrying in %.1f s", e, pause_s)
                if self._stop.wait(pause_s):
                    break
                continue
            pause_s = 0.0
            if on_batch is not None:
                on_batch(self)
        return self.stats

    def process(self, deliveries: list[Delivery]) -> int:
        """Check, score and commit one batch; return the number of new outputs."""
        before = self.stats.outputs
        self._process(deliveries, prefetch=False)
        return self.stats.outputs - before

    def _process(self, deliveries: list[Delivery], *, prefetch: bool) -> list[Delivery]:
        """Check, score and commit one batch; return the next batch when ``prefetch``."""
        model = self.follower.current  # one read per batch: an alias swap applies between
        windows = None if self.windows is None else self.windows.needed_by(model.contract.names)
        checked = check_batch(deliveries, model.contract, self.config, windows)
        commit = Commit(dead=checked.dead, acks=[d.entry_id for d in deliveries])
        if checked.inputs is not None and checked.event_ids:
            started = time.perf_counter()
            predictions = model.predict(checked.inputs)
            latency_ms = (time.perf_counter() - started) * 1000 / len(checked.event_ids)
            commit.outputs = self._outputs(model, checked.event_ids, checked.columns, predictions)
            if self.log_rows:
                commit.log_header = orjson.dumps(
                    {
                        "model": model.name,
                        "version": model.version,
                        "variant": model.alias,
                        "ts_ms": self.clock_ms(),
                        "latency_ms": latency_ms,
                        "features": list(checked.columns),
                    }
                )
        if windows is not None and checked.windowed is not None:
            # State first: a crash before the commit redelivers the batch, and storing its
            # events again changes nothing (state is keyed by event id).
            windows.persist(checked.windowed)
            faults.hit("stream.after_window_state")
        faults.hit("stream.before_commit")
        following: list[Delivery] = []
        if prefetch:
            cfg = self.config
            fresh, following = self.backend.commit_and_read(commit, cfg.batch_size, cfg.block_ms)
        else:
            fresh = self.backend.commit(commit)
        faults.hit("stream.after_commit")
        now_ms = time.time_ns() // 1_000_000
        stats = self.stats
        stats.batches += 1
        stats.events += len(deliveries)
        stats.outputs += fresh
        stats.duplicates += len(commit.outputs) - fresh
        stats.dead_letters += len(checked.dead) - checked.late
        stats.late += checked.late
        stats.latencies_ms.extend(now_ms - d.broker_ms for d in checked.deliveries)
        return following

    def _outputs(
        self,
        model: LoadedModel,
        event_ids: list[str],
        columns: dict[str, list[Any]],
        predictions: Any,
    ) -> list[Output]:
        labels = np.asarray(predictions.labels).tolist()
        probas = None if predictions.proba is None else np.asarray(predictions.proba).tolist()
        names = list(columns)
        values = list(zip(*(columns[name] for name in names), strict=True))
        outputs = []
        for i, event_id in enumerate(event_ids):
            label = labels[i]
            proba = None if probas is None else probas[i]
            probability = None if proba is None else proba[-1]
            body = orjson.dumps(
                {
                    "prediction": label,
                    "probability": probability,
                    "model": model.name,
                    "version": model.version,
                }
            )
            row = None
            if self.log_rows:
                # Compact: [id, feature values, label, probabilities]; what every row of the
                # batch shares is in the commit's log header, and log_outbox.log_frame builds
                # the prediction-log columns from both.
                row = orjson.dumps([event_id, values[i], label, proba])
            outputs.append(Output(event_id, body, row))
        return outputs
