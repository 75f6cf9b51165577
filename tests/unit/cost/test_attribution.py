"""Attribution: hand-computed costs for both rules, roll-ups that count each CPU second once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.cost.attribution import (
    attributable,
    cost_per_thousand_predictions,
    egress_cost,
    group_costs,
    lineage_runs,
    run_cost,
    storage_monthly_cost,
    total_cost,
)
from shipyard.cost.catalog import ActiveInstance, load_catalog
from shipyard.store.entities import Resources, Run, RunStatus

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
DAY_MS = 86_400_000


def make_run(run_id: str, **extra: Any) -> Run:
    values: dict[str, Any] = {
        "run_id": run_id,
        "experiment_id": "e1",
        "experiment": "churn",
        "name": run_id,
        "status": RunStatus.FINISHED,
        "start_ms": T0,
        "end_ms": T0 + 1000,
        "heartbeat_ms": T0,
        "parent_run_id": None,
        "host": "h1",
        "pid": 1,
        "pid_started_ms": T0,
        "user": "u",
        "error": None,
        "git_commit": None,
        "git_dirty": None,
        "environment": {},
        "resources": Resources(wall_seconds=100.0, cpu_user_seconds=60.0, cpu_system_seconds=12.0),
    }
    values.update(extra)
    return Run(**values)


@pytest.fixture
def m5() -> ActiveInstance:
    return ActiveInstance(load_catalog().instance("m5.large"), "on_demand")


def test_hand_computed_cpu_share(m5: ActiveInstance) -> None:
    # 1,800 s user + 1,800 s system = 1 CPU-hour on a 2-vCPU $0.096/h instance = $0.048.
    resources = Resources(wall_seconds=5400.0, cpu_user_seconds=1800.0, cpu_system_seconds=1800.0)
    cost = run_cost(resources, m5)
    assert cost.usd == Decimal("0.048")
    assert (cost.rule, cost.seconds, cost.instance, cost.purchase) == (
        "cpu_share",
        3600.0,
        "m5.large",
        "on_demand",
    )


def test_hand_computed_whole_instance_and_purchase_options(m5: ActiveInstance) -> None:
    resources = Resources(wall_seconds=5400.0, cpu_user_seconds=1.0)
    assert run_cost(resources, m5, "whole_instance").usd == Decimal("0.144")  # 1.5 h * 0.096
    spot = run_cost(resources, m5, "whole_instance", purchase="spot")
    assert spot.usd == Decimal("0.0525")  # 1.5 h * 0.035
    assert spot.purchase == "spot"
    # Child CPU (reaped worker processes) is paid for too: 7,200 CPU-s on c5.xlarge (4 vCPU).
    c5 = load_catalog().instance("c5.xlarge")
    children = Resources(cpu_user_seconds=3600.0, children_cpu_user_seconds=3600.0)
    assert run_cost(children, c5).usd == Decimal("0.085")  # 2 h * 0.170 / 4


def test_unmeasured_run_costs_nothing_and_says_so(m5: ActiveInstance) -> None:
    cost = run_cost(Resources(), m5)
    assert cost.usd == 0
    assert not cost.measured


def test_unknown_rule_or_purchase_is_refused(m5: ActiveInstance) -> None:
    with pytest.raises(InvalidArgument, match="cpu_share"):
        run_cost(Resources(), m5, "per_gpu")
    with pytest.raises(InvalidArgument, match="purchase"):
        run_cost(Resources(), m5, purchase="barter")


def test_children_on_the_parent_host_are_not_counted_twice(m5: ActiveInstance) -> None:
    parent = make_run("p")
    same_host = make_run("c1", parent_run_id="p")
    remote = make_run("c2", parent_run_id="p", host="h2")
    orphan = make_run("c3", parent_run_id="gone")
    kept = [r.run_id for r in attributable([parent, same_host, remote, orphan])]
    assert kept == ["p", "c2", "c3"]
    total = total_cost([parent, same_host, remote, orphan], m5)
    assert total.usd == 3 * run_cost(parent.resources, m5).usd
    assert total.seconds == pytest.approx(3 * 72.0)


def test_group_by_experiment_and_day_puts_children_with_their_root(m5: ActiveInstance) -> None:
    tuning = make_run("t")
    trial = make_run("t1", parent_run_id="t", host="h2", experiment="other", start_ms=T0 + DAY_MS)
    later = make_run("l", experiment="fraud", start_ms=T0 + DAY_MS)
    runs = [tuning, trial, later]
    one = run_cost(tuning.resources, m5).usd
    by_experiment = group_costs(runs, m5, "experiment")
    assert {k: v.usd for k, v in by_experiment.items()} == {"churn": 2 * one, "fraud": one}
    by_day = group_costs(runs, m5, "day")
    assert {k: v.usd for k, v in by_day.items()} == {"2023-11-14": 2 * one, "2023-11-15": one}
    assert group_costs(runs, m5, "project")["project"].usd == 3 * one
    with pytest.raises(InvalidArgument, match="group"):
        group_costs(runs, m5, "week")  # type: ignore[arg-type]


def test_lineage_is_the_training_run_and_its_descendants() -> None:
    runs = [
        make_run("train"),
        make_run("trial", parent_run_id="train"),
        make_run("fold", parent_run_id="trial"),
        make_run("unrelated"),
    ]
    assert {r.run_id for r in lineage_runs("train", runs)} == {"train", "trial", "fold"}
    assert lineage_runs(None, runs) == []


def test_per_thousand_predictions_and_storage(m5: ActiveInstance) -> None:
    # 36 CPU-s for 100,000 predictions: 0.36 ms each; 1,000 of them = 0.36 CPU-s
    # = 0.0001 h * 0.048 $/vCPU-h = $0.0000048.
    assert cost_per_thousand_predictions(36.0, 100_000, m5) == Decimal("0.0000048")
    assert cost_per_thousand_predictions(1.0, 0, m5) is None
    with pytest.raises(InvalidArgument):
        cost_per_thousand_predictions(-1.0, 10, m5)
    catalog = load_catalog()
    assert storage_monthly_cost(10 * 2**30, "hot", catalog) == Decimal("0.230")
    assert storage_monthly_cost(2**30, "archive", catalog) == Decimal("0.00099")
    assert egress_cost(2 * 2**30, catalog) == Decimal("0.18")
    with pytest.raises(InvalidArgument):
        storage_monthly_cost(-1, "hot", catalog)
