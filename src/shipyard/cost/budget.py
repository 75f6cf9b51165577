"""Budgets: limits on what a project or an experiment spends, in money or CPU-hours.

A budget is declared in the ``budget:`` section of ``shipyard.yaml``::

    budget:
      limits:
        - {name: monthly, usd: "40", period: month}
        - {name: churn-tuning, experiment: churn-train, cpu_hours: 2, thresholds: [0.5, 0.8, 1]}
      tuning: true   # tuning stops starting trials that would overrun a budget

**Spend** is computed from the runs the tracking store recorded in the budget's period (UTC
calendar month or day, or ``all``): their CPU seconds (user + system, process and children),
counting root runs only, plus child runs recorded on another host
(``shipyard.cost.attribution.attributable``), so that trials inside a training run are not
counted twice. Money is priced with the ``cpu_share`` rule on the workspace's instance type
(``cost.instance_type``, ``cost.purchase``) from the price catalog. A run still running has no
recorded resources yet and counts from the moment it ends.

**Alerts.** ``budget_status`` returns a plain ``BudgetStatus``: the fraction used and the
thresholds it has crossed. The cost package sits below the monitor package, so it cannot build
a ``shipyard.monitor.signals.Observation`` itself; an adapter in the pipeline layer maps
``BudgetStatus.as_observation_fields()`` onto one (kind ``budget``, statistic
``fraction_used``, subject the budget's name, threshold the highest crossed).

**Tuning.** ``trial_budget`` turns the tightest budget that covers an experiment into CPU
seconds left (``TrialBudget``); ``shipyard.train.tuning`` measures each trial's CPU and stops
starting trials once the next one, estimated as the most expensive trial so far, would not fit.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.core.errors import Conflict, InvalidArgument
from shipyard.cost.attribution import SECONDS_PER_HOUR, attributable, cpu_share_usd
from shipyard.cost.catalog import active_instance

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from shipyard.core.clock import Clock
    from shipyard.core.settings import Settings
    from shipyard.cost.catalog import ActiveInstance
    from shipyard.store.entities import Run
    from shipyard.store.sql import SqlStore

Unit = Literal["usd", "cpu_hours"]
Period = Literal["all", "month", "day"]
_STRICT = ConfigDict(extra="forbid", frozen=True)


class Budget(BaseModel):
    """One limit: for the whole project, or for one experiment; in USD or in CPU-hours."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    experiment: str | None = Field(None, min_length=1, max_length=250)
    usd: Decimal | None = Field(None, gt=0, allow_inf_nan=False)
    cpu_hours: float | None = Field(None, gt=0, allow_inf_nan=False)
    period: Period = "month"
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)

    @field_validator("thresholds")
    @classmethod
    def _sorted_fractions(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not (0 < t <= 10) or math.isnan(t) for t in value):
            raise ValueError("thresholds are fractions of the limit in (0, 10], e.g. [0.5, 1]")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        if (self.usd is None) == (self.cpu_hours is None):
            raise ValueError(f"budget {self.name!r} needs exactly one of usd or cpu_hours")
        return self

    @property
    def unit(self) -> Unit:
        """``usd`` or ``cpu_hours``."""
        return "usd" if self.usd is not None else "cpu_hours"

    @property
    def limit(self) -> Decimal:
        """The limit in ``unit``."""
        return self.usd if self.usd is not None else Decimal(repr(self.cpu_hours))

    @property
    def scope(self) -> str:
        """``project`` or ``experiment:<name>``."""
        return "project" if self.experiment is None else f"experiment:{self.experiment}"

    def covers(self, experiment: str) -> bool:
        """Tell whether runs of ``experiment`` count against this budget."""
        return self.experiment is None or self.experiment == experiment


class BudgetSection(BaseModel):
    """The ``budget:`` section of ``shipyard.yaml``."""

    model_config = _STRICT
    limits: list[Budget] = Field(default_factory=list)
    tuning: bool = True

    @field_validator("limits")
    @classmethod
    def _unique_names(cls, value: list[Budget]) -> list[Budget]:
        names = [b.name for b in value]
        if len(names) != len(set(names)):
            raise ValueError(f"budget names must be unique: {sorted(names)}")
        return value

    def get(self, name: str) -> Budget:
        """Return a budget by name.

        Raises:
            InvalidArgument: No budget has that name.
        """
        for budget in self.limits:
            if budget.name == name:
                return budget
        known = ", ".join(b.name for b in self.limits) or "none declared"
        raise InvalidArgument(f"no budget {name!r} in shipyard.yaml (known: {known})")


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands; the raw material of a budget alert.

    Attributes:
        budget: The budget's name.
        scope: ``project`` or ``experiment:<name>``.
        unit: ``usd`` or ``cpu_hours``.
        limit: The limit, in ``unit``.
        spent: What the period's runs used, in ``unit``.
        fraction: ``spent / limit``.
        thresholds: The budget's alert thresholds (fractions of the limit), ascending.
        crossed: The thresholds ``fraction`` has reached, ascending.
        period: ``all``, ``month`` or ``day``.
        period_start_ms: Start of the period (None for ``all``).
        runs: How many runs were counted.
        at_ms: When the status was computed.
    """

    budget: str
    scope: str
    unit: Unit
    limit: Decimal
    spent: Decimal
    fraction: float
    thresholds: tuple[float, ...]
    crossed: tuple[float, ...]
    period: Period
    period_start_ms: int | None
    runs: int
    at_ms: int

    @property
    def remaining(self) -> Decimal:
        """What is left, in ``unit`` (never negative)."""
        return max(self.limit - self.spent, Decimal(0))

    @property
    def exceeded(self) -> bool:
        """Whether the whole limit is used."""
        return self.spent >= self.limit

    def as_observation_fields(self) -> dict[str, Any]:
        """The fields of a ``shipyard.monitor.signals.Observation``, for the pipeline's adapter."""
        highest = self.crossed[-1] if self.crossed else None
        return {
            "kind": "budget",
            "statistic": "fraction_used",
            "subject": self.budget,
            "value": self.fraction,
            "threshold": highest if highest is not None else self.thresholds[0],
            "breached": highest is not None,
            "detail": {
                "scope": self.scope,
                "unit": self.unit,
                "limit": str(self.limit),
                "spent": str(self.spent),
                "crossed": list(self.crossed),
                "period": self.period,
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for ``--json``)."""
        return {
            "budget": self.budget,
            "scope": self.scope,
            "unit": self.unit,
            "limit": str(self.limit),
            "spent": str(self.spent),
            "remaining": str(self.remaining),
            "fraction": self.fraction,
            "thresholds": list(self.thresholds),
            "crossed": list(self.crossed),
            "period": self.period,
            "period_start_ms": self.period_start_ms,
            "runs": self.runs,
        }


def period_start_ms(period: Period, now_ms: int) -> int | None:
    """Return the start (epoch ms, UTC) of the calendar period holding ``now_ms``."""
    if period == "all":
        return None
    now = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return int(start.timestamp() * 1000)


def spend(
    budget: Budget, runs: Iterable[Run], instance: ActiveInstance | None, since_ms: int | None
) -> tuple[Decimal, int]:
    """Return what ``runs`` spent against ``budget`` (in its unit) and how many counted.

    Raises:
        InvalidArgument: A money budget without an instance to price CPU with.
    """
    counted = [
        r
        for r in attributable(runs)
        if budget.covers(r.experiment) and (since_ms is None or r.start_ms >= since_ms)
    ]
    cpu_seconds = sum((r.resources.cpu_seconds or 0.0) for r in counted)
    return _in_unit(budget, cpu_seconds, instance), len(counted)


def _in_unit(budget: Budget, cpu_seconds: float, instance: ActiveInstance | None) -> Decimal:
    if budget.unit == "cpu_hours":
        return Decimal(repr(float(cpu_seconds))) / SECONDS_PER_HOUR
    if instance is None:
        raise InvalidArgument(f"budget {budget.name!r} is in usd: it needs a priced instance")
    return cpu_share_usd(cpu_seconds, instance.instance, instance.hourly)


def budget_status(
    store: SqlStore, budget: Budget, *, settings: Settings, clock: Clock
) -> BudgetStatus:
    """Compute where ``budget`` stands now, from the runs ``store`` recorded.

    Args:
        store: The metadata store holding the runs.
        budget: The budget to check.
        settings: Where the price catalog and the instance type come from (money budgets).
        clock: What "now" is, for the budget's period.

    Raises:
        NotFound: A money budget and an instance type missing from the price catalog.
    """
    now = clock.now_ms()
    since = period_start_ms(budget.period, now)
    instance = _instance_for(settings, budget)
    experiments = [budget.experiment] if budget.experiment is not None else None
    runs = store.search_runs(None, experiments=experiments, order_by=[], limit=None)
    spent, counted = spend(budget, runs, instance, since)
    fraction = float(spent / budget.limit)
    return BudgetStatus(
        budget=budget.name,
        scope=budget.scope,
        unit=budget.unit,
        limit=budget.limit,
        spent=spent,
        fraction=fraction,
        thresholds=budget.thresholds,
        crossed=tuple(t for t in budget.thresholds if fraction >= t),
        period=budget.period,
        period_start_ms=since,
        runs=counted,
        at_ms=now,
    )


@dataclass(frozen=True)
class TrialBudget:
    """CPU seconds a tuning run may still spend, from the tightest budget that covers it.

    Attributes:
        budget: The name of that budget.
        remaining_cpu_seconds: What is left of it, converted to CPU seconds.
        limit_text: The budget's limit and use, for messages (``2 cpu_hours per month, ...``).
    """

    budget: str
    remaining_cpu_seconds: float
    limit_text: str

    def stop_reason(
        self, trial_cpu_seconds: Sequence[float], *, spent_cpu_seconds: float | None = None
    ) -> str | None:
        """Return why no further trial should start, or None when the next one fits.

        The next trial is estimated as the most expensive one so far (trials of one study
        differ by their parameters, and the mean would let every other trial overrun).
        ``spent_cpu_seconds`` is what tuning has really used so far (the process's CPU since
        it began, bookkeeping and threads included); the trials' own figures are a floor.
        """
        spent = max(sum(trial_cpu_seconds), spent_cpu_seconds or 0.0)
        left = self.remaining_cpu_seconds - spent
        if not trial_cpu_seconds:
            if left > 0:
                return None
            return f"budget {self.budget} is used up before tuning started ({self.limit_text})"
        estimate = max(trial_cpu_seconds)
        if estimate <= left:
            return None
        return (
            f"budget {self.budget}: the next trial would need about {estimate:.1f} CPU-s "
            f"(the most expensive of {len(trial_cpu_seconds)} trials so far), "
            f"{max(left, 0.0):.1f} CPU-s left after {spent:.1f} CPU-s of tuning "
            f"({self.limit_text})"
        )


def trial_budget(
    store: SqlStore,
    section: BudgetSection,
    experiment: str,
    *,
    settings: Settings,
    clock: Clock,
) -> TrialBudget | None:
    """Return the tightest budget covering ``experiment`` as CPU seconds left, or None.

    None when no budget covers the experiment or budget-aware tuning is off.

    Raises:
        Conflict: A covering budget is already used up; nothing should start.
    """
    if not section.tuning:
        return None
    tightest: TrialBudget | None = None
    for budget in section.limits:
        if not budget.covers(experiment):
            continue
        status = budget_status(store, budget, settings=settings, clock=clock)
        per_cpu_second = _in_unit(budget, 1.0, _instance_for(settings, budget))
        seconds = float(status.remaining / per_cpu_second)
        text = (
            f"{status.limit} {budget.unit} per {budget.period}, {status.spent:.4f} used"
            if budget.period != "all"
            else f"{status.limit} {budget.unit}, {status.spent:.4f} used"
        )
        if status.exceeded:
            raise Conflict(
                f"budget {budget.name} is used up ({text}); raise its limit in shipyard.yaml "
                "or wait for the next period before tuning again"
            )
        if tightest is None or seconds < tightest.remaining_cpu_seconds:
            tightest = TrialBudget(budget.name, seconds, text)
    return tightest


def _instance_for(settings: Settings, budget: Budget) -> ActiveInstance | None:
    return active_instance(settings) if budget.unit == "usd" else None
