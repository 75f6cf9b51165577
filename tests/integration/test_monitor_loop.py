"""The monitor loop end to end: drift in the log → alert → retrain → the gate decides the alias.

A tiny project (one CSV source, logistic regression) is trained and promoted; predictions of
the promoted bundle are written to the prediction log the way the server writes them, with one
feature shifted; feedback labels are stored beside it. A ``monitor_pass`` must flag that
feature, raise the ``retrain`` rule's alert, re-run the pipeline and record the gate's verdict
on the alert: promoted when the fresh data makes a better model, refused (alias unchanged) when
the retrained model is worse.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from shipyard.core.clock import Clock, ManualClock
from shipyard.monitor.feedback import FeedbackStore
from shipyard.pipeline.monitoring import monitor_pass
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.registry.registry import ModelRegistry
from shipyard.serve.prediction_log import PredictionLog, PredictionRecord
from shipyard.store.monitoring import MonitoringStore
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

pytestmark = pytest.mark.slow

T0 = 1_780_000_000_000
MINUTE = 60_000

PROJECT = """
name: loop
sources:
  rows:
    uri: data/rows.parquet
train:
  target: y
  metric: roc_auc
  features: {features}
  estimators:
    - name: logistic
  tuning: {{trials: 1}}
  cv: {{folds: 2}}
  bootstrap_resamples: 50
  explain: false
  register: {{model: loop, promote_to: production}}
monitor:
  schedule: {{interval: 10m, lookback: 2h}}
  notifiers:
    log: {{type: log}}
  rules:
    - name: x1-drift
      statistic: psi
      feature: x1
      above: 0.25
      severity: critical
      action: retrain
    - name: over-budget
      statistic: fraction_used
      kind: budget
      above: 1.0
budget:
  tuning: false
  limits:
    - {{name: tiny, cpu_hours: 0.000001}}
"""


def _rows(n: int, seed: int, *, concept: str = "x1", shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.normal(0.0, 1.0, n)
    signal = x1 - shift if concept == "x1" else x2
    y = (signal + rng.normal(0, 0.4, n) > 0).astype(np.int64)
    return pl.DataFrame({"x1": x1, "x2": x2, "y": y})


def _write_project(root: Path, features: str = "[x1, x2]") -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "shipyard.yaml").write_text(PROJECT.format(features=features))


def _serve_traffic(
    workspace: Workspace, root: Path, clock: Clock, rows: pl.DataFrame, *, start_ms: int = T0
) -> None:
    """Log what the promoted bundle answers for ``rows``, one request per row, and label them."""
    registry = ModelRegistry.for_workspace(workspace)
    version = registry.get("loop@production")
    bundle = registry.load(version)
    features = rows.select("x1", "x2")
    predicted = bundle.predict(features)
    log = PredictionLog(root / ".shipyard" / "predictions", clock=clock)
    log.start()
    ids = []
    for i, row in enumerate(features.iter_rows(named=True)):
        request_id = uuid.uuid4().hex
        ids.append(request_id)
        assert predicted.proba is not None
        log.record(
            PredictionRecord(
                request_id=request_id,
                model="loop",
                version=version.version,
                variant="primary",
                ts_ms=start_ms + i * 1_000,  # one request a second
                latency_ms=2.0,
                inputs_json=orjson.dumps({k: [v] for k, v in row.items()}).decode(),
                outputs_json=orjson.dumps(
                    {
                        "predictions": [int(predicted.labels[i])],
                        "probabilities": [predicted.proba[i].tolist()],
                    }
                ).decode(),
                prediction=str(predicted.labels[i]),
                probability=float(predicted.proba[i][-1]),
            )
        )
    assert log.close()
    labels = pl.DataFrame({"request_id": ids, "label": [str(v) for v in rows["y"].to_list()]})
    FeedbackStore.beside(root / ".shipyard" / "predictions", clock=clock).add(
        "loop", labels.with_columns(pl.lit(None, pl.Int64).alias("ts_ms"))
    )


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    _write_project(root)
    _rows(600, seed=1).write_parquet(root / "data" / "rows.parquet")
    with Workspace.open(root) as workspace:
        report = run_pipeline(workspace, load_project(root), actor=OPERATOR)
        assert report.training is not None
        assert report.training.promotion is not None
        assert report.training.promotion.moved
    return root


def test_drift_raises_the_alert_and_a_better_retrained_model_is_promoted(trained: Path) -> None:
    root = trained
    clock = ManualClock(T0 + 60 * MINUTE)
    # 30 minutes of normal traffic, then 30 minutes with x1 shifted by 1.5 std
    traffic = pl.concat([_rows(1800, seed=2), _rows(1800, seed=3, concept="x2", shift=1.5)])
    # fresh data for the retrain: the new regime, labelled (the world changed: y follows x2)
    pl.concat([_rows(600, seed=1), _rows(1500, seed=4, concept="x2", shift=1.5)]).write_parquet(
        root / "data" / "rows.parquet"
    )
    with Workspace.open(root, clock=clock) as workspace:
        _serve_traffic(workspace, root, clock, traffic)
        result = monitor_pass(workspace, load_project(root), actor=OPERATOR)

        assert "x1" in result.drifted_features
        assert "x2" not in result.drifted_features, "x2 was never shifted"
        # the first three 10-minute windows are clean, the last three drifted
        flagged = [r.window_end_ms for r in result.drift if "x1" in r.drifted]
        assert flagged
        assert min(flagged) > T0 + 30 * MINUTE
        opened = result.evaluation.opened
        assert sorted(a.rule for a in opened) == ["over-budget", "x1-drift"]
        budget = next(a for a in opened if a.rule == "over-budget")
        assert budget.subject == "tiny"
        assert budget.value > 1.0  # the first training run alone spent more than the limit
        opened = [a for a in opened if a.rule == "x1-drift"]
        assert len(result.retrains) == 1
        outcome = result.retrains[0]
        assert outcome.promoted, outcome.text
        assert outcome.numbers["candidate_score"] > outcome.numbers["holder_score"]
        registry = ModelRegistry.for_workspace(workspace)
        assert registry.get("loop@production").version == outcome.version == 2

        stored = MonitoringStore(workspace.store).get_alert(opened[0].alert_id)
        assert stored.outcome is not None
        assert stored.outcome["text"].startswith("promoted version 2")
        # performance on the labels was measured, and the drifted half is worse
        accuracy = [o for o in result.observations if o.statistic == "accuracy"]
        assert accuracy
        assert min(o.value for o in accuracy) < max(o.value for o in accuracy)

        # a second pass over the same period stores no window twice and raises nothing new
        again = monitor_pass(workspace, load_project(root), actor=OPERATOR)
        assert [o.kind for o in again.observations] == ["budget"]  # budgets are "now"
        assert again.evaluation.opened == []  # the budget alert is still open: a repeat


def test_a_worse_retrained_model_is_refused_and_the_alias_stays(trained: Path) -> None:
    root = trained
    clock = ManualClock(T0 + 60 * MINUTE)
    traffic = pl.concat([_rows(1800, seed=2), _rows(1800, seed=3, shift=1.5)])
    # the retrain sees more data of the same world, but the project now trains on x2 alone
    pl.concat([_rows(600, seed=1), _rows(600, seed=5)]).write_parquet(
        root / "data" / "rows.parquet"
    )
    _write_project(root, features="[x2]")
    with Workspace.open(root, clock=clock) as workspace:
        _serve_traffic(workspace, root, clock, traffic)
        result = monitor_pass(workspace, load_project(root), actor=OPERATOR)

        assert len(result.retrains) == 1
        outcome = result.retrains[0]
        assert not outcome.promoted
        assert outcome.numbers["candidate_score"] < outcome.numbers["holder_score"]
        assert "refused version 2" in outcome.text
        assert ModelRegistry.for_workspace(workspace).get("loop@production").version == 1


def test_a_retrain_that_fails_is_recorded_and_the_loop_goes_on(trained: Path) -> None:
    root = trained
    clock = ManualClock(T0 + 60 * MINUTE)
    traffic = pl.concat([_rows(1800, seed=2), _rows(1800, seed=3, shift=1.5)])
    (root / "data" / "rows.parquet").unlink()  # the source is gone when the retrain runs
    with Workspace.open(root, clock=clock) as workspace:
        _serve_traffic(workspace, root, clock, traffic)
        result = monitor_pass(workspace, load_project(root), actor=OPERATOR)

        assert len(result.retrains) == 1
        outcome = result.retrains[0]
        assert not outcome.promoted
        assert outcome.text.startswith("retrain failed:")
        assert "rows.parquet" in outcome.text
        assert ModelRegistry.for_workspace(workspace).get("loop@production").version == 1
        alert = next(a for a in result.evaluation.opened if a.rule == "x1-drift")
        stored = MonitoringStore(workspace.store).get_alert(alert.alert_id)
        assert stored.outcome is not None
        assert stored.outcome["text"] == outcome.text
