"""The Prometheus series of one model server, with the per-answer updates cached.

A private registry per server (several apps can share a process). Looking a labelled child up
takes a lock and a dict probe per series; an answer touches seven series, so the children of
each ``(model, variant, version)`` are looked up once and kept (``answered``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class _AnswerSeries:
    requests: Any
    latency: Any
    rows: Any
    version_requests: Any
    version_rows: Any
    version_cpu: Any


class Metrics:
    """Prometheus series of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            self._answers[key] = series
        series.requests.inc()
        series.latency.observe(seconds)
        series.rows.inc(rows)
        series.version_requests.inc()
        series.version_rows.inc(rows)
        series.version_cpu.inc(cpu_s)

    def failed(self, name: str) -> None:
        """Count a request the model failed to score."""
        self.requests.labels(name, "?", "error").inc()
