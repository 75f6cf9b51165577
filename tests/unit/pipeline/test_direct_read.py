"""A CSV source without a watermark is parsed once, by the validate stage's query (issue 17).

Its fingerprint comes from the file's bytes before a row is parsed, and its counts (rows,
rejected lines, lines unaccounted for) once the query ran. These tests hold it to what the
scratch-file path guaranteed: every line is a row or a rejected record with its reason, an
unchanged file reuses the cached version (and still reports its counts), and any changed byte
makes a new version.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.data.connectors.base import SourceSpec
from shipyard.data.connectors.csv import CsvConnector
from shipyard.data.datasets import list_datasets, read_dataset
from shipyard.data.harmonize import HarmonizeSpec
from shipyard.pipeline.ingest import read_source
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import PipelineReport, StageOutcome, run_pipeline
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

PROJECT = """
name: shop
sources:
  orders:
    uri: orders.csv
    harmonize: {cast: {order_id: int64, amount: float64}}
contract:
  policy: quarantine
  columns:
    order_id: {type: int64, nullable: false}
    amount: {type: float64, min: 0}
"""

LINES = [
    "order_id,amount,note",
    "1,10,ok",
    "2,-5,negative",  # fails amount.min: quarantined
    "3,7,too,many",  # wrong field count: rejected
    '4,8,"unclosed',  # a quote open at the line end: rejected alone
    "5,9,ok",
]


def setup(root: Path, lines: list[str]) -> None:
    (root / "shipyard.yaml").write_text(PROJECT)
    (root / "orders.csv").write_text("\n".join(lines) + "\n")


def run(root: Path) -> PipelineReport:
    with Workspace.open(root) as workspace:
        return run_pipeline(workspace, load_project(root), actor=OPERATOR)


def stage(report: PipelineReport, name: str) -> StageOutcome:
    return next(s for s in report.stages if s.name == name)


def test_every_line_is_a_row_or_a_reject_with_its_reason(tmp_path: Path) -> None:
    setup(tmp_path, LINES)
    report = run(tmp_path)
    ingest, validate = stage(report, "ingest:orders"), stage(report, "validate")
    assert [s.name for s in report.stages] == ["ingest:orders", "validate"]
    assert (ingest.rows_in, ingest.rows_out, ingest.rows_quarantined) == (5, 3, 2)
    assert ingest.lines_unaccounted == 0
    assert (validate.rows_in, validate.rows_out, validate.rows_quarantined) == (3, 2, 1)
    assert report.conserved
    with Workspace.open(tmp_path) as workspace:
        versions = {v.name: v for v in list_datasets(workspace)}
        rejected = read_dataset(workspace, versions["shop.rejected"]).collect().sort("_row")
        quarantined = read_dataset(workspace, versions["shop.quarantine"]).collect()
    assert rejected["_line"].to_list() == ["3,7,too,many", '4,8,"unclosed']
    reasons = [r[0] for r in rejected["_failed_checks"].to_list()]
    assert reasons[0].startswith("malformed_line: expected 3 fields")
    assert reasons[1].startswith("malformed_line: a quoted value spans lines")
    assert quarantined["_failed_checks"].to_list() == [["amount.min"]]


def test_an_unchanged_file_reuses_the_version_and_still_reports_its_counts(
    tmp_path: Path,
) -> None:
    setup(tmp_path, LINES)
    first = run(tmp_path)
    with Workspace.open(tmp_path) as workspace:
        before = len(list_datasets(workspace))
    again = run(tmp_path)
    assert "validate" not in again.executed
    assert again.final_dataset == first.final_dataset
    ingest = stage(again, "ingest:orders")
    assert (ingest.rows_in, ingest.rows_out, ingest.rows_quarantined) == (5, 3, 2)
    assert again.conserved
    with Workspace.open(tmp_path) as workspace:
        assert len(list_datasets(workspace)) == before  # an unchanged source adds nothing


def test_one_changed_byte_makes_a_new_version(tmp_path: Path) -> None:
    setup(tmp_path, LINES)
    first = run(tmp_path)
    setup(tmp_path, [*LINES[:-1], "5,8,ok"])  # same size, one byte differs
    again = run(tmp_path)
    assert "validate" in again.executed
    assert again.final_dataset != first.final_dataset


def test_the_fingerprint_is_taken_before_a_row_is_parsed(tmp_path: Path) -> None:
    setup(tmp_path, LINES)
    spec = SourceSpec(name="orders", uri="orders.csv")
    connector = CsvConnector(spec, base_dir=tmp_path)
    read = read_source(connector, spec, HarmonizeSpec(), None, tmp_path)
    assert read.pending is not None
    assert connector.rows_read is None  # nothing parsed yet
    assert not list(tmp_path.glob("*.parquet"))  # and no scratch copy written
    settled = read.settled()
    assert (settled.rows, settled.rejected_rows, settled.lines_unaccounted) == (3, 2, 0)
    assert settled.fingerprint == read.fingerprint
    assert read.settled() is settled  # counted once
