"""Trade-offs: quality against training cost, serving cost and latency of an experiment's models.

A candidate is one tuning trial (a child run tagged ``kind=trial``): its cross-validated score
``cv_<metric>``, its training cost (the trial run's resources priced by ``run_cost``), its
prediction latency per row ``latency_us`` (measured by tuning on a validation batch) and,
from that latency, an estimated serving cost per 1,000 predictions by the ``cpu_share`` rule:
``latency_us / 1e6 * 1000 / 3600 * hourly / vcpus`` (one busy core per prediction, which is
what the batch predict of a scikit-learn pipeline uses). Measured serving counters replace this
estimate once a version is served (``cost.meters``).

``advise`` names the cheapest candidate whose score is within ``tolerance`` of the best one, and
what the last points of quality cost: the best candidate's extra cost over it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.cost.attribution import ZERO, cpu_share_usd, priced, run_cost

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shipyard.cost.catalog import ActiveInstance, InstanceType
    from shipyard.store.entities import Run

CostBasis = Literal["serving", "training"]
_TRIAL_NUMBER = re.compile(r"^trial-(\d+)$")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One trained candidate with its quality and what it costs."""

    run_id: str
    trial: int
    estimator: str
    score: float
    training_usd: Decimal
    per_thousand_usd: Decimal | None
    latency_us: float | None

    def cost(self, basis: CostBasis) -> Decimal:
        """The cost ``advise`` ranks by (unknown serving cost ranks last)."""
        if basis == "training":
            return self.training_usd
        return self.per_thousand_usd if self.per_thousand_usd is not None else Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class Advice:
    """The cheapest good-enough candidate, the best one, and the price of the difference."""

    best: Candidate
    chosen: Candidate
    tolerance: float
    basis: CostBasis
    score_given_up: float
    extra_usd: Decimal  # best minus chosen, on ``basis``
    extra_training_usd: Decimal
    extra_per_thousand_usd: Decimal | None

    @property
    def extra_ratio(self) -> float | None:
        """How many times the chosen candidate's cost the best one costs (None if free)."""
        chosen = self.chosen.cost(self.basis)
        if chosen == 0 or not chosen.is_finite():
            return None
        return float(self.best.cost(self.basis) / chosen)


def candidates(
    trials: Sequence[Run],
    metric: str,
    instance: InstanceType | ActiveInstance,
    rule: str = "cpu_share",
) -> list[Candidate]:
    """Build candidates from an experiment's tuning child runs (those with ``cv_<metric>``).

    Raises:
        NotFound: No run carries the ``cv_<metric>`` metric.
    """
    active = priced(instance, None)
    found = []
    for order, run in enumerate(sorted(trials, key=lambda r: (r.start_ms, r.run_id))):
        score = run.metrics.get(f"cv_{metric}")
        if score is None or run.tags.get("trial_state", "complete") != "complete":
            continue
        latency = run.metrics.get("latency_us")
        per_thousand = None
        if latency is not None:  # 1,000 predictions * latency_us microseconds = latency_us ms
            per_thousand = cpu_share_usd(latency, active.instance, active.hourly) / 1000
        match = _TRIAL_NUMBER.match(run.name)
        found.append(
            Candidate(
                run.run_id,
                int(match.group(1)) if match else order,
                run.params.get("estimator", "?"),
                float(score),
                run_cost(run.resources, active, rule).usd,
                per_thousand,
                latency,
            )
        )
    if not found:
        raise NotFound(
            f"no tuning trial carries cv_{metric}; train with tuning.child_runs on "
            "(the default) so each trial is a child run"
        )
    return sorted(found, key=lambda c: c.trial)


def _objectives(c: Candidate, greater_is_better: bool) -> tuple[Decimal, Decimal, Decimal]:
    """Smaller is better on each: negated score, training cost, cost per 1,000."""
    score = Decimal(repr(c.score))
    serving = c.per_thousand_usd if c.per_thousand_usd is not None else Decimal("Infinity")
    return (-score if greater_is_better else score, c.training_usd, serving)


def _dominates(a: Candidate, b: Candidate, greater_is_better: bool) -> bool:
    pairs = list(
        zip(_objectives(a, greater_is_better), _objectives(b, greater_is_better), strict=True)
    )
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def pareto_front(found: Sequence[Candidate], *, greater_is_better: bool = True) -> list[Candidate]:
    """Return the candidates no other beats on quality, training cost and cost per 1,000."""
    return [
        c
        for c in found
        if not any(_dominates(o, c, greater_is_better) for o in found if o is not c)
    ]


def advise(
    found: Sequence[Candidate],
    *,
    tolerance: float,
    greater_is_better: bool = True,
    basis: CostBasis = "serving",
) -> Advice:
    """Name the cheapest candidate within ``tolerance`` (absolute score) of the best.

    Raises:
        InvalidArgument: A negative tolerance, an unknown basis, or no candidates.
    """
    if tolerance < 0:
        raise InvalidArgument("the tolerance is an absolute score difference and cannot be < 0")
    if basis not in ("serving", "training"):
        raise InvalidArgument(f"cost basis must be serving or training, not {basis!r}")
    if not found:
        raise InvalidArgument("no candidates to choose from")
    sign = 1.0 if greater_is_better else -1.0
    best = max(found, key=lambda c: (sign * c.score, -c.cost(basis)))
    good = [c for c in found if sign * (best.score - c.score) <= tolerance + 1e-12]
    chosen = min(good, key=lambda c: (c.cost(basis), -sign * c.score, c.trial))
    extra_serving = None
    if best.per_thousand_usd is not None and chosen.per_thousand_usd is not None:
        extra_serving = best.per_thousand_usd - chosen.per_thousand_usd
    extra = best.cost(basis) - chosen.cost(basis) if best is not chosen else ZERO
    return Advice(
        best,
        chosen,
        tolerance,
        basis,
        abs(best.score - chosen.score),
        extra if extra.is_finite() else ZERO,
        best.training_usd - chosen.training_usd,
        extra_serving,
    )


def best_so_far(found: Sequence[Candidate], *, greater_is_better: bool = True) -> list[float]:
    """Return the best score after each trial, in trial order (diminishing returns show here)."""
    curve: list[float] = []
    for c in sorted(found, key=lambda c: c.trial):
        if not curve:
            curve.append(c.score)
        else:
            better = max if greater_is_better else min
            curve.append(better(curve[-1], c.score))
    return curve
