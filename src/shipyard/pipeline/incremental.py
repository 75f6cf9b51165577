"""Incremental runs where watermarked sources sit beside sources without a watermark.

A source with a ``watermark`` yields only its new rows, which are appended to the previous
``<project>.validated`` version. A source without one is read whole on every run; appending it
again would duplicate its rows at every run (issue 16). So each such source's content hash (the
fingerprint of what was read, ``ingest.SourceRead.fingerprint``) is recorded in the lineage of
the validated version it went into, and the next run compares:

- **unchanged**: the source adds nothing. As a union member its rows are already in the
  previous version, so it contributes no row; as the right side of a join or an as-of join it
  is still the lookup table the new rows are joined with. With nothing new anywhere else the
  previous version (and every step after it) is reused.
- **changed** (or no hash recorded): the previous version holds rows that may no longer be
  true, so this run is a **rebuild**: every watermarked source is read from its start and the
  validated version is written from the full reads, not appended to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from shipyard.data.combine import CombineSpec
    from shipyard.pipeline.ingest import SourceRead
    from shipyard.pipeline.project import ProjectFile
    from shipyard.store.datasets import DatasetVersion

__all__ = ["CONTENT", "changed_sources", "contributing_frames", "recorded_content", "whole_sources"]

CONTENT = "content"
"""The validated version's lineage key: source name -> content hash of its whole read."""


def whole_sources(spec: ProjectFile) -> list[str]:
    """The sources read whole on every run (no watermark), in declared order."""
    return [name for name, source in spec.sources.items() if not source.watermark]


def recorded_content(version: DatasetVersion | None) -> dict[str, str]:
    """The content hashes recorded with ``version`` (empty when none were)."""
    recorded = (version.lineage or {}).get(CONTENT) if version is not None else None
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def changed_sources(
    previous: DatasetVersion | None, reads: dict[str, SourceRead], whole: list[str]
) -> list[str]:
    """The whole-read sources whose content differs from what ``previous`` recorded."""
    if previous is None:
        return []
    recorded = recorded_content(previous)
    return [name for name in whole if recorded.get(name) != reads[name].fingerprint]


def contributing_frames(
    reads: dict[str, SourceRead], unchanged: set[str], combine: CombineSpec | None
) -> dict[str, pl.LazyFrame]:
    """Every source's frame, with no row from an unchanged source that is a union member."""
    lookups: set[str] = set()
    if combine is not None:
        lookups = {j.source for j in combine.join} | {a.source for a in combine.asof}
    return {
        name: read.frame.limit(0) if name in unchanged and name not in lookups else read.frame
        for name, read in reads.items()
    }
