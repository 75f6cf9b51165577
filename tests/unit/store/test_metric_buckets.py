"""Metric histories cut to min/max buckets in SQL, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import math

from shipyard.store.metric_buckets import metric_buckets
from shipyard.track.workspace import Workspace


def test_buckets_keep_each_ranges_extremes(workspace: Workspace) -> None:
    with workspace.start_run("r") as run:
        values = [math.sin(s / 50) + (5.0 if s == 777 else 0.0) for s in range(10_000)]
        run.log_batch([("loss", v, s, 1_000 + s) for s, v in enumerate(values)])
        run_id = run.run_id
    cut = metric_buckets(workspace.store, run_id, "loss", 100)
    assert cut.total == 10_000
    assert not cut.exact
    assert len(cut.buckets) == 100
    assert [b.step for b in cut.buckets] == list(range(0, 10_000, 100))
    assert sum(b.count for b in cut.buckets) == 10_000
    for b in cut.buckets:
        window = values[b.step : b.step + 100]
        assert math.isclose(b.low, min(window))
        assert math.isclose(b.high, max(window))
    assert max(b.high for b in cut.buckets) == values[777]  # a one-point spike survives


def test_few_points_come_back_exact_and_nan_as_nan(workspace: Workspace) -> None:
    with workspace.start_run("r") as run:
        run.log_batch([("acc", 0.5, 0, 1), ("acc", float("nan"), 3, 2), ("acc", 0.9, 7, 3)])
        run_id = run.run_id
    cut = metric_buckets(workspace.store, run_id, "acc", 1000)
    assert cut.exact
    assert [b.step for b in cut.buckets] == [0, 3, 7]
    assert math.isnan(cut.buckets[1].low)
    assert cut.buckets[2].high == 0.9
    empty = metric_buckets(workspace.store, run_id, "nope", 10)
    assert empty.total == 0
    assert empty.buckets == []


def test_sparse_large_steps(workspace: Workspace) -> None:
    with workspace.start_run("r") as run:
        run.log_batch([("x", float(i), i * 1_000_000, i) for i in range(500)])
        run_id = run.run_id
    cut = metric_buckets(workspace.store, run_id, "x", 50)
    assert len(cut.buckets) == 50
    assert cut.buckets[0].low == 0.0
    assert cut.buckets[-1].high == 499.0
