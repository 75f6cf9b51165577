"""Prometheus metrics of one consumer process, served on ``stream run --metrics-port``.

Read at scrape time from the consumer's own counters and, for lag and pending entries, from
the broker (one round trip per scrape), so nothing is counted twice and the hot loop does no
extra work. Latency quantiles come from the latencies gathered since the previous scrape.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shipyard.stream.consumer import StreamConsumer


class ConsumerCollector:
    """A prometheus-client collector over a running consumer."""

    def __init__(self, consumer: StreamConsumer) -> None:
        self.consumer = consumer
        self._lock = threading.Lock()
        self._latencies: list[float] = []

    def observe(self, latencies_ms: list[float]) -> None:
        """Keep latencies for the next scrape (the runner hands them over each sample)."""
        with self._lock:
            self._latencies.extend(latencies_ms[-10_000:])
            del self._latencies[:-10_000]

    def collect(self) -> Iterator[Any]:
        """One scrape's metrics."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.consumer.stats
        labels = ["input", "group"]
        values = [self.consumer.config.input, self.consumer.config.group]
        for name, value, what in (
            ("events", stats.events, "events read"),
            ("predictions", stats.outputs, "predictions published (new event ids)"),
            ("duplicates", stats.duplicates, "events whose id was already scored"),
            ("dead_letters", stats.dead_letters, "events sent to the dead letters"),
            ("late_events", stats.late, "events behind the watermark, set aside"),
        ):
            family = CounterMetricFamily(f"shipyard_stream_{name}", what, labels=labels)
            family.add_metric(values, value)
            yield family
        try:
            group = self.consumer.backend.stats()
        except Exception:  # the broker is away: the counters above still tell the story
            group = None
        if group is not None:
            for name, value, what in (
                ("lag", group.lag or 0, "entries of the stream not yet read by the group"),
                ("pending", group.pending, "entries read but not acknowledged"),
            ):
                gauge = GaugeMetricFamily(f"shipyard_stream_{name}", what, labels=labels)
                gauge.add_metric(values, value)
                yield gauge
        with self._lock:
            taken, self._latencies = self._latencies, []
        if taken:
            gauge = GaugeMetricFamily(
                "shipyard_stream_latency_ms",
                "event-to-prediction latency since the last scrape (broker receipt to commit)",
                labels=[*labels, "quantile"],
            )
            for q in (0.5, 0.99):
                gauge.add_metric([*values, str(q)], float(np.quantile(taken, q)))
            yield gauge


def serve_metrics(
    consumer: StreamConsumer, port: int, host: str = "127.0.0.1"
) -> ConsumerCollector:
    """Start the /metrics HTTP endpoint in a daemon thread; return its collector."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    collector = ConsumerCollector(consumer)
    registry.register(collector)
    start_http_server(port, addr=host, registry=registry)
    return collector
