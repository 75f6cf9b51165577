"""Trade-offs and right-sizing on hand-made runs whose costs are known."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.cost.catalog import ActiveInstance, load_catalog
from shipyard.cost.rightsizing import LoadTestResult, rightsize
from shipyard.cost.tradeoffs import advise, best_so_far, candidates, pareto_front
from shipyard.store.entities import Resources
from tests.unit.cost.test_attribution import make_run

M5 = ActiveInstance(load_catalog().instance("m5.large"), "on_demand")


def trial(n: int, estimator: str, auc: float, latency_us: float, cpu_h: float, **extra: Any):
    return make_run(
        f"t{n}",
        name=f"trial-{n}",
        start_ms=1000 + n,
        params={"estimator": estimator},
        metrics={"cv_roc_auc": auc, "latency_us": latency_us},
        resources=Resources(cpu_user_seconds=3600.0 * cpu_h),
        **{"tags": {"kind": "trial"}, **extra},
    )


RUNS = [
    trial(0, "logistic", 0.950, 3.6, 0.5),
    trial(1, "lightgbm", 0.962, 36.0, 2.0),
    trial(2, "random_forest", 0.955, 72.0, 4.0),  # dominated by lightgbm
    trial(3, "logistic", 0.940, 3.6, 0.5),  # dominated by trial 0
]


def test_candidates_price_training_and_serving() -> None:
    found = candidates(RUNS, "roc_auc", M5)
    assert [c.trial for c in found] == [0, 1, 2, 3]
    lgbm = found[1]
    assert lgbm.training_usd == Decimal("0.096")  # 2 CPU-h * 0.096 / 2 vCPU
    # 36 us per prediction: 1,000 predictions = 0.036 CPU-s = 0.036/3600 h * 0.048 = $4.8e-7
    assert lgbm.per_thousand_usd == Decimal("4.8E-7")
    with pytest.raises(NotFound, match="cv_rmse"):
        candidates(RUNS, "rmse", M5)


def test_pareto_front_drops_dominated_candidates() -> None:
    front = pareto_front(candidates(RUNS, "roc_auc", M5))
    assert [c.trial for c in front] == [0, 1]
    # For an error metric (lower is better) the low scorer becomes the quality end.
    low = pareto_front(candidates(RUNS, "roc_auc", M5), greater_is_better=False)
    assert [c.trial for c in low] == [3]


def test_advise_names_the_cheapest_within_tolerance_and_the_price_of_the_rest() -> None:
    found = candidates(RUNS, "roc_auc", M5)
    tight = advise(found, tolerance=0.001)
    assert tight.chosen is tight.best
    assert tight.chosen.estimator == "lightgbm"
    assert tight.extra_usd == 0
    loose = advise(found, tolerance=0.015)
    assert (loose.best.estimator, loose.chosen.estimator) == ("lightgbm", "logistic")
    assert loose.score_given_up == pytest.approx(0.012)
    assert loose.extra_per_thousand_usd == Decimal("4.8E-7") - Decimal("4.8E-8")
    assert loose.extra_ratio == pytest.approx(10.0)
    assert loose.extra_training_usd == Decimal("0.072")
    by_training = advise(found, tolerance=0.015, basis="training")
    assert by_training.chosen.trial == 0
    with pytest.raises(InvalidArgument, match="tolerance"):
        advise(found, tolerance=-0.1)
    with pytest.raises(InvalidArgument):
        advise([], tolerance=0.1)


def test_best_so_far_is_monotone_in_trial_order() -> None:
    found = candidates(RUNS, "roc_auc", M5)
    assert best_so_far(found) == [0.950, 0.962, 0.962, 0.962]
    assert best_so_far(found, greater_is_better=False) == [0.950, 0.950, 0.950, 0.940]


def test_failed_or_pruned_trials_are_not_candidates() -> None:
    pruned = trial(4, "logistic", 0.99, 1.0, 0.1, tags={"kind": "trial", "trial_state": "pruned"})
    assert 4 not in [c.trial for c in candidates([*RUNS, pruned], "roc_auc", M5)]


LOADTEST = LoadTestResult("lt", throughput_rps=200.0, p99_ms=40.0, error_rate=0.0)


def test_rightsize_by_hand() -> None:
    catalog = load_catalog()
    sizing = rightsize(
        LOADTEST,
        tested_on=catalog.instance("m5.large"),
        catalog=catalog,
        target_rps=1000,
        target_p99_ms=50,
        headroom=0.2,
    )
    plans = {p.instance: p for p in sizing.plans}
    # 100 rps per vCPU; c5.large: 200 rps, 160 usable -> ceil(1000/160) = 7 replicas
    c5 = plans["c5.large"]
    assert (c5.capacity_rps, c5.replicas) == (200.0, 7)
    assert c5.reserved_monthly == Decimal(730) * 7 * Decimal("0.054")
    assert c5.on_demand_monthly == Decimal(730) * 7 * Decimal("0.085")
    assert c5.spot_mix_monthly == Decimal(730) * (Decimal("0.054") + 6 * Decimal("0.0320"))
    assert "g4dn.xlarge" not in plans  # GPUs are not sized from a CPU load test
    best = sizing.best
    assert best.reserved_monthly == min(p.reserved_monthly for p in sizing.plans)
    assert any("spot" in line for line in sizing.advice)


def test_one_replica_is_never_advised_on_spot() -> None:
    catalog = load_catalog()
    sizing = rightsize(
        LOADTEST,
        tested_on=catalog.instance("m5.large"),
        catalog=catalog,
        target_rps=10,
        target_p99_ms=50,
    )
    assert sizing.best.replicas == 1
    assert sizing.best.spot_mix_monthly is None
    assert any("never put the only serving replica on spot" in line for line in sizing.advice)


@pytest.mark.parametrize(
    ("loadtest", "options", "problem"),
    [
        (LOADTEST, {"target_p99_ms": 20}, "above the 20 ms target"),
        (LoadTestResult("x", 100.0, 10.0, 0.2), {}, "failed"),
        (LOADTEST, {"target_rps": 0}, "--rps"),
        (LOADTEST, {"target_rps": float("nan")}, "--rps"),
        (LOADTEST, {"headroom": 1.0}, "headroom"),
    ],
)
def test_rightsize_refuses_what_it_cannot_size(loadtest, options, problem) -> None:
    catalog = load_catalog()
    kwargs = {"target_rps": 100.0, "target_p99_ms": 50.0, **options}
    with pytest.raises(InvalidArgument, match=problem):
        rightsize(loadtest, tested_on=catalog.instance("m5.large"), catalog=catalog, **kwargs)


def test_load_test_result_needs_a_load_test_run() -> None:
    with pytest.raises(InvalidArgument, match="not a load test"):
        LoadTestResult.from_run(make_run("r", metrics={"auc": 0.9}))
    run = make_run("r", metrics={"throughput_rps": 50.0, "latency_p99_ms": 12.0})
    assert LoadTestResult.from_run(run).p99_ms == 12.0
