"""An untyped CSV source gets numeric columns, its target included (issue 16)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shipyard.data.datasets import read_dataset
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.store.datasets import DatasetStore
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

PROJECT = """
name: churn
sources:
  customers:
    uri: data/customers.csv
    harmonize: {rename: {monthly: monthly_charges}}
"""


def test_untyped_csv_columns_are_inferred_and_reported(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    lines = [f"{i},{20 + i * 0.5},{'basic' if i % 2 else 'pro'},{i % 2}" for i in range(50)]
    (tmp_path / "data" / "customers.csv").write_text(
        "tenure,monthly,plan,churned\n" + "\n".join(lines) + "\n"
    )
    (tmp_path / "shipyard.yaml").write_text(PROJECT)
    with Workspace.open(tmp_path) as workspace:
        report = run_pipeline(workspace, load_project(tmp_path), actor=OPERATOR)
        frame = read_dataset(workspace, report.final_dataset or "").collect()
        snapshot = DatasetStore(workspace.store).latest_snapshot("customers")
    assert frame.schema["tenure"] == pl.Int64
    assert frame.schema["monthly_charges"] == pl.Float64
    assert frame.schema["churned"] == pl.Int64  # the target is a number, not a category
    assert frame.schema["plan"] == pl.String
    ingest = next(s for s in report.stages if s.name == "ingest:customers")
    said = " ".join(ingest.warnings)
    assert "inferred" in said
    assert "monthly_charges: float64" in said
    assert snapshot is not None
    recorded = {c["name"]: c.get("inferred") for c in snapshot.schema}
    assert recorded == {
        "tenure": "int64",
        "monthly_charges": "float64",
        "plan": None,
        "churned": "int64",
    }
