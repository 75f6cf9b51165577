"""``shipyard erase`` leaves no byte and no row holding the subject anywhere in the project.

A real project folder: a pipeline run (validated rows, a contract quarantine and an
unparseable line, all holding the subject), a trained and registered model, a prediction log
written by the server's writer (the subject alone in one request, beside another person in a
second), feedback labels, and a monitoring observation whose detail names the subject. After
``shipyard erase`` (and the operator removing the subject from the source file, as the report
asks), every file under the project folder is read: raw bytes, Parquet cells, and every row of
every table of the SQLite store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import polars as pl
import pytest

from shipyard.core.clock import ManualClock
from shipyard.data.datasets import list_datasets, read_dataset
from shipyard.monitor.feedback import FeedbackStore
from shipyard.monitor.logfiles import read_prediction_log
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.security.audit_chain import security_store
from shipyard.serve.prediction_log import PredictionLog, PredictionRecord
from shipyard.store.monitoring import MonitoringStore
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.cli.running import cli

pytestmark = pytest.mark.slow

SUBJECT = "ann@example.com"
T0 = 1_780_000_000_000
N = 40
PROJECT = """\
name: crm
sources:
  customers:
    uri: data/customers.csv
    harmonize:
      cast: {customer_id: int64, age: int64, spend: float64, churned: int64}
contract:
  policy: quarantine
  columns:
    age: {type: int64, min: 0}
train:
  target: churned
  features: [age, spend]
  estimators: [{name: logistic}]
  tuning: {trials: 1}
  cv: {folds: 2}
  bootstrap_resamples: 20
  explain: false
  register: {model: churn}
"""


def write_source(root: Path) -> Path:
    lines = ["customer_id,email,age,spend,churned"]
    for i in range(N):
        email = SUBJECT if i in (0, 7) else f"user{i}@example.com"
        lines.append(
            f"{1000 + i},{email},{20 + (i * 7) % 45},{10 + (i * 13) % 50}.0,{i % 3 == 0:d}"
        )
    lines.append(f"2000,{SUBJECT},-5,12.0,0")  # fails age.min: quarantined
    lines.append(f"2001,{SUBJECT},oops")  # too few fields: a rejected line
    path = root / "data" / "customers.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def serve_and_monitor(root: Path) -> None:
    """Log answers as the server does, take feedback, store an observation naming the subject."""
    predictions = root / ".shipyard" / "predictions"
    log = PredictionLog(predictions, clock=ManualClock(T0))
    requests = {
        "req-ann": {"email": [SUBJECT], "age": [34], "spend": [10.0]},
        "req-pair": {"email": ["bob@example.com", SUBJECT], "age": [50, 34], "spend": [1.0, 10.0]},
        "req-bob": {"email": ["bob@example.com"], "age": [50], "spend": [1.0]},
    }
    for request_id, inputs in requests.items():
        n = len(inputs["age"])
        log.record(
            PredictionRecord(
                request_id=request_id,
                model="churn",
                version=1,
                variant="production",
                ts_ms=T0,
                latency_ms=1.0,
                inputs_json=orjson.dumps(inputs).decode(),
                outputs_json=orjson.dumps(
                    {"predictions": [i % 2 for i in range(n)], "probabilities": [[0.4, 0.6]] * n}
                ).decode(),
                prediction="0",
                probability=0.6,
            )
        )
    assert log.close()
    labels = pl.DataFrame(
        {"request_id": list(requests), "label": ["1", "0", "0"], "ts_ms": [T0] * 3},
        schema={"request_id": pl.String, "label": pl.String, "ts_ms": pl.Int64},
    )
    FeedbackStore.beside(predictions, clock=ManualClock(T0)).add("churn", labels)
    with Workspace.open(root) as workspace:
        MonitoringStore(workspace.store).add_observations(
            [
                {
                    "model": "churn",
                    "version": 1,
                    "variant": None,
                    "kind": "anomaly",
                    "statistic": "input_anomaly_rate",
                    "subject": "*",
                    "value": 0.5,
                    "window_start_ms": T0,
                    "window_end_ms": T0 + 60_000,
                    "threshold": 0.1,
                    "breached": True,
                    "detail": {"examples": [{"request_id": "req-ann", "email": SUBJECT}]},
                    "recorded_ms": T0,
                }
            ]
        )


def files_holding(root: Path, value: str) -> list[str]:
    """Every file under ``root`` whose bytes, Parquet cells or SQLite rows hold ``value``."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        where = path.relative_to(root)
        if value.encode() in data:
            hits.append(f"{where}: bytes")
        elif data[:4] == b"PAR1":
            cells = pl.read_parquet(path).select(pl.all().cast(pl.String))
            if any(value in (v or "") for col in cells.iter_columns() for v in col.to_list()):
                hits.append(f"{where}: parquet cell")
        elif data[:16] == b"SQLite format 3\x00":
            hits += [f"{where}: {t}" for t in sqlite_tables_holding(path, value)]
    return hits


def sqlite_tables_holding(path: Path, value: str) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [
            table
            for table in tables
            if any(value in repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))
        ]


def test_erase_leaves_no_file_and_no_row_holding_the_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path
    source = write_source(root)
    (root / "shipyard.yaml").write_text(PROJECT)
    with Workspace.open(root) as workspace:
        report = run_pipeline(workspace, load_project(root), actor=OPERATOR)
        assert report.training is not None
        names = {v.name for v in list_datasets(workspace)}
        assert {"crm.validated", "crm.quarantine", "crm.rejected"} <= names
        rejected = next(v for v in list_datasets(workspace) if v.name == "crm.rejected")
        assert SUBJECT in read_dataset(workspace, rejected).collect()["_line"].to_list()[0]
    serve_and_monitor(root)
    before = files_holding(root, SUBJECT)
    # The subject is everywhere: the source, blobs (validated, quarantine, rejected), the
    # prediction log, the feedback labels (its request id) and the metadata store.
    assert any(h.startswith("data/customers.csv") for h in before)
    assert any("predictions" in h for h in before)
    assert any("shipyard.db" in h for h in before), before

    done = cli(capsys, "erase", "--subject-column", "email", "--value", SUBJECT, "--yes")
    assert done.code == 0, done
    assert SUBJECT not in done.out + done.err
    assert "prediction_log" in done.out
    assert "feedback" in done.out
    assert "monitor_observations" in done.out
    assert "churn:1" in done.out  # the model trained on the subject's rows: retrain it
    assert "erase the subject at the source too: customers" in done.out

    # What the other people left: bob's answers, trimmed of ann's row, and bob's label.
    log = read_prediction_log(root / ".shipyard" / "predictions").collect().sort("request_id")
    assert log["request_id"].to_list() == ["req-bob", "req-pair"]
    pair = orjson.loads(log["inputs_json"][1])
    assert pair == {"email": ["bob@example.com"], "age": [50], "spend": [1.0]}
    assert orjson.loads(log["outputs_json"][1]) == {
        "predictions": [0],
        "probabilities": [[0.4, 0.6]],
    }
    labels = FeedbackStore(root / ".shipyard" / "feedback").labels("churn")
    assert sorted(labels["request_id"].to_list()) == ["req-bob", "req-pair"]

    # The operator erases the subject at the source, as the report asks; then nothing is left.
    source.write_text(
        "".join(line for line in source.read_text().splitlines(True) if SUBJECT not in line)
    )
    assert files_holding(root, SUBJECT) == []

    # The erasure is in the audit log with the subject's digest and what it touched.
    with Workspace.open(root) as workspace:
        entries = security_store(workspace.settings, workspace.store).list_audit(
            action="privacy.erase"
        )
    assert [e.outcome for e in entries] == ["ok"]
    detail = orjson.loads(entries[0].detail_json)
    assert {f["kind"]: f["rows"] for f in detail["files"]} == {"prediction_log": 1, "feedback": 1}
    assert detail["monitoring_rows"] == {"monitor_observations": 1}
    assert detail["model_versions"] == ["churn:1"]
    assert detail["residual"] == {}
