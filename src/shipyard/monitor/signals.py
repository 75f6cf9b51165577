"""One shape for everything a monitor measures, so one alert engine can judge all of it.

Drift statistics, rolling performance metrics, concept-drift detectors, input and service
anomalies and budget use are different computations, but an alert rule only needs to know
*what* was measured (``kind``, ``statistic``, ``subject``), *over which window*, and the value.
Each monitor turns its results into ``Observation`` rows; the alert rules match on
``(kind, statistic, subject)`` and compare ``value`` with their threshold. Observations are
also what reports plot over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ObservationKind = Literal["drift", "performance", "concept", "anomaly", "service", "budget"]


@dataclass(frozen=True)
class Observation:
    """One measured value for one model over one window.

    Attributes:
        model: Registered model name (or project/experiment name for budgets).
        version: Model version the window's rows were served by; None when mixed or n/a.
        kind: Family of monitor that produced it.
        statistic: What was computed: ``psi``, ``ks``, ``wasserstein``, ``chi2``,
            ``jensen_shannon``, ``missing_rate``, ``out_of_range_rate``, ``accuracy``,
            ``roc_auc``, ``adwin``, ``page_hinkley``, ``latency_p99_ms``, ...
        subject: Feature, metric or series it is about (``__prediction__`` for the model's
            output distribution, ``*`` when it is about the whole model).
        value: The measured value (for detectors: 1.0 when they fired, else 0.0).
        window_start_ms: Start of the window (inclusive), epoch milliseconds.
        window_end_ms: End of the window (exclusive), epoch milliseconds.
        threshold: The monitor's own default threshold for this statistic, if it has one.
        breached: Whether ``value`` crossed the monitor's default threshold.
        variant: Serving variant (``primary``, ``canary``, ``shadow:<alias>``) or None.
        detail: Extra numbers for reports (p-value, sample sizes, interval bounds...).
    """

    model: str
    version: int | None
    kind: ObservationKind
    statistic: str
    subject: str
    value: float
    window_start_ms: int
    window_end_ms: int
    threshold: float | None = None
    breached: bool = False
    variant: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
