"""Budgets: spend from recorded runs, thresholds crossed, and what tuning gets to spend."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.core.errors import Conflict, InvalidArgument, InvalidProjectFile
from shipyard.cost.attribution import cpu_share_usd
from shipyard.cost.budget import (
    Budget,
    BudgetSection,
    TrialBudget,
    budget_status,
    period_start_ms,
    trial_budget,
)
from shipyard.cost.catalog import active_instance
from shipyard.pipeline.project import load_project
from shipyard.track.workspace import Workspace

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def busy(seconds: float) -> None:
    """Burn CPU (not sleep) so the run records CPU seconds."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        sum(range(1000))


def cpu_seconds_of(workspace: Workspace, run_id: str) -> float:
    seconds = workspace.get_run(run_id).resources.cpu_seconds
    assert seconds is not None
    assert seconds > 0
    return seconds


def test_spend_counts_cpu_of_the_budget_scope_once_and_crosses_thresholds(
    workspace: Workspace,
) -> None:
    with workspace.start_run(experiment="churn") as parent:
        busy(0.15)
        with parent.child(name="trial") as child:  # inside the parent's counters already
            busy(0.05)
    with workspace.start_run(experiment="other"):
        busy(0.05)
    spent = cpu_seconds_of(workspace, parent.run_id)
    assert cpu_seconds_of(workspace, child.run_id) < spent

    budget = Budget(name="churn", experiment="churn", cpu_hours=spent / 3600 / 0.6, period="all")
    status = budget_status(
        workspace.store, budget, settings=workspace.settings, clock=workspace.clock
    )
    assert status.runs == 1
    assert status.spent == Decimal(repr(spent)) / 3600
    assert status.fraction == pytest.approx(0.6)
    assert status.crossed == (0.5,)
    assert not status.exceeded
    assert status.remaining == budget.limit - status.spent
    fields = status.as_observation_fields()
    assert (fields["kind"], fields["subject"], fields["threshold"], fields["breached"]) == (
        "budget",
        "churn",
        0.5,
        True,
    )

    project = Budget(name="all", cpu_hours=1e-9, period="all")
    whole = budget_status(
        workspace.store, project, settings=workspace.settings, clock=workspace.clock
    )
    assert whole.runs == 2
    assert whole.crossed == (0.5, 0.8, 1.0)
    assert whole.exceeded
    assert whole.remaining == 0


@sqlite_only
def test_money_budgets_price_cpu_on_the_workspace_instance(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        busy(0.1)
    spent = cpu_seconds_of(workspace, run.run_id)
    instance = active_instance(workspace.settings)
    status = budget_status(
        workspace.store,
        Budget(name="m", usd=Decimal("10"), period="all"),
        settings=workspace.settings,
        clock=workspace.clock,
    )
    assert status.unit == "usd"
    assert status.spent == cpu_share_usd(spent, instance.instance, instance.hourly)
    assert status.to_dict()["spent"] == str(status.spent)


@sqlite_only
def test_an_unknown_experiment_has_spent_nothing(workspace: Workspace) -> None:
    status = budget_status(
        workspace.store,
        Budget(name="x", experiment="nobody", cpu_hours=1),
        settings=workspace.settings,
        clock=workspace.clock,
    )
    assert status.spent == 0
    assert status.crossed == ()


def test_periods_start_at_utc_calendar_boundaries() -> None:
    now = int(dt.datetime(2026, 5, 17, 13, 45, tzinfo=dt.UTC).timestamp() * 1000)
    month = int(dt.datetime(2026, 5, 1, tzinfo=dt.UTC).timestamp() * 1000)
    day = int(dt.datetime(2026, 5, 17, tzinfo=dt.UTC).timestamp() * 1000)
    assert period_start_ms("month", now) == month
    assert period_start_ms("day", now) == day
    assert period_start_ms("all", now) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "b"}, "exactly one of usd or cpu_hours"),
        ({"name": "b", "usd": "1", "cpu_hours": 1}, "exactly one of usd or cpu_hours"),
        ({"name": "b", "cpu_hours": -1}, "greater than 0"),
        ({"name": "b", "usd": "NaN"}, "finite"),
        ({"name": "b", "cpu_hours": 1, "thresholds": [0, 1]}, "thresholds"),
        ({"name": "b", "cpu_hours": 1, "thresholds": []}, "thresholds"),
        ({"name": "../b", "cpu_hours": 1}, "pattern"),
        ({"name": "b", "cpu_hours": 1, "period": "week"}, "period"),
        ({"name": "b", "cpu_hours": 1, "limit": 3}, "extra"),
    ],
)
def test_bad_budgets_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Budget.model_validate(spec)


def test_budget_names_are_unique_and_looked_up_by_name() -> None:
    with pytest.raises(ValidationError, match="unique"):
        BudgetSection.model_validate(
            {"limits": [{"name": "a", "cpu_hours": 1}, {"name": "a", "usd": "2"}]}
        )
    section = BudgetSection.model_validate({"limits": [{"name": "a", "cpu_hours": 1}]})
    assert section.get("a").unit == "cpu_hours"
    with pytest.raises(InvalidArgument, match="no budget 'b'"):
        section.get("b")


def test_the_next_trial_is_estimated_as_the_most_expensive_so_far() -> None:
    budget = TrialBudget("b", remaining_cpu_seconds=10.0, limit_text="1 cpu_hours")
    assert budget.stop_reason([]) is None
    assert budget.stop_reason([1.0, 3.0]) is None  # 6 left, next ~3
    reason = budget.stop_reason([3.0, 1.0, 2.0])  # 4 left, next ~3 fits
    assert reason is None
    reason = budget.stop_reason([3.0, 1.0, 2.0, 1.5])  # 2.5 left, next ~3 does not
    assert reason is not None
    assert "about 3.0 CPU-s" in reason
    assert "2.5 CPU-s left" in reason
    assert "4 trials" in reason
    assert TrialBudget("b", 0.0, "x").stop_reason([]) is not None


@sqlite_only
def test_trial_budget_takes_the_tightest_covering_budget(workspace: Workspace) -> None:
    section = BudgetSection.model_validate(
        {
            "limits": [
                {"name": "project", "cpu_hours": 10, "period": "all"},
                {"name": "churn", "experiment": "churn", "cpu_hours": 0.5, "period": "all"},
                {"name": "elsewhere", "experiment": "other", "cpu_hours": 0.001},
            ]
        }
    )
    chosen = trial_budget(
        workspace.store, section, "churn", settings=workspace.settings, clock=workspace.clock
    )
    assert chosen is not None
    assert chosen.budget == "churn"
    assert chosen.remaining_cpu_seconds == pytest.approx(1800.0)
    assert (
        trial_budget(
            workspace.store,
            section.model_copy(update={"tuning": False}),
            "churn",
            settings=workspace.settings,
            clock=workspace.clock,
        )
        is None
    )
    assert (
        trial_budget(
            workspace.store,
            BudgetSection(),
            "churn",
            settings=workspace.settings,
            clock=workspace.clock,
        )
        is None
    )

    with workspace.start_run(experiment="churn"):
        busy(0.05)
    used_up = BudgetSection.model_validate({"limits": [{"name": "tiny", "cpu_hours": 1e-9}]})
    with pytest.raises(Conflict, match="budget tiny is used up"):
        trial_budget(
            workspace.store, used_up, "churn", settings=workspace.settings, clock=workspace.clock
        )


def test_shipyard_yaml_declares_budgets_and_retention(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(
        "name: churn\n"
        "budget:\n"
        "  limits:\n"
        "    - {name: monthly, usd: '40'}\n"
        "    - {name: tuning, experiment: churn-pipeline, cpu_hours: 2, thresholds: [0.8, 0.5]}\n"
        "retention:\n"
        "  keep_versions: 3\n"
        "  cold_after_days: 30\n"
    )
    spec = load_project(tmp_path).spec
    assert spec.budget is not None
    assert spec.budget.get("monthly").limit == Decimal("40")
    assert spec.budget.get("tuning").thresholds == (0.5, 0.8)
    assert spec.retention is not None
    assert spec.retention.keep_versions == 3

    (tmp_path / "shipyard.yaml").write_text(
        "budget:\n  limits:\n    - {name: x, usd: '1', cpu_hours: 1}\n"
    )
    with pytest.raises(InvalidProjectFile, match="exactly one of usd or cpu_hours"):
        load_project(tmp_path)
