"""What a load test found: counts, throughput, latency percentiles and a histogram, stored as a run.

A report is plain data (it crosses a process boundary and is stored as ``report.json``), built
once from the raw samples by ``summarize``. Percentiles are NumPy's (linear interpolation) over
every successful response's latency; the histogram uses log-spaced bins, five per decade on
fixed decade edges (1, 1.58, 2.51, 3.98, 6.31, 10 ms, ...), so reports of different runs line
up bin for bin. ``save_load_report`` records a report as a run in the experiment ``loadtests``
(parameters = the configuration, metrics = throughput, percentiles and errors, artifact
``report.json``), where right-sizing finds it. URLs are stored without credentials or query.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.track.workspace import Workspace

EXPERIMENT = "loadtests"
BINS_PER_DECADE = 5
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class LatencySummary:
    """Latency of successful responses in milliseconds (all None when there were none)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None
    min: float | None = None


@dataclass(frozen=True)
class Histogram:
    """Counts of latencies per bin: ``counts[i]`` falls in ``[edges_ms[i], edges_ms[i + 1])``."""

    edges_ms: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LoadReport:
    """The outcome of one load test.

    Attributes:
        requests: Requests started in the measured window (after warm-up) and finished.
        ok: Those answered with a 2xx status.
        errors: The others: another status, or no response (timeout, refused, reset).
        errors_by_kind: ``"status 500"`` or the exception name (``"ReadTimeout"``) -> count.
        status_counts: HTTP status (as text) -> count, errors included.
        missed_sends: Open loop only: sends skipped because ``max_in_flight`` were pending.
        late_sends: Open loop only: sends made more than 10 ms after their scheduled time
            (the generator fell behind; the server saw a burstier load than asked for).
        throughput_rps: ``requests`` per second of measured wall time.
        duration_s: Measured wall time: from the window's start to the last finish.
        latency_ms: Percentiles, mean, min and max over successful responses.
        histogram: Latencies of successful responses, log-spaced bins.
        config: How the load was generated (URL without credentials, mode, rate...).
    """

    requests: int
    ok: int
    errors: int
    errors_by_kind: dict[str, int]
    status_counts: dict[str, int]
    missed_sends: int
    late_sends: int
    throughput_rps: float
    duration_s: float
    latency_ms: LatencySummary
    histogram: Histogram
    config: dict[str, Any]

    @property
    def error_rate(self) -> float:
        """Share of measured requests that failed (0 when there were none)."""
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (``from_dict`` reads it back)."""
        data = asdict(self)
        data["error_rate"] = self.error_rate
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadReport:
        """Rebuild a report from ``to_dict`` output (e.g. a stored ``report.json``)."""
        fields = {k: v for k, v in data.items() if k != "error_rate"}
        fields["latency_ms"] = LatencySummary(**fields["latency_ms"])
        fields["histogram"] = Histogram(**fields["histogram"])
        return cls(**fields)

    def metrics(self) -> dict[str, float]:
        """Return the numbers worth tracking as run metrics (latencies only when measured)."""
        numbers = {
            "requests": float(self.requests),
            "errors": float(self.errors),
            "error_rate": self.error_rate,
            "throughput_rps": self.throughput_rps,
            "missed_sends": float(self.missed_sends),
            "late_sends": float(self.late_sends),
        }
        for name, value in asdict(self.latency_ms).items():
            if value is not None:
                numbers[f"latency_{name}_ms"] = float(value)
        return numbers


def summarize(
    *,
    latencies_ms: Sequence[float],
    statuses: Sequence[int | None],
    error_kinds: Sequence[str | None],
    missed_sends: int,
    late_sends: int,
    duration_s: float,
    config: Mapping[str, Any],
) -> LoadReport:
    """Build a report from one entry per measured request.

    Args:
        latencies_ms: Time from send to full response, per request.
        statuses: HTTP status per request (None when no response came).
        error_kinds: None for a success, else what went wrong.
        missed_sends: Sends skipped by the open loop.
        late_sends: Sends the open loop made late.
        duration_s: Measured wall time.
        config: The generator's configuration.
    """
    samples = np.asarray(latencies_ms, dtype=float)
    failed = np.array([kind is not None for kind in error_kinds], dtype=bool)
    good = samples[~failed] if samples.size else samples
    kinds: dict[str, int] = {}
    for kind in error_kinds:
        if kind is not None:
            kinds[kind] = kinds.get(kind, 0) + 1
    codes: dict[str, int] = {}
    for status in statuses:
        if status is not None:
            codes[str(status)] = codes.get(str(status), 0) + 1
    requests = int(samples.size)
    return LoadReport(
        requests=requests,
        ok=int(good.size),
        errors=int(failed.sum()),
        errors_by_kind=dict(sorted(kinds.items())),
        status_counts=dict(sorted(codes.items())),
        missed_sends=missed_sends,
        late_sends=late_sends,
        throughput_rps=requests / duration_s if duration_s > 0 else 0.0,
        duration_s=duration_s,
        latency_ms=_latency_summary(good),
        histogram=log_histogram(good),
        config=dict(config),
    )


def _latency_summary(samples: np.ndarray) -> LatencySummary:
    if samples.size == 0:
        return LatencySummary()
    p50, p95, p99 = (float(v) for v in np.percentile(samples, PERCENTILES))
    return LatencySummary(
        p50=p50,
        p95=p95,
        p99=p99,
        max=float(samples.max()),
        mean=float(samples.mean()),
        min=float(samples.min()),
    )


def log_histogram(samples_ms: np.ndarray) -> Histogram:
    """Count ``samples_ms`` in log-spaced bins spanning whole decades around them."""
    samples = samples_ms[samples_ms > 0]
    if samples.size == 0:
        return Histogram()
    low = math.floor(math.log10(samples.min()))
    high = max(math.floor(math.log10(samples.max())) + 1, low + 1)
    exponents = np.linspace(low, high, (high - low) * BINS_PER_DECADE + 1)
    edges = 10.0**exponents
    counts, _ = np.histogram(samples, bins=edges)
    return Histogram(edges_ms=[float(e) for e in edges], counts=[int(c) for c in counts])


def render_histogram(histogram: Histogram, *, width: int = 40) -> str:
    """Draw the histogram as text, one line per bin, empty bins at either end left out."""
    counts = histogram.counts
    filled = [i for i, c in enumerate(counts) if c]
    if not filled:
        return "(no successful responses)"
    peak = max(counts)
    lines = []
    for i in range(filled[0], filled[-1] + 1):
        low, high = histogram.edges_ms[i], histogram.edges_ms[i + 1]
        bar = "█" * math.ceil(width * counts[i] / peak) if counts[i] else ""
        lines.append(f"{_ms(low):>8} - {_ms(high):<8} ms │{bar} {counts[i]}")
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value:.3g}"


def public_url(url: str) -> str:
    """Return ``url`` without user info and with any query replaced by ``?…`` (may hold keys)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    query = "…" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def save_load_report(workspace: Workspace, report: LoadReport, *, target: str) -> str:
    """Record ``report`` as a finished run in the ``loadtests`` experiment.

    Args:
        workspace: Where to record it.
        report: The report.
        target: What was tested (a URL or a deployment name); stored as the ``target`` tag,
            credentials and query removed.

    Returns:
        The run id.
    """
    mode = report.config.get("mode", "load")
    params = {
        k: json.dumps(v) if isinstance(v, list | dict) else v
        for k, v in report.config.items()
        if v is not None
    }
    with workspace.start_run(
        name=f"loadtest-{mode}",
        experiment=EXPERIMENT,
        params=params,
        tags={"target": public_url(target) if "://" in target else target},
    ) as run:
        run.log_metrics(report.metrics(), step=0)
        run.log_artifact(json.dumps(report.to_dict(), indent=2).encode(), name="report.json")
        return run.run_id
