"""A running consumer with its helpers: the alias watcher, the log drain, the stats samples.

``StreamRunner.run`` blocks until ``stop`` (SIGTERM in ``shipyard stream run``): the batch in
hand is committed and acknowledged, the prediction-log outbox is drained, and it returns.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from shipyard.stream.consumer import ConsumerStats, StreamConsumer
from shipyard.stream.log_outbox import PredictionLogSink

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.stream.brokers import Broker
    from shipyard.stream.labels import LabelsConsumer
    from shipyard.stream.metrics import ConsumerCollector
    from shipyard.stream.scoring import ModelFollower
    from shipyard.stream.windows import StreamWindows

log = logging.getLogger("shipyard.stream")


class StreamRunner:
    """One consumer process's work, from start to a drained stop."""

    def __init__(
        self,
        backend: Broker,
        follower: ModelFollower,
        *,
        log_root: Path | None,
        drain_interval_s: float = 1.0,
        stats_interval_s: float = 1.0,
        drain_lease_ms: int = 10_000,
        windows: StreamWindows | None = None,
        labels: LabelsConsumer | None = None,
    ) -> None:
        """Wire the consumer to ``backend`` and ``follower``.

        Args:
            backend: The broker (Redis or NATS), shared with the helpers.
            follower: The model and its alias watcher.
            log_root: The prediction log folder, or None to keep no log.
            drain_interval_s: How often the outbox is moved to the log.
            stats_interval_s: How often a status sample is published.
            drain_lease_ms: How long a drainer that died blocks the next one.
            windows: The project's window features, computed for the model that reads them.
            labels: Moves labels from their own stream to the feedback store, beside.
        """
        self.backend = backend
        self.follower = follower
        self.consumer = StreamConsumer(
            backend.config, backend, follower, log_rows=log_root is not None, windows=windows
        )
        self.drain = (
            None
            if log_root is None
            else backend.log_drain(PredictionLogSink(log_root), lease_ms=drain_lease_ms)
        )
        self.labels = labels
        self.metrics: ConsumerCollector | None = None  # set by serve_metrics' caller
        self.drain_interval_s = drain_interval_s
        self.stats_interval_s = stats_interval_s
        self._stopped = threading.Event()
        self._sampled_at = time.monotonic()
        self._sampled_events = 0

    def stop(self) -> None:
        """Ask the runner to finish the batch in hand and return (signal-safe)."""
        self.consumer.stop()

    def run(self) -> ConsumerStats:
        """Consume until stopped; drain the log and publish a last sample before returning."""
        self.follower.start()
        drainer = threading.Thread(target=self._drain_loop, name="stream-log", daemon=True)
        drainer.start()
        labeller = threading.Thread(target=self._labels_loop, name="stream-labels", daemon=True)
        labeller.start()
        try:
            return self.consumer.run(on_batch=self._sample)
        finally:
            self._stopped.set()
            self.follower.stop()
            drainer.join(timeout=60)
            labeller.join(timeout=60)
            if self.drain is not None:
                try:
                    self.drain.drain_all()
                except Exception:  # the rows stay in the outbox for the next drainer
                    log.warning("draining the prediction-log outbox at stop failed", exc_info=True)
            self._sample(self.consumer, force=True)

    def _drain_loop(self) -> None:
        if self.drain is None:
            return
        while not self._stopped.wait(self.drain_interval_s):
            try:
                while self.drain.drain() > 0 and not self._stopped.is_set():
                    pass
            except Exception:  # the rows stay in the outbox; the next round retries
                log.exception("moving stream predictions to the prediction log failed")

    def _labels_loop(self) -> None:
        if self.labels is None:
            return
        try:
            self.labels.ensure_group()
        except Exception:
            log.exception("creating the labels consumer group failed; labels are not read")
            return
        while not self._stopped.is_set():
            try:
                self.labels.poll(block_ms=200)
            except Exception:  # unacknowledged labels come back on the next read
                log.exception("storing streamed labels failed")
                self._stopped.wait(1.0)

    def _sample(self, consumer: StreamConsumer, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._sampled_at < self.stats_interval_s:
            return
        events = consumer.stats.events - self._sampled_events
        latencies = consumer.stats.take_latencies()
        if self.metrics is not None:
            self.metrics.observe(latencies)
        try:
            self.backend.publish_sample(
                events=events, interval_s=now - self._sampled_at, latencies_ms=latencies
            )
        except Exception:  # a status sample is never worth failing the batch for
            log.warning("publishing the stream status sample failed", exc_info=True)
        self._sampled_at, self._sampled_events = now, consumer.stats.events
