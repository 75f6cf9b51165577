"""Where the rows that did not make it go: quarantine versions, and lines seen before.

Rows that fail the contract become a ``<project>.quarantine`` version and lines no connector
could parse a ``<project>.rejected`` version, both with lineage, so every row read is accounted
for and can be inspected (``shipyard data quarantine``) instead of vanishing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from shipyard.data.datasets import read_dataset, store_dataset_file, write_dataset
from shipyard.privacy.exposure import RAW_LINE, RAW_LINE_KIND
from shipyard.store.datasets import DatasetStore

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.pipeline.ingest import SourceRead
    from shipyard.pipeline.project import Project
    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace

REJECT_KEY = ["_source", "_file", "_row", "_line"]
"""What identifies an unparseable line across runs: where it was, and its text."""


def write_quarantine(
    workspace: Workspace,
    project_name: str,
    reads: dict[str, SourceRead],
    quarantined: Path | None,
    run: ActiveRun,
    pii: dict[str, str],
) -> list[DatasetVersion]:
    """Store the contract's rejects and write the unparseable lines as quarantine versions.

    ``quarantined`` is the temporary Parquet file validation wrote the rejected rows to (None:
    none); the blob store may move it in.
    """
    written = []
    if quarantined is not None:
        written.append(
            store_dataset_file(
                workspace,
                quarantined,
                name=f"{project_name}.quarantine",
                kind="quarantine",
                run_id=run.run_id,
                lineage={"step": "validate"},
                pii=pii,
                scratch=True,  # validation's temporary file: the blob store may move it
            )
        )
    rejected = [r.rejected for r in reads.values() if r.rejected_rows]
    if rejected:
        written.append(
            write_dataset(
                workspace,
                pl.concat(rejected, how="diagonal_relaxed"),
                name=f"{project_name}.rejected",
                kind="quarantine",
                run_id=run.run_id,
                lineage={"step": "ingest"},
                # A line that did not parse is raw input no detector has read: tagged, its
                # profile keeps counts only and showing it needs data.read_pii.
                pii={**pii, RAW_LINE: RAW_LINE_KIND},
            )
        )
    return written


def known_rejects(workspace: Workspace, project: Project) -> pl.DataFrame | None:
    """Return the unparseable lines earlier runs already quarantined (incremental runs only).

    A watermark cannot filter lines that do not parse, so an incremental read meets them
    again; they are recognized by source, file, line number and text and not counted twice.
    """
    if not incremental(project):
        return None
    name = f"{project.spec.name}.rejected"
    earlier = DatasetStore(workspace.store).list_versions(name, kind="quarantine")
    if not earlier:
        return None
    frames = [read_dataset(workspace, v).select(REJECT_KEY) for v in earlier]
    return pl.concat(frames, how="vertical_relaxed").collect()


def incremental(project: Project) -> bool:
    """Whether any source reads incrementally (by watermark)."""
    return any(s.watermark for s in project.spec.sources.values())
