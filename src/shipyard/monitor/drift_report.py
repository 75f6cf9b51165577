"""What a drift check found: per-feature statistics, judged, as a table and as Observations.

The report is a frozen value: ``shipyard.monitor.drift.compute_drift`` builds it, and everything
downstream reads it in one of three shapes: the per-feature rows themselves (for code),
``to_frame()`` (a long Polars table, for the CLI and reports) and ``observations()`` (the one
shape alert rules and the observation store take, ``shipyard.monitor.signals``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from shipyard.core.errors import NotFound
from shipyard.monitor.signals import Observation

if TYPE_CHECKING:
    from collections.abc import Mapping

PREDICTION = "__prediction__"
"""Subject of the model's output: its labels (classification) or values (regression)."""
PROBABILITY = "__probability__"
"""Subject of a binary model's positive-class probability."""

FeatureStatus = Literal["ok", "absent", "all_missing", "few_rows"]

_FRAME_SCHEMA: dict[str, pl.DataType] = {
    "feature": pl.String(),
    "kind": pl.String(),
    "status": pl.String(),
    "statistic": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "p_value": pl.Float64(),
    "breached": pl.Boolean(),
    "rows": pl.Int64(),
    "present": pl.Int64(),
}


@dataclass(frozen=True)
class StatisticResult:
    """One statistic of one feature, with the verdict of its threshold.

    Attributes:
        statistic: ``psi``, ``ks``, ``wasserstein``, ``chi2``, ``jensen_shannon``,
            ``missing_rate`` or ``out_of_range_rate``.
        value: The statistic itself (for ``ks`` and ``chi2`` the test statistic, not the
            p-value; the p-value decides their verdict).
        threshold: The value above which it counts as drift; None for the tests (judged by
            ``p_value`` against the corrected alpha) and when not judged.
        breached: Whether it counts as drift in this window.
        p_value: For ``ks`` and ``chi2``: the test's p-value.
        detail: Extra numbers (corrected alpha, degrees of freedom, KS method, ...).
    """

    statistic: str
    value: float
    threshold: float | None
    breached: bool
    p_value: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureDrift:
    """Everything measured about one feature (or the model's output) in one window.

    Attributes:
        feature: Column name, or ``__prediction__`` / ``__probability__``.
        kind: ``numeric`` or ``categorical``, as the reference profile says.
        status: ``ok``; ``absent`` (no such column in the window: counted as all missing);
            ``all_missing``; ``few_rows`` (fewer present values than ``min_rows``: measured,
            not judged).
        rows: Rows in the window.
        present: Rows where the feature had a value (not null, not NaN).
        statistics: What was measured, in a fixed order.
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    status: FeatureStatus
    rows: int
    present: int
    statistics: tuple[StatisticResult, ...]

    @property
    def drifted(self) -> bool:
        """Whether any statistic of this feature crossed its threshold."""
        return any(s.breached for s in self.statistics)

    def get(self, statistic: str) -> StatisticResult | None:
        """Return the named statistic, or None when it was not measured."""
        return next((s for s in self.statistics if s.statistic == statistic), None)


@dataclass(frozen=True)
class DriftReport:
    """Drift of one model's inputs and outputs over one window, against its training data.

    Attributes:
        model: Registered model name.
        version: The version that served every row of the window; None when mixed or unknown.
        variant: Serving variant the rows came from, if one.
        window_start_ms: Window start (inclusive), epoch milliseconds.
        window_end_ms: Window end (exclusive), epoch milliseconds.
        rows: Rows in the window.
        features: One entry per reference feature, model inputs first, then the output.
        tests: Hypothesis tests run (KS and chi-square), the family of the correction.
        correction: ``bonferroni`` or ``none``.
        alpha: Family-wise significance level asked for.
        alpha_per_test: The level each test was judged at (``alpha / tests`` under Bonferroni).
        notes: What the reader should know (skipped checks, missing reference sample, ...).
    """

    model: str
    version: int | None
    variant: str | None
    window_start_ms: int
    window_end_ms: int
    rows: int
    features: tuple[FeatureDrift, ...]
    tests: int
    correction: Literal["bonferroni", "none"]
    alpha: float
    alpha_per_test: float
    notes: tuple[str, ...] = ()

    @property
    def drifted(self) -> list[str]:
        """Names of the features (and outputs) that drifted."""
        return [f.feature for f in self.features if f.drifted]

    def feature(self, name: str) -> FeatureDrift:
        """Return one feature's row.

        Raises:
            NotFound: The reference has no such feature.
        """
        for row in self.features:
            if row.feature == name:
                return row
        known = ", ".join(f.feature for f in self.features)
        raise NotFound(f"no feature {name!r} in this drift report; it has: {known}")

    @property
    def multiple_testing_note(self) -> str:
        """How many tests were run and how their p-values were judged, in one sentence."""
        if self.tests == 0:
            return "No hypothesis tests were run in this window (no reference sample or rows)."
        how = (
            f"Bonferroni: each judged at p < {self.alpha:g}/{self.tests} = "
            f"{self.alpha_per_test:.3g}"
            if self.correction == "bonferroni"
            else f"no correction: each judged at p < {self.alpha_per_test:g}, so about "
            f"{self.alpha * self.tests:.2g} false alarms are expected per window"
        )
        return (
            f"{self.tests} hypothesis tests (KS for numeric, chi-square for categorical) in this "
            f"window; {how}. PSI, Wasserstein, Jensen-Shannon and the rates are effect sizes "
            "judged against fixed thresholds, not tests."
        )

    def observations(self) -> list[Observation]:
        """Every finite statistic as an ``Observation`` of kind ``drift``."""
        out: list[Observation] = []
        for row in self.features:
            for s in row.statistics:
                if not math.isfinite(s.value):
                    continue
                detail: dict[str, Any] = {"rows": row.rows, "present": row.present, **s.detail}
                if s.p_value is not None:
                    detail["p_value"] = s.p_value
                out.append(
                    Observation(
                        model=self.model,
                        version=self.version,
                        kind="drift",
                        statistic=s.statistic,
                        subject=row.feature,
                        value=s.value,
                        window_start_ms=self.window_start_ms,
                        window_end_ms=self.window_end_ms,
                        threshold=s.threshold,
                        breached=s.breached,
                        variant=self.variant,
                        detail=detail,
                    )
                )
        return out

    def to_frame(self) -> pl.DataFrame:
        """One row per (feature, statistic): value, threshold, p-value, verdict and counts."""
        rows = [
            {
                "feature": f.feature,
                "kind": f.kind,
                "status": f.status,
                "statistic": s.statistic,
                "value": s.value,
                "threshold": s.threshold,
                "p_value": s.p_value,
                "breached": s.breached,
                "rows": f.rows,
                "present": f.present,
            }
            for f in self.features
            for s in f.statistics
        ]
        return pl.DataFrame(rows, schema=_FRAME_SCHEMA)
