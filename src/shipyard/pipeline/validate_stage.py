"""The validate stage: combine the sources' reads, check the contract, append to the last version.

Its key holds the contract, the ``combine:`` section, the sources' specs, a fingerprint of each
source (its files' bytes for a direct read, else what it returned, see ``pipeline.ingest``), the
version appended to (incremental runs) and the code this module
imports at run time. That includes ``pipeline.ingest``: the frames this stage collects were
harmonized lazily there, so harmonization is part of this stage's work.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import InvalidData
from shipyard.data.combine import combine
from shipyard.data.contract import Contract
from shipyard.data.datasets import (
    WRITE_OPTIONS,
    find_cached,
    public_columns,
    read_dataset,
    store_dataset_file,
)
from shipyard.data.validate import Output, validate_to_parquet
from shipyard.pipeline.incremental import CONTENT, contributing_frames, whole_sources

# Imported at run time on purpose (not under TYPE_CHECKING): it puts ingest's harmonization in
# this stage's code hash (pipeline.code_hash follows run-time imports only).
from shipyard.pipeline.ingest import SourceRead  # noqa: TC001
from shipyard.pipeline.quarantine import write_quarantine
from shipyard.pipeline.stage import DatasetResult
from shipyard.privacy.detect import ingest_tags

if TYPE_CHECKING:
    import datetime as dt

    from shipyard.pipeline.project import ProjectFile
    from shipyard.pipeline.stage import StageRun
    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.workspace import Workspace


@dataclass(frozen=True)
class ValidateStage:
    """Validate ``reads`` into ``<project>.validated``.

    ``previous`` is the version new rows are appended to (None: write from these reads alone);
    ``unchanged`` the sources read whole whose content matches what ``previous`` recorded. An
    incremental run that read nothing new reuses ``previous``.
    """

    spec: ProjectFile
    reads: dict[str, SourceRead]
    previous: DatasetVersion | None
    unchanged: frozenset[str]
    now: dt.datetime
    kind: str = "validate"
    label: str = "validate"

    @property
    def params(self) -> Any:
        """The contract, ``combine:``, the sources' specs and what each source returned."""
        spec = self.spec
        return {
            "contract": _dump(spec.contract),
            "combine": _dump(spec.combine),
            "sources": {n: _dump(s) for n, s in spec.sources.items()},
            "reads": {n: r.fingerprint for n, r in self.reads.items()},
        }

    @property
    def inputs(self) -> list[str]:
        """The version appended to, if any."""
        return [self.previous.dataset_id] if self.previous else []

    def find(self, workspace: Workspace, key: str) -> DatasetResult | None:
        """Return the version written under ``key``, or ``previous`` when nothing is new."""
        cached = find_cached(workspace, key)
        if (
            cached is None
            and self.previous is not None
            and not any(
                r.pending is not None or r.rows or r.rejected_rows
                for n, r in self.reads.items()
                if n not in self.unchanged
            )
        ):
            cached = self.previous  # incremental run with nothing new: the last version stands
        return None if cached is None else DatasetResult(cached, 0, cached.row_count)

    def run(self, context: StageRun) -> DatasetResult:
        """Combine, validate, append; write the validated and quarantine versions in one pass."""
        workspace, child, spec, reads = context.workspace, context.run, self.spec, self.reads
        previous = self.previous
        frames = contributing_frames(reads, set(self.unchanged), spec.combine)
        combined = combine(frames, spec.combine) if spec.combine else _single(frames)
        pii = ingest_tags(combined)
        before = read_dataset(workspace, previous) if previous is not None else None

        def shape(accepted: pl.LazyFrame) -> pl.LazyFrame:
            # What write_dataset would store: no bookkeeping columns, the appended-to rows first.
            kept = accepted.select(public_columns(accepted))
            return kept if before is None else pl.concat([before, kept], how="diagonal_relaxed")

        # One query checks the rows and writes both outputs (issue 17: a collect per output
        # read the sources three times); the files are then stored as versions as written.
        with tempfile.TemporaryDirectory(prefix="shipyard-validate-") as tmp:
            accepted_path, quarantined_path = Path(tmp, "accepted"), Path(tmp, "quarantined")
            checks = validate_to_parquet(
                combined,
                spec.contract or Contract(),
                accepted_path,
                quarantined_path,
                now=self.now,
                output=Output(shape, WRITE_OPTIONS),
            )
            version = store_dataset_file(
                workspace,
                accepted_path,
                name=f"{spec.name}.validated",
                parents=[previous] if previous else [],
                cache_key=context.key,
                run_id=child.run_id,
                lineage={
                    "step": "validate",
                    "sources": sorted(reads),
                    CONTENT: {n: reads[n].fingerprint for n in whole_sources(spec)},
                },
                pii=pii,
                scratch=True,  # the blob store may move it in (the temp folder goes anyway)
            )
            # Direct reads were parsed by the query above: their rejected lines are known now.
            quarantined = write_quarantine(
                workspace,
                spec.name,
                {name: read.settled() for name, read in reads.items()},
                quarantined_path if checks.rows_quarantined else None,
                child,
                pii,
            )
        child.log_metrics(
            {
                "rows_in": checks.rows_in,
                "rows_accepted": checks.rows_accepted,
                "rows_quarantined": checks.rows_quarantined,
            }
        )
        child.log_artifact(
            json.dumps(checks.to_dict(), default=str).encode(), name="validation.json"
        )
        return DatasetResult(
            version,
            checks.rows_in,
            checks.rows_accepted,
            checks.rows_quarantined,
            warnings=tuple(
                f"{check}: {rows} row(s) (policy warn)" for check, rows in checks.warnings.items()
            ),
            quarantine=tuple(quarantined),
        )


def _single(frames: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    if len(frames) != 1:
        raise InvalidData(
            f"{len(frames)} sources but no `combine:` section; say how to combine them "
            "(union, join or asof), see docs/data.md"
        )
    return next(iter(frames.values()))


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json", by_alias=True)
