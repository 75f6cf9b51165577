"""Right-sizing: the replicas and instance type that meet a serving SLO at the lowest monthly cost.

Input is one stored load test (a run of the ``loadtests`` experiment: its ``throughput_rps`` and
``latency_p99_ms`` metrics) measured on a known instance type, and an SLO: a target request rate
and a p99 latency. The method, and its assumptions, stated:

1. The load test's throughput is one replica's capacity *at that test's p99*. If that p99 is
   above the SLO's, the test does not show the server meeting the SLO at any rate, and the plan
   is refused (run a lighter load test: fewer concurrent requests).
2. Capacity scales with vCPUs across instance types (a CPU-bound server with one worker per
   vCPU): ``capacity = throughput * vcpus / tested_vcpus``. GPU instances are left out (a CPU
   load test says nothing about them).
3. Replicas run at most at ``1 - headroom`` of capacity, so a replica lost or a burst does not
   break the SLO at once: ``replicas = ceil(rps / (capacity * (1 - headroom)))``, at least
   ``min_replicas``.
4. A month is 730 hours. Serving is always on, so reserved is the cheapest safe purchase
   for the steady replicas. Spot may carry replicas beyond the first only: spot capacity can be
   taken back at any time, so the only replica, or the floor that keeps the service up, is
   never spot. (Training that checkpoints is the place for spot: a reclaimed node loses
   minutes, not the service.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.cost.catalog import InstanceType, PriceCatalog
    from shipyard.store.entities import Run

HOURS_PER_MONTH = Decimal(730)


@dataclass(frozen=True, slots=True)
class LoadTestResult:
    """What one stored load test showed."""

    run_id: str
    throughput_rps: float
    p99_ms: float
    error_rate: float

    @classmethod
    def from_run(cls, run: Run) -> LoadTestResult:
        """Read a load test run's metrics.

        Raises:
            InvalidArgument: The run is not a load test with throughput and p99 latency.
        """
        metrics = run.metrics
        missing = [k for k in ("throughput_rps", "latency_p99_ms") if k not in metrics]
        if missing:
            raise InvalidArgument(
                f"run {run.run_id[:12]} is not a load test (no {', '.join(missing)}); "
                "record one with `shipyard loadtest URL`"
            )
        return cls(
            run.run_id,
            float(metrics["throughput_rps"]),
            float(metrics["latency_p99_ms"]),
            float(metrics.get("error_rate", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """One instance type's way to meet the SLO, with the monthly cost of each purchase mix."""

    instance: str
    vcpus: int
    replicas: int
    capacity_rps: float
    on_demand_monthly: Decimal
    reserved_monthly: Decimal
    spot_mix_monthly: Decimal | None  # one reserved replica, the rest spot; None for one replica

    @property
    def recommended_monthly(self) -> Decimal:
        """The cheapest safe choice: every replica reserved (serving runs all month)."""
        return self.reserved_monthly


@dataclass(frozen=True, slots=True)
class Sizing:
    """The plans ranked by monthly cost, and the advice on purchase options."""

    target_rps: float
    target_p99_ms: float
    headroom: float
    tested_on: str
    load_test: LoadTestResult
    plans: list[Plan]
    advice: list[str]

    @property
    def best(self) -> Plan:
        """The cheapest plan."""
        return self.plans[0]


def rightsize(
    load_test: LoadTestResult,
    *,
    tested_on: InstanceType,
    catalog: PriceCatalog,
    target_rps: float,
    target_p99_ms: float,
    headroom: float = 0.3,
    min_replicas: int = 1,
) -> Sizing:
    """Find, per instance type, the replicas meeting the SLO and their monthly cost.

    Raises:
        InvalidArgument: A bad target, or a load test that does not meet the p99 target or
            failed requests (its throughput is then not a capacity).
    """
    if not (target_rps > 0 and math.isfinite(target_rps)):
        raise InvalidArgument("--rps must be a positive number of requests per second")
    if not (target_p99_ms > 0 and math.isfinite(target_p99_ms)):
        raise InvalidArgument("--p99-ms must be a positive number of milliseconds")
    if not 0 <= headroom < 1:
        raise InvalidArgument("headroom is a share of capacity kept free: 0 <= headroom < 1")
    if min_replicas < 1:
        raise InvalidArgument("at least one replica is needed")
    if load_test.p99_ms > target_p99_ms:
        raise InvalidArgument(
            f"the load test's p99 of {load_test.p99_ms:.1f} ms is above the {target_p99_ms:g} ms "
            "target, so it does not show a rate that meets the SLO; run a lighter load test "
            "(fewer concurrent requests) and size from that"
        )
    if load_test.error_rate > 0.01:
        raise InvalidArgument(
            f"{load_test.error_rate:.1%} of the load test's requests failed; its throughput is "
            "not a capacity. Fix the errors or test at a lower load"
        )
    if load_test.throughput_rps <= 0:
        raise InvalidArgument("the load test answered no requests")
    per_vcpu = load_test.throughput_rps / tested_on.vcpus
    plans = []
    for instance in catalog.instances.values():
        if instance.gpus:
            continue
        capacity = per_vcpu * instance.vcpus
        replicas = max(min_replicas, math.ceil(target_rps / (capacity * (1 - headroom))))
        hours = HOURS_PER_MONTH * replicas
        spot_mix = None
        if replicas > 1:
            spot_mix = HOURS_PER_MONTH * (
                instance.reserved_hourly + instance.spot_hourly * (replicas - 1)
            )
        plans.append(
            Plan(
                instance.name,
                instance.vcpus,
                replicas,
                capacity,
                hours * instance.on_demand_hourly,
                hours * instance.reserved_hourly,
                spot_mix,
            )
        )
    if not plans:
        raise InvalidArgument("the price catalog has no CPU instance types to size with")
    plans.sort(key=lambda p: (p.recommended_monthly, p.replicas, p.instance))
    best = plans[0]
    advice = [
        f"{best.replicas} x {best.instance}, reserved: {best.reserved_monthly:.2f}/month "
        f"(on-demand {best.on_demand_monthly:.2f}); serving runs all month, so reserve it",
    ]
    if best.spot_mix_monthly is not None:
        advice.append(
            f"1 reserved + {best.replicas - 1} spot: {best.spot_mix_monthly:.2f}/month, but the "
            "SLO then holds only while spot capacity lasts; use spot for replicas above the "
            "floor you must keep"
        )
    else:
        advice.append(
            "never put the only serving replica on spot: a reclaim takes the service down"
        )
    advice.append("train on spot when the training checkpoints; a reclaim then costs minutes")
    return Sizing(target_rps, target_p99_ms, headroom, tested_on.name, load_test, plans, advice)
