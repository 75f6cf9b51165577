"""``shipyard monitor feedback`` on the embedded workspace of tmp_path (tests/conftest.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest

from shipyard.monitor.feedback import FeedbackStore
from shipyard.monitor.logfiles import SCHEMA, write_part_atomic
from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.cli.test_models import cli
from tests.unit.registry.trained import cached_bundle_file

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_700_000_000_000


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A registered churn model (v1) and 120 logged answers: 100 by v1, 20 by an unknown v7."""
    with Workspace.open(tmp_path) as workspace:
        path = cached_bundle_file(workspace, tmp_path, name="churn")
        ModelRegistry.for_workspace(workspace).register("churn", path, actor=OPERATOR)
    rng = np.random.default_rng(0)
    rows = [
        {
            "request_id": f"r{i}",
            "model": "churn",
            "version": 1 if i < 100 else 7,
            "variant": "production",
            "ts_ms": T0 + i * 1000,
            "latency_ms": 2.0,
            "inputs_json": "{}",
            "outputs_json": "{}",
            "prediction": str(i % 2),
            "probability": float(np.clip(0.7 if i % 2 else 0.3 + rng.normal(0, 0.1), 0, 1)),
            "status": 200,
            "anomaly_score": 1.0,
        }
        for i in range(120)
    ]
    write_part_atomic(
        tmp_path / ".shipyard/predictions/date=2023-11-14/hour=22",
        pl.DataFrame(rows, schema=SCHEMA, orient="row"),
    )
    return tmp_path


def test_labels_are_stored_matched_and_scored_against_the_test_metrics(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    labels = project / "labels.csv"
    # v1 is right on 80 of its 100 answers; one label has no logged prediction.
    lines = [f"r{i},{i % 2 if i % 5 else 1 - i % 2}" for i in range(120)] + ["ghost,1"]
    labels.write_text("request_id,label\n" + "\n".join(lines) + "\n")
    code, out, err = cli(
        capsys, "monitor", "feedback", str(labels), "--model", "churn", "--json", "--window", "50"
    )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["receipt"] == {
        "accepted": 121,
        "matched": 120,
        "unmatched": 1,
        "repeated": 0,
        "unmatched_ids": ["ghost"],
    }
    assert "7" in payload["skipped_versions"]  # not in the registry: no baseline, no metrics
    accuracy = [o for o in payload["observations"] if o["statistic"] == "accuracy"]
    assert [(o["version"], o["value"], o["detail"]["n"]) for o in accuracy] == [
        (1, 0.8, 50),
        (1, 0.8, 50),
    ]
    with Workspace.open(project) as workspace:
        tested = ModelRegistry.for_workspace(workspace).load("churn:1").manifest.metrics["test"]
    assert accuracy[0]["threshold"] == pytest.approx(tested["accuracy"]["value"])
    assert {o["statistic"] for o in payload["observations"] if o["kind"] == "concept"} == {
        "adwin",
        "page_hinkley",
    }
    assert FeedbackStore(project / ".shipyard" / "feedback").labels("churn").height == 121

    code, out, _ = cli(capsys, "monitor", "feedback", str(labels), "--model", "churn")
    assert code == 0
    assert "121 label(s) stored for churn: 120 matched" in out
    assert "version 7: no metrics" in out
    assert "performance:accuracy" in out


def test_a_bad_file_exits_2_and_stores_nothing(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    labels = project / "labels.csv"
    labels.write_text("request_id,label\nr1,1\nr2,\n")
    code, _, err = cli(capsys, "monitor", "feedback", str(labels), "--model", "churn")
    assert code == 2
    assert "row 2: label is empty" in err
    assert not (project / ".shipyard" / "feedback").exists()
