"""Read one source for a pipeline run.

It returns the new rows, the lines that could not be read, the new watermark, the harmonized
schema, and a fingerprint for cache keys.

Two ways, by source:

- **Direct** (a CSV source without a watermark: read whole on every run): the fingerprint is
  taken from the files' bytes before a row is parsed, and the harmonized scan goes to the
  validate stage as it is, so the file is parsed once, by the query that writes the validated
  and quarantined versions (issue 17: a scratch copy written and read back cost about a
  quarter of the run). The counts (rows, rejected lines, lines unaccounted for) are known once
  that query ran; ``SourceRead.settled`` collects them then, or, where the validate stage was
  served from cache, counts the rows with a scan of their own.
- **Scratch** (every other source, and a CSV source read past a watermark): the delta a run
  reads (everything, or only rows past the last watermark) is streamed once into a Parquet
  file in the run's scratch folder (LZ4, ``SCRATCH_OPTIONS``), never held whole in memory, so
  it can be counted (from the file's footer), fingerprinted (the file's bytes; Polars writes
  identical bytes for identical rows with the pinned options) and validated without reading
  the source again. A database or an API has no bytes to hash, and an incremental run must
  know before validating whether anything is new. The raw watermark column is read before
  harmonization renames or casts anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.executor import executor_for
from shipyard.core.ids import CHUNK_SIZE
from shipyard.data.connectors.base import REJECTED_SCHEMA, open_connector
from shipyard.data.connectors.csv import CsvConnector
from shipyard.data.datasets import WRITE_OPTIONS
from shipyard.data.dtypes import type_name
from shipyard.data.harmonize import harmonize
from shipyard.data.schema_drift import SchemaSnapshot, apply_drift_policy, detect_drift
from shipyard.pipeline.quarantine import REJECT_KEY
from shipyard.store.datasets import DatasetStore

#: The scratch file is read whole once, by the validate stage, then deleted: LZ4 writes and
#: reads it for about 0.5 CPU-s less than zstd per 2M rows x 12 columns (issue 17), at 1.3x the
#: size, and no statistics are needed to skip parts of it. Every setting is pinned: its bytes
#: are the source's fingerprint.
SCRATCH_OPTIONS: dict[str, Any] = {
    **{k: v for k, v in WRITE_OPTIONS.items() if k != "compression_level"},
    "compression": "lz4",
    "statistics": False,
}

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from shipyard.core.executor import Executor
    from shipyard.data.connectors.base import Connector, SourceSpec
    from shipyard.data.harmonize import HarmonizeSpec
    from shipyard.pipeline.project import Project
    from shipyard.store.datasets import SourceSnapshot
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace


@dataclass(frozen=True)
class SourceRead:
    """What one run read from one source."""

    name: str
    frame: pl.LazyFrame
    rows: int
    rejected: pl.DataFrame
    watermark: Any
    schema: list[dict[str, str]]
    fingerprint: str
    warnings: tuple[str, ...] = ()
    lines_unaccounted: int = 0  # lines the connector read that are neither rows nor rejects
    seconds: float = 0.0
    #: Direct reads: the counts still to collect (``settled``); None once known.
    pending: PendingCounts | None = field(default=None, compare=False)

    @property
    def rejected_rows(self) -> int:
        """Lines the connector could not parse (they go to quarantine)."""
        return self.rejected.height

    def settled(self) -> SourceRead:
        """This read with its counts known (a direct read's come from its connector's scan).

        Call it after the query that consumed ``frame`` ran; if none did (the validate stage
        was served from cache), the rows are counted by a scan of their own.
        """
        return self if self.pending is None else self.pending.settle(self)


@dataclass(eq=False)
class PendingCounts:
    """A direct read's connector, whose counts are known once a scan of it was collected.

    ``known``: the lines earlier runs already rejected, not counted again. The settled read is
    kept, so settling twice scans at most once.
    """

    connector: Connector
    scan: pl.LazyFrame
    known: pl.DataFrame | None
    result: SourceRead | None = None

    def settle(self, read: SourceRead) -> SourceRead:
        """Return ``read`` with the rows, rejected lines and unaccounted lines filled in."""
        if self.result is not None:
            return self.result
        connector = self.connector
        if getattr(connector, "rows_read", None) is None:
            # Nothing consumed the scan (a cached validate): count what it holds.
            self.scan.select(pl.len()).collect(engine="streaming")
        rejected = _fresh_rejects(connector.rejected(), self.known)
        unaccounted = getattr(connector, "lines_unaccounted", None) or 0
        warnings = read.warnings
        if unaccounted:
            warnings = (*warnings, _unaccounted_warning(unaccounted, read.name))
        self.result = dataclasses.replace(
            read,
            rows=int(getattr(connector, "rows_read", 0) or 0),
            rejected=rejected,
            warnings=warnings,
            lines_unaccounted=unaccounted,
            pending=None,
        )
        return self.result


def read_source(
    connector: Connector,
    spec: SourceSpec,
    harmonize_spec: HarmonizeSpec,
    previous: SourceSnapshot | None,
    scratch: Path,
    known: pl.DataFrame | None = None,
    executor: Executor | None = None,
) -> SourceRead:
    """Read the source's new rows: directly, or into ``scratch`` (see the module docstring).

    ``known``: lines earlier runs already rejected, left out of ``rejected``. ``executor``
    other than ``local`` reads a CSV source of several files one file per task
    (``csv_parallel``) into scratch files, one per source file, fingerprinted by their bytes.
    """
    since = previous.watermark if (previous is not None and spec.watermark) else None
    watermark = previous.watermark if previous is not None else None
    files = None if spec.watermark else _content_files(connector)
    pending: PendingCounts | None = None
    unaccounted: int | None = None
    if (
        files is not None
        and len(files) > 1
        and executor is not None
        and executor.name != "local"
        and isinstance(connector, CsvConnector)
    ):
        from shipyard.data.connectors.csv_parallel import read_files_on

        parts = read_files_on(executor, connector)
        paths = [scratch / f"{spec.name}-{i:05d}.parquet" for i in range(len(parts.frames))]
        for path, part in zip(paths, parts.frames, strict=True):
            part.lazy().sink_parquet(path, **SCRATCH_OPTIONS)
        raw = pl.scan_parquet(paths)
        rows, rejected = parts.rows, _fresh_rejects(parts.rejected, known)
        fingerprint = _files_fingerprint(files)
        if not connector.options.newlines_in_values:
            unaccounted = parts.lines - parts.rows - parts.rejected.height
    elif files is not None:
        raw = connector.scan(since)
        pending = PendingCounts(connector, raw, known)
        rows, rejected = 0, pl.DataFrame(schema=REJECTED_SCHEMA)
        fingerprint = _files_fingerprint(files)
    else:
        path = scratch / f"{spec.name}.parquet"
        connector.scan(since).sink_parquet(path, **SCRATCH_OPTIONS)
        rejected = _fresh_rejects(connector.rejected(), known)
        raw = pl.scan_parquet(path)
        rows = int(raw.select(pl.len()).collect().item())
        if spec.watermark and rows:
            watermark = _json_value(raw.select(pl.col(spec.watermark).max()).collect().item())
        fingerprint = _fingerprint(path, connector.rejected())
    result = harmonize(
        raw,
        harmonize_spec,
        source=spec.name,
        on_schema_drift=spec.on_schema_drift,
        count=False,
    )
    inferred = _inferred(connector, harmonize_spec)
    schema = [
        {"name": name, "type": type_name(dtype)}
        | ({"inferred": inferred[name]} if name in inferred else {})
        for name, dtype in result.frame.collect_schema().items()
        if not name.startswith("_")
    ]
    if unaccounted is None:
        unaccounted = getattr(connector, "lines_unaccounted", None) or 0
    warnings = result.report.warnings
    if inferred:
        found = ", ".join(f"{name}: {kind}" for name, kind in inferred.items())
        warnings = (
            *warnings,
            f"column types inferred from the start of the file: {found} (declare "
            "csv.columns, or cast in harmonize, to read them otherwise)",
        )
    if unaccounted and pending is None:
        warnings = (*warnings, _unaccounted_warning(unaccounted, spec.name))
    return SourceRead(
        name=spec.name,
        frame=result.frame,
        rows=rows,
        rejected=rejected,
        watermark=watermark,
        schema=schema,
        fingerprint=fingerprint,
        warnings=warnings,
        lines_unaccounted=unaccounted if pending is None else 0,
        pending=pending,
    )


def _unaccounted_warning(lines: int, source: str) -> str:
    return (
        f"{lines} line(s) of source {source!r} are neither a row nor a rejected record: "
        "please report this with the file"
    )


def _fresh_rejects(rejected: pl.DataFrame, known: pl.DataFrame | None) -> pl.DataFrame:
    """``rejected`` without the lines an earlier run already rejected (``known``)."""
    if known is None or not rejected.height:
        return rejected
    return rejected.join(known, on=REJECT_KEY, how="anti", nulls_equal=True)


def _content_files(connector: Connector) -> list[Path] | None:
    """The files whose bytes alone decide what ``connector`` reads, or None (read to scratch)."""
    files = getattr(connector, "content_files", None)
    return None if files is None else list(files())


def _files_fingerprint(files: list[Path]) -> str:
    """A SHA-256 over each file's name, size and bytes, in the order the connector reads them.

    With the source's spec (in the validate stage's key) and the code, the bytes decide every
    row and rejected line, so they fingerprint the read before a row is parsed.
    """
    digest = hashlib.sha256(b"files v1\n")
    for path in files:
        digest.update(f"\nfile {path.name} {path.stat().st_size}\n".encode())
        with path.open("rb") as data:
            for chunk in iter(lambda: data.read(CHUNK_SIZE), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _inferred(connector: Connector, spec: HarmonizeSpec) -> dict[str, str]:
    """The connector's inferred column types, by harmonized (renamed) column name."""
    found: dict[str, str] = getattr(connector, "inferred", None) or {}
    return {spec.rename.get(name, name): kind for name, kind in found.items()}


def read_checked(
    workspace: Workspace,
    project: Project,
    run: ActiveRun,
    name: str,
    known: pl.DataFrame | None,
    scratch: Path,
    notify: Callable[[str, str], None],
    *,
    full: bool,
) -> SourceRead:
    """Read one source (``full``: from its start, past any watermark) and check its drift.

    Lines an earlier run already rejected (``known``) are not counted again; schema drift is
    applied by the source's policy (``adapt`` notes it on ``run``).
    """
    source = project.spec.sources[name]
    notify(f"ingest:{name}", "start")
    started = time.perf_counter()
    previous = DatasetStore(workspace.store).latest_snapshot(name)
    # Not closed here: a direct read's connector is scanned by the validate stage (file
    # connectors hold nothing open between scans).
    connector = open_connector(source, base_dir=project.root)
    settings = workspace.settings.executor
    executor = executor_for(settings) if settings.kind != "local" else None
    try:
        read = read_source(
            connector,
            source,
            project.spec.harmonize_spec(name),
            None if full else previous,
            scratch,
            known,
            executor,
        )
    except BaseException:
        connector.close()
        raise
    if read.pending is None:
        connector.close()
    drift = detect_drift(_snapshot(previous.schema) if previous else None, _snapshot(read.schema))
    warnings = apply_drift_policy(drift, source.on_schema_drift, source=name)
    for warning in warnings:
        run.add_note(f"schema drift (adapted): {warning}")
    read = dataclasses.replace(
        read,
        warnings=(*warnings, *read.warnings),
        seconds=time.perf_counter() - started,
    )
    notify(f"ingest:{name}", "done")
    return read


def _snapshot(schema: list[dict[str, str]]) -> SchemaSnapshot:
    return SchemaSnapshot(tuple((column["name"], column["type"]) for column in schema))


def _fingerprint(path: Path, rejected: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    buffer = io.BytesIO()
    rejected.write_ipc(buffer, compression="uncompressed")
    digest.update(buffer.getvalue())
    return digest.hexdigest()


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return value
