"""Thresholds of the drift check: one default per statistic, overridable per feature.

Defaults follow common practice: PSI 0.2 (0.1-0.2 "watch", above 0.2 "act"), Jensen-Shannon
distance 0.1 and Wasserstein 0.1 reference standard deviations (Evidently's defaults for its
distance tests), missing rate 5 points above training, 5% of values outside the training
range. The KS and chi-square tests are judged by p-value at ``alpha`` for the whole window,
Bonferroni-corrected over the number of tests, because with 25 features and no correction one
window in five would raise a false alarm at ``alpha = 0.01``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping

_STRICT = ConfigDict(extra="forbid", frozen=True)

STATISTIC_FIELDS = {
    "psi": "psi",
    "wasserstein": "wasserstein",
    "jensen_shannon": "jensen_shannon",
    "missing_rate": "missing_increase",
    "out_of_range_rate": "out_of_range",
}
"""Statistic name (as in Observations) to the config field that holds its threshold."""


class FeatureThresholds(BaseModel):
    """Per-feature overrides of ``DriftConfig``; unset fields keep the defaults."""

    model_config = _STRICT
    psi: float | None = Field(default=None, gt=0)
    wasserstein: float | None = Field(default=None, gt=0)
    jensen_shannon: float | None = Field(default=None, gt=0, le=1)
    missing_increase: float | None = Field(default=None, ge=0)
    out_of_range: float | None = Field(default=None, ge=0, le=1)
    skip: bool = False


class DriftConfig(BaseModel):
    """Thresholds of the drift check.

    Attributes:
        psi: PSI above this is drift (0.1-0.2 is the usual "watch", above 0.2 "act").
        wasserstein: Wasserstein distance above this many reference standard deviations.
        jensen_shannon: Jensen-Shannon distance (base 2, in [0, 1]) above this.
        missing_increase: Missing rate above the training one by more than this.
        out_of_range: Share of present values outside the training range/domain above this.
        alpha: Family-wise significance level of the KS and chi-square tests of one window.
        correction: ``bonferroni`` (each test at ``alpha / tests``) or ``none``.
        min_rows: Fewer present values than this: measured, not judged (too noisy).
        wasserstein_min_rows: Fewer present values than this: Wasserstein measured, not
            judged. Its sampling noise alone is near 0.1 standard deviations at a few hundred
            rows (Evidently, too, uses it only above 1,000); KS covers small windows.
        features: Per-feature overrides, by feature name (``__prediction__`` too).
    """

    model_config = _STRICT
    psi: float = Field(default=0.2, gt=0)
    wasserstein: float = Field(default=0.1, gt=0)
    jensen_shannon: float = Field(default=0.1, gt=0, le=1)
    missing_increase: float = Field(default=0.05, ge=0)
    out_of_range: float = Field(default=0.05, ge=0, le=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    correction: Literal["bonferroni", "none"] = "bonferroni"
    min_rows: int = Field(default=100, ge=1)
    wasserstein_min_rows: int = Field(default=1000, ge=1)
    features: dict[str, FeatureThresholds] = Field(default_factory=dict)

    def limit(self, feature: str, name: str) -> float:
        """The threshold ``name`` for ``feature``: its override, else the default."""
        override = self.features.get(feature)
        value = getattr(override, name, None) if override is not None else None
        return float(getattr(self, name) if value is None else value)

    def skips(self, feature: str) -> bool:
        """Whether ``feature`` is left out of the check."""
        override = self.features.get(feature)
        return override is not None and override.skip

    @classmethod
    def from_thresholds(
        cls, thresholds: Mapping[str, Mapping[str, float]], **defaults: object
    ) -> DriftConfig:
        """Build a config from ``{statistic: {"*": default, feature: value}}`` (shipyard.yaml).

        Statistic names are those of the observations (``psi``, ``wasserstein``,
        ``jensen_shannon``, ``missing_rate``, ``out_of_range_rate``); ``missing_rate`` sets the
        allowed increase over the training rate. Other keyword arguments set fields directly.

        Raises:
            InvalidArgument: An unknown statistic or a value out of range.
        """
        unknown = sorted(set(thresholds) - set(STATISTIC_FIELDS))
        if unknown:
            raise InvalidArgument(
                f"no drift threshold for statistic(s) {', '.join(unknown)}; "
                f"use one of: {', '.join(STATISTIC_FIELDS)}"
            )
        fields: dict[str, object] = dict(defaults)
        features: dict[str, dict[str, float]] = {}
        for statistic, values in thresholds.items():
            name = STATISTIC_FIELDS[statistic]
            for subject, value in values.items():
                if subject == "*":
                    fields[name] = value
                else:
                    features.setdefault(subject, {})[name] = value
        try:
            return cls.model_validate({**fields, "features": features})
        except ValidationError as e:
            raise InvalidArgument(f"invalid drift thresholds: {e}") from e
