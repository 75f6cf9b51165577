"""Attribution: resources * price, by a stated rule, for runs, experiments, models and predictions.

Two rules turn a run's metered resources (``shipyard.store.entities.Resources``) into money:

``cpu_share`` (the default)
    ``cost = cpu_seconds / 3600 * hourly_price / vcpus``. The run pays for the CPU it used, as a
    share of the instance: one CPU-hour on a 2-vCPU instance costs half its hourly price. Fair
    when many runs share a machine; it does not charge for idle time.

``whole_instance``
    ``cost = wall_seconds / 3600 * hourly_price``. The run pays for the whole instance for as
    long as it ran, busy or idle: right when a run has a machine to itself (a dedicated training
    node), and what the cloud bill shows for such machines.

``cpu_seconds`` is user + system CPU of the run's process and its reaped children, as the
tracker measured it. A parent run's counters already include child runs that ran in its process
(tuning trials are threads of the parent), so totals over many runs count *root* runs only, plus
child runs recorded on another host (see ``attributable``). Serving is priced by the same
``cpu_share`` rule from the server's per-version CPU counters: ``cost per 1,000 predictions =
cpu_seconds / predictions * 1000 / 3600 * hourly / vcpus``. Storage is ``bytes / 2**30 *
price per GB-month`` (GB here is GiB, as the clouds bill it).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from shipyard.core.errors import InvalidArgument
from shipyard.cost.catalog import ActiveInstance, InstanceType

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from shipyard.cost.catalog import PriceCatalog
    from shipyard.store.entities import Resources, Run

Rule = Literal["cpu_share", "whole_instance"]
RULES: tuple[Rule, ...] = ("cpu_share", "whole_instance")
SECONDS_PER_HOUR = Decimal(3600)
BYTES_PER_GB = Decimal(2**30)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Cost:
    """Money attributed to something, with how it was computed.

    Attributes:
        usd: The amount (in the catalog's currency; USD for the shipped one).
        rule: ``cpu_share`` or ``whole_instance``.
        seconds: The CPU seconds (cpu_share) or wall seconds (whole_instance) priced.
        hourly: The instance's hourly price that applied.
        instance: The instance type's name.
        purchase: ``on_demand``, ``spot`` or ``reserved``.
        measured: False when the resources were not recorded (the amount is then zero).
    """

    usd: Decimal
    rule: Rule
    seconds: float
    hourly: Decimal
    instance: str
    purchase: str
    measured: bool = True

    def __add__(self, other: Cost) -> Cost:
        """Sum two costs priced the same way."""
        mine, theirs = (
            (self.rule, self.instance, self.purchase),
            (other.rule, other.instance, other.purchase),
        )
        if mine != theirs:
            raise InvalidArgument("only costs priced by the same rule and instance add up")
        return Cost(
            self.usd + other.usd,
            self.rule,
            self.seconds + other.seconds,
            self.hourly,
            self.instance,
            self.purchase,
            self.measured and other.measured,
        )


def priced(instance: InstanceType | ActiveInstance, purchase: str | None) -> ActiveInstance:
    """Return ``instance`` with a purchase option (``purchase``, its own, else on_demand)."""
    if isinstance(instance, ActiveInstance):
        if purchase is None or purchase == instance.purchase:
            return instance
        instance = instance.instance
    chosen = purchase or "on_demand"
    instance.hourly(chosen)  # refuses unknown purchase options with a clear message
    return ActiveInstance(instance, chosen)  # type: ignore[arg-type]


def _check_rule(rule: str) -> Rule:
    if rule not in RULES:
        raise InvalidArgument(f"unknown cost rule {rule!r}; use one of {', '.join(RULES)}")
    return rule


def _decimal(seconds: float) -> Decimal:
    # repr() is the shortest string that round-trips, so 1.1 becomes Decimal("1.1") exactly.
    return Decimal(repr(float(seconds)))


def cpu_share_usd(cpu_seconds: float, instance: InstanceType, hourly: Decimal) -> Decimal:
    """Return ``cpu_seconds / 3600 * hourly / vcpus``."""
    return _decimal(cpu_seconds) / SECONDS_PER_HOUR * hourly / Decimal(instance.vcpus)


def whole_instance_usd(wall_seconds: float, hourly: Decimal) -> Decimal:
    """Return ``wall_seconds / 3600 * hourly``."""
    return _decimal(wall_seconds) / SECONDS_PER_HOUR * hourly


def run_cost(
    resources: Resources,
    instance: InstanceType | ActiveInstance,
    rule: str = "cpu_share",
    *,
    purchase: str | None = None,
) -> Cost:
    """Price one run's resources on ``instance``.

    Args:
        resources: What the run used (``Run.resources``).
        instance: The instance type, or the active instance with its purchase option.
        rule: ``cpu_share`` or ``whole_instance`` (see the module docstring for the formulas).
        purchase: Overrides the purchase option (default: the active one, else on_demand).

    Raises:
        InvalidArgument: Unknown rule or purchase option.
    """
    checked = _check_rule(rule)
    active = priced(instance, purchase)
    hourly = active.hourly
    if checked == "cpu_share":
        seconds = resources.cpu_seconds
        usd = ZERO if seconds is None else cpu_share_usd(seconds, active.instance, hourly)
    else:
        seconds = resources.wall_seconds
        usd = ZERO if seconds is None else whole_instance_usd(seconds, hourly)
    return Cost(
        usd,
        checked,
        seconds or 0.0,
        hourly,
        active.instance.name,
        active.purchase,
        measured=seconds is not None,
    )


def attributable(runs: Iterable[Run]) -> list[Run]:
    """Return the runs whose costs add up without counting anything twice.

    A child run that ran on its parent's host is already inside the parent's counters (same
    process, or a reaped child process), so it is left out when its parent is in ``runs``.
    """
    items = list(runs)
    by_id = {r.run_id: r for r in items}
    kept = []
    for run in items:
        parent = by_id.get(run.parent_run_id) if run.parent_run_id else None
        if parent is not None and parent.host == run.host:
            continue
        kept.append(run)
    return kept


def total_cost(
    runs: Iterable[Run],
    instance: InstanceType | ActiveInstance,
    rule: str = "cpu_share",
    *,
    purchase: str | None = None,
) -> Cost:
    """Price a set of runs (an experiment, a model's lineage), counting each CPU second once."""
    active = priced(instance, purchase)
    total = Cost(ZERO, _check_rule(rule), 0.0, active.hourly, active.instance.name, active.purchase)
    for run in attributable(runs):
        total = total + run_cost(run.resources, active, rule)
    return total


def lineage_runs(run_id: str | None, runs: Sequence[Run]) -> list[Run]:
    """Return the run ``run_id`` and all its descendants among ``runs`` (a model's training)."""
    if run_id is None:
        return []
    children: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.parent_run_id:
            children[run.parent_run_id].append(run)
    found = [r for r in runs if r.run_id == run_id]
    queue = list(found)
    while queue:
        for child in children.get(queue.pop().run_id, []):
            found.append(child)
            queue.append(child)
    return found


def group_costs(
    runs: Sequence[Run],
    instance: InstanceType | ActiveInstance,
    by: Literal["project", "experiment", "day"],
    rule: str = "cpu_share",
) -> dict[str, Cost]:
    """Price runs grouped by experiment, by UTC start day, or all together (``project``).

    Child runs are grouped with their root run, so a tuning's trials land in its experiment
    and on its start day.
    """
    by_id = {r.run_id: r for r in runs}

    def root(run: Run) -> Run:
        seen = set()
        while run.parent_run_id in by_id and run.run_id not in seen:
            seen.add(run.run_id)
            run = by_id[run.parent_run_id]
        return run

    def key(run: Run) -> str:
        if by == "project":
            return "project"
        top = root(run)
        if by == "experiment":
            return top.experiment
        return dt.datetime.fromtimestamp(top.start_ms / 1000, tz=dt.UTC).date().isoformat()

    if by not in ("project", "experiment", "day"):
        raise InvalidArgument(f"cannot group costs by {by!r}; use project, experiment or day")
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[key(run)].append(run)
    return {name: total_cost(members, instance, rule) for name, members in sorted(groups.items())}


def cost_per_thousand_predictions(
    cpu_seconds: float, predictions: int, instance: InstanceType | ActiveInstance
) -> Decimal | None:
    """Return the cpu_share cost of 1,000 predictions, or None before any prediction.

    ``cpu_seconds / predictions * 1000 / 3600 * hourly / vcpus``.
    """
    if predictions < 0 or cpu_seconds < 0:
        raise InvalidArgument("CPU seconds and predictions cannot be negative")
    if predictions == 0:
        return None
    active = priced(instance, None)
    per_prediction = cpu_share_usd(cpu_seconds, active.instance, active.hourly) / predictions
    return per_prediction * 1000


def storage_monthly_cost(size_bytes: int, tier: str, catalog: PriceCatalog) -> Decimal:
    """Return what ``size_bytes`` cost per month in storage tier ``tier`` (GB = 2**30 bytes)."""
    if size_bytes < 0:
        raise InvalidArgument("a size cannot be negative")
    return Decimal(size_bytes) / BYTES_PER_GB * catalog.tier(tier).per_gb_month


def egress_cost(size_bytes: int, catalog: PriceCatalog) -> Decimal:
    """Return what sending ``size_bytes`` out of the cloud costs."""
    if size_bytes < 0:
        raise InvalidArgument("a size cannot be negative")
    return Decimal(size_bytes) / BYTES_PER_GB * catalog.egress_per_gb
