"""Read one source for a pipeline run.

It returns the new rows, the lines that could not be read, the new watermark, the harmonized
schema, and a fingerprint for cache keys.

The delta a run reads (everything, or only rows past the last watermark) is streamed once into
a Parquet file in the run's scratch folder (LZ4, ``SCRATCH_OPTIONS``), never held whole in
memory, so it can be counted (from the file's footer), fingerprinted (the file's bytes; Polars
writes identical bytes for identical rows with the pinned options) and validated without
reading the source again. The raw watermark column is read before harmonization renames or
casts anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.ids import CHUNK_SIZE
from shipyard.data.connectors.base import open_connector
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

    @property
    def rejected_rows(self) -> int:
        """Lines the connector could not parse (they go to quarantine)."""
        return self.rejected.height


def read_source(
    connector: Connector,
    spec: SourceSpec,
    harmonize_spec: HarmonizeSpec,
    previous: SourceSnapshot | None,
    scratch: Path,
) -> SourceRead:
    """Read the source's new rows into ``scratch`` and harmonize them lazily over that file."""
    since = previous.watermark if (previous is not None and spec.watermark) else None
    path = scratch / f"{spec.name}.parquet"
    connector.scan(since).sink_parquet(path, **SCRATCH_OPTIONS)
    rejected = connector.rejected()
    raw = pl.scan_parquet(path)
    rows = int(raw.select(pl.len()).collect().item())
    watermark = previous.watermark if previous is not None else None
    if spec.watermark and rows:
        watermark = _json_value(raw.select(pl.col(spec.watermark).max()).collect().item())
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
    unaccounted = getattr(connector, "lines_unaccounted", None) or 0
    warnings = result.report.warnings
    if inferred:
        found = ", ".join(f"{name}: {kind}" for name, kind in inferred.items())
        warnings = (
            *warnings,
            f"column types inferred from the start of the file: {found} (declare "
            "csv.columns, or cast in harmonize, to read them otherwise)",
        )
    if unaccounted:
        warnings = (
            *warnings,
            f"{unaccounted} line(s) of source {spec.name!r} are neither a row nor a rejected "
            "record: please report this with the file",
        )
    return SourceRead(
        name=spec.name,
        frame=result.frame,
        rows=rows,
        rejected=rejected,
        watermark=watermark,
        schema=schema,
        fingerprint=_fingerprint(path, rejected),
        warnings=warnings,
        lines_unaccounted=unaccounted,
    )


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
    with open_connector(source, base_dir=project.root) as connector:
        read = read_source(
            connector,
            source,
            project.spec.harmonize_spec(name),
            None if full else previous,
            scratch,
        )
    if known is not None and read.rejected_rows:
        fresh = read.rejected.join(known, on=REJECT_KEY, how="anti", nulls_equal=True)
        read = dataclasses.replace(read, rejected=fresh)
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
