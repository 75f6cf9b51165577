"""A CSV source of many files read one file per executor task (``executor: ray``).

The driver makes the scan's plan once (files, header names, column types: ``CsvConnector.plan``)
and each worker reads one file with exactly the reader a local scan uses
(``CsvConnector.file_batches``), numbering its records from 0. The driver then numbers them on
from the files before, in the order a local scan reads the files, so the rows, their ``_row``
numbers and the rejected records with their reasons are the ones a local scan gives, and the
dataset written from them has the same content hash. Workers read the files by path: on a
cluster the path must be shared storage (or the source an object-store URL they can read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from shipyard.core.errors import InvalidData, Unavailable
from shipyard.data.connectors.base import ROW, rejected_frame
from shipyard.data.connectors.csv import CsvConnector

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.core.executor import Executor
    from shipyard.data.connectors.base import SourceSpec
    from shipyard.data.connectors.csv_records import Rejected


@dataclass(frozen=True)
class _Plan:
    spec: SourceSpec
    base_dir: Path
    names: list[str]
    types: dict[str, pl.DataType]
    schema: dict[str, pl.DataType]


@dataclass(frozen=True)
class FileRead:
    """One file's rows and rejected records (numbered from 0), records and data lines."""

    frame: pl.DataFrame
    rejected: pl.DataFrame
    records: int
    lines: int


@dataclass(frozen=True)
class FilesRead:
    """Every file's rows and rejects, numbered as one scan numbers them."""

    frames: list[pl.DataFrame]
    rejected: pl.DataFrame
    rows: int
    lines: int


def read_file(plan: _Plan, path: Path) -> FileRead:
    """Read one file where the task runs (a fresh connector: nothing shared but the plan)."""
    connector = CsvConnector(plan.spec, base_dir=plan.base_dir)
    rejected: list[Rejected] = []
    frames: list[pl.DataFrame] = []
    records = lines = 0
    if path.stat().st_size:
        batches = connector.file_batches(path, plan.names, plan.types, 0, rejected)
        while True:
            try:
                frames.append(next(batches))
            except StopIteration as done:
                records, lines = done.value
                break
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=plan.schema)
    return FileRead(frame, rejected_frame(rejected), records, lines)


def read_files_on(executor: Executor, connector: CsvConnector) -> FilesRead:
    """Read every file of ``connector``'s source as one task each; results in file order.

    Raises:
        InvalidData: A file cannot be read as the source's CSV (the reason names it).
        Unavailable: A file's task failed on the cluster.
    """
    files, names, types, schema = connector.plan()
    plan = _Plan(connector.spec, connector.base_dir, names, types, schema)
    results = executor.map(read_file, plan, files)
    frames, rejects = [], []
    first_row = rows = lines = 0
    for path, result in zip(files, results, strict=True):
        read = result.value
        if read is None:
            error = f"source {connector.spec.name!r}: {path.name}: {result.error}"
            if (result.error or "").startswith("InvalidData"):
                raise InvalidData(error)
            raise Unavailable(f"{error}; nothing was ingested, run it again")
        frames.append(read.frame.with_columns(pl.col(ROW) + first_row))
        rejects.append(read.rejected.with_columns(pl.col(ROW) + first_row))
        first_row += read.records
        rows += read.frame.height
        lines += read.lines
    return FilesRead(frames, pl.concat(rejects).sort(ROW), rows, lines)
