"""Judging measured drift: thresholds and p-values turn numbers into breached or not.

``shipyard.monitor.drift`` measures (``drift_stats`` kernels over the window's columns); this
module turns each feature's numbers into ``StatisticResult`` rows against ``DriftConfig``: the
effect sizes (PSI, Wasserstein, Jensen-Shannon, rates) against fixed thresholds, the tests (KS,
chi-square) against the window's corrected alpha.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.monitor import drift_stats
from shipyard.monitor.drift_report import FeatureDrift, FeatureStatus, StatisticResult

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.monitor.drift import DriftReference
    from shipyard.monitor.drift_config import DriftConfig
    from shipyard.train.reference import FeatureReference


class Judge:
    """Turn measured numbers into StatisticResults with thresholds and verdicts."""

    def __init__(self, config: DriftConfig, alpha_per_test: float, rows: int) -> None:
        self.config = config
        self.alpha_per_test = alpha_per_test
        self.rows = rows

    def _status(self, in_frame: bool, present: int) -> FeatureStatus:
        if not in_frame:
            return "absent"
        if present == 0:
            return "all_missing"
        return "few_rows" if present < self.config.min_rows else "ok"

    def _rates(
        self, name: str, ref: FeatureReference, missing: int, outside: float
    ) -> list[StatisticResult]:
        judged = self.rows >= self.config.min_rows
        rate = missing / self.rows
        limit = min(1.0, ref.null_fraction + self.config.limit(name, "missing_increase"))
        out = [
            StatisticResult(
                "missing_rate",
                rate,
                limit,
                judged and rate > limit,
                detail={"reference": ref.null_fraction},
            )
        ]
        if np.isfinite(outside):
            cut = self.config.limit(name, "out_of_range")
            out.append(StatisticResult("out_of_range_rate", outside, cut, judged and outside > cut))
        return out

    def _limit(
        self, name: str, statistic: str, value: float, judged: bool, **detail: Any
    ) -> StatisticResult:
        cut = self.config.limit(name, statistic)
        return StatisticResult(statistic, value, cut, judged and value > cut, detail=detail)

    def _test(
        self, statistic: str, value: float, pvalue: float, judged: bool, **detail: Any
    ) -> StatisticResult:
        return StatisticResult(
            statistic,
            value,
            None,
            judged and pvalue < self.alpha_per_test,
            p_value=pvalue,
            detail={"alpha": self.alpha_per_test, **detail},
        )

    def numeric(
        self,
        name: str,
        reference: DriftReference,
        column: drift_stats.NumericColumn,
        in_frame: bool,
    ) -> FeatureDrift:
        """Judge one numeric feature: PSI, KS, Wasserstein, missing and out-of-range rates."""
        ref = reference.features[name]
        present = column.rows - column.missing
        status = self._status(in_frame, present)
        judged = status == "ok" and self.rows >= self.config.min_rows
        outside = (column.below + column.above) / present if present else np.nan
        stats = self._rates(name, ref, column.missing, outside)
        if present and ref.count:
            shares = column.bin_counts / present
            value = float(drift_stats.psi(shares, np.asarray(ref.fractions)))
            stats.insert(0, self._limit(name, "psi", value, judged))
        if np.isfinite(column.ks):
            test = self._test("ks", column.ks, column.ks_pvalue, judged, method=column.ks_method)
            stats.insert(1, test)
            std = ref.std or 0.0
            cut = self.config.limit(name, "wasserstein") * std if std > 0 else None
            w = column.wasserstein
            stats.insert(
                2,
                StatisticResult(
                    "wasserstein",
                    w,
                    cut,
                    judged
                    and present >= self.config.wasserstein_min_rows
                    and cut is not None
                    and w > cut,
                    detail={"std_units": w / std if std > 0 else None},
                ),
            )
        return FeatureDrift(name, "numeric", status, column.rows, present, tuple(stats))

    def categorical(
        self, name: str, reference: DriftReference, column: Mapping[str, Any], in_frame: bool
    ) -> FeatureDrift:
        """Judge one categorical feature: PSI, chi-square, Jensen-Shannon and the rates."""
        ref = reference.features[name]
        present = int(column["present"])
        status = self._status(in_frame, present)
        judged = status == "ok" and self.rows >= self.config.min_rows
        stats = self._rates(name, ref, self.rows - present, column["unseen"])
        if "chi2" in column:
            other = float(column["counts"][-1] / present)  # window share of `__other__`
            stats[:0] = [
                self._limit(name, "psi", column["psi"], judged, other_share=other),
                self._test(
                    "chi2", column["chi2"], column["chi2_pvalue"], judged, dof=column["dof"]
                ),
                self._limit(name, "jensen_shannon", column["jensen_shannon"], judged),
            ]
        return FeatureDrift(name, "categorical", status, self.rows, present, tuple(stats))
