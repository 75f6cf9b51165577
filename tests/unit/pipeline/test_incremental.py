"""Incremental runs with a watermarked source beside sources without one (issue 16).

A source without a watermark is read whole on every run. It used to be appended to the
previous validated version each time: duplicates grew run after run and no stage was ever
reused. Now an unchanged source (same content hash) adds nothing, and a changed one rebuilds
the validated version from every source's full read.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shipyard.data.datasets import read_dataset
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import PipelineReport, run_pipeline
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

PROJECT = """
name: shop
sources:
  web:
    uri: data/web.csv
    watermark: updated
    harmonize: {cast: {order_id: int64, amount: float64}}
  store:
    uri: data/store.csv
    harmonize: {cast: {order_id: int64, amount: float64}}
  regions:
    uri: data/regions.csv
    harmonize: {cast: {order_id: int64}}
combine:
  union: [web, store]
  join: [{source: regions, "on": order_id, how: left}]
contract:
  columns:
    order_id: {type: int64, nullable: false, unique: true}
steps:
  - clean: {dedup: {key: [order_id]}}
"""


def write(root: Path, name: str, lines: list[str]) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / name).write_text("\n".join(lines) + "\n")


def setup(root: Path) -> None:
    (root / "shipyard.yaml").write_text(PROJECT)
    write(root, "web.csv", ["order_id,amount,updated", "1,10,2024-01-01", "2,20,2024-01-02"])
    write(root, "store.csv", ["order_id,amount,updated", "100,5,2024-01-01", "101,6,2024-01-01"])
    regions = [f"{i},north" for i in (1, 2, 3, 100, 101, 102)]
    write(root, "regions.csv", ["order_id,region", *regions])


def run(root: Path) -> PipelineReport:
    with Workspace.open(root) as workspace:
        return run_pipeline(workspace, load_project(root), actor=OPERATOR)


def validated(root: Path, report: PipelineReport) -> pl.DataFrame:
    stage = next(s for s in report.stages if s.name == "validate")
    assert stage.dataset_id is not None
    with Workspace.open(root) as workspace:
        return read_dataset(workspace, stage.dataset_id).collect()


def test_unchanged_inputs_reuse_every_version_and_add_no_duplicates(tmp_path: Path) -> None:
    setup(tmp_path)
    first = run(tmp_path)
    assert sorted(validated(tmp_path, first)["order_id"]) == [1, 2, 100, 101]

    again = run(tmp_path)
    assert again.final_dataset == first.final_dataset
    assert "validate" not in again.executed
    assert not any(s.name.startswith("0:") for s in again.stages if not s.cached)
    assert sorted(validated(tmp_path, again)["order_id"]) == [1, 2, 100, 101]
    store = next(s for s in again.stages if s.name == "ingest:store")
    assert store.cached
    assert any("unchanged" in w for w in store.warnings)


def test_new_watermarked_rows_are_appended_once(tmp_path: Path) -> None:
    setup(tmp_path)
    run(tmp_path)
    with (tmp_path / "data" / "web.csv").open("a") as f:
        f.write("3,30,2024-01-03\n")
    report = run(tmp_path)
    rows = validated(tmp_path, report)
    assert sorted(rows["order_id"]) == [1, 2, 3, 100, 101]
    assert rows.filter(pl.col("order_id") == 3)["region"].to_list() == ["north"]  # join kept
    validate = next(s for s in report.stages if s.name == "validate")
    assert validate.rows_in == 1
    assert report.conserved


def test_a_changed_source_without_watermark_rebuilds_without_duplicates(tmp_path: Path) -> None:
    setup(tmp_path)
    run(tmp_path)
    with (tmp_path / "data" / "store.csv").open("a") as f:
        f.write("102,7,2024-01-05\n")
    report = run(tmp_path)
    assert sorted(validated(tmp_path, report)["order_id"]) == [1, 2, 100, 101, 102]
    assert report.conserved
    again = run(tmp_path)
    assert again.final_dataset == report.final_dataset
    assert "validate" not in again.executed
