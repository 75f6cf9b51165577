"""The Prometheus series of one model server, with the per-answer updates batched.

A private registry per server (several apps can share a process). An answer touches six
series, and each update takes a lock (issue 17: a tenth of the serving loop's time). So
``answered`` only adds to plain per-``(model, variant, version)`` totals and keeps the
latency; the series are brought up to date from those whenever the registry is collected
(a collector registered first flushes them), so every exposition is exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class _AnswerSeries:
    requests: Any
    latency: Any
    rows: Any
    version_requests: Any
    version_rows: Any
    version_cpu: Any
    pending: list[Any] = field(default_factory=lambda: [0, 0, 0.0, []])  # n, rows, cpu, latencies


#: Answers kept per series before they are added to it without waiting for a scrape.
_MAX_PENDING = 4096


class _Flusher:
    """A collector of nothing that brings the batched series up to date when collected."""

    def __init__(self, flush: Any) -> None:
        self._flush = flush

    def describe(self) -> list[Any]:
        """No series of its own."""
        return []

    def collect(self) -> list[Any]:
        """Flush, then report nothing (the real series follow it in the registry)."""
        self._flush()
        return []


class Metrics:
    """Prometheus series of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Flusher(self.flush))  # first: collected before the series
        self._lock = threading.Lock()
        self.requests = Counter(
            "shipyard_requests",
            "Answered prediction requests",
            ["model", "variant", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shipyard_request_seconds",
            "Prediction request latency",
            ["model", "variant"],
            registry=self.registry,
        )
        self.rows = Counter(
            "shipyard_rows", "Rows scored", ["model", "variant"], registry=self.registry
        )
        self.log_depth = Gauge(
            "shipyard_prediction_log_queue_depth",
            "Records waiting to be written",
            registry=self.registry,
        )
        self.log_dropped = Gauge(
            "shipyard_prediction_log_dropped",
            "Records dropped by the overflow policy",
            registry=self.registry,
        )
        self.store_degraded = Gauge(
            "shipyard_store_degraded",
            "1 while the metadata store is unreachable (serving the loaded models)",
            registry=self.registry,
        )
        self.store_failures = Gauge(
            "shipyard_store_failures", "Store calls that failed", registry=self.registry
        )
        self.stale_identities = Gauge(
            "shipyard_stale_identities",
            "Requests let in on a token checked before a store outage",
            registry=self.registry,
        )
        self.swaps = Gauge(
            "shipyard_model_swaps", "Hot swaps after alias moves", registry=self.registry
        )
        # Cost meters (docs/cost.md): per registry version and variant, read by `shipyard cost`.
        version_labels = ["model", "version", "variant"]
        self.version_requests = Counter(
            "shipyard_version_requests", "Answered requests", version_labels, registry=self.registry
        )
        self.version_rows = Counter(
            "shipyard_version_rows", "Predictions made", version_labels, registry=self.registry
        )
        self.version_cpu = Counter(
            "shipyard_version_cpu_seconds",
            "Model CPU time (worker thread, split across each batch by rows)",
            version_labels,
            registry=self.registry,
        )
        self._answers: dict[tuple[str, str, int], _AnswerSeries] = {}

    def answered(
        self, name: str, variant: str, version: int, *, rows: int, seconds: float, cpu_s: float
    ) -> None:
        """Count one answered request of ``rows`` rows that took ``seconds``."""
        key = (name, variant, version)
        series = self._answers.get(key)
        if series is None:
            labels = (name, str(version), variant)
            series = _AnswerSeries(
                self.requests.labels(name, variant, "ok"),
                self.latency.labels(name, variant),
                self.rows.labels(name, variant),
                self.version_requests.labels(*labels),
                self.version_rows.labels(*labels),
                self.version_cpu.labels(*labels),
            )
            with self._lock:
                self._answers[key] = series
        with self._lock:
            pending = series.pending
            pending[0] += 1
            pending[1] += rows
            pending[2] += cpu_s
            pending[3].append(seconds)
            full = len(pending[3]) >= _MAX_PENDING
        if full:  # nobody scraped for a while: keep memory bounded
            self.flush()

    def flush(self) -> None:
        """Add the answers counted since the last flush to the Prometheus series."""
        with self._lock:
            taken = []
            for series in self._answers.values():
                n, rows, cpu_s, latencies = series.pending
                if n:
                    taken.append((series, n, rows, cpu_s, latencies))
                    series.pending = [0, 0, 0.0, []]
        for series, n, rows, cpu_s, latencies in taken:
            series.requests.inc(n)
            for seconds in latencies:
                series.latency.observe(seconds)
            series.rows.inc(rows)
            series.version_requests.inc(n)
            series.version_rows.inc(rows)
            series.version_cpu.inc(cpu_s)

    def failed(self, name: str) -> None:
        """Count a request the model failed to score."""
        self.requests.labels(name, "?", "error").inc()
