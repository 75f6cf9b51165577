"""The dataset records users see: frozen, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The kinds of dataset version: accepted rows, or rows a contract rejected.
KINDS = ("data", "quarantine")


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable version of a named dataset.

    Attributes:
        dataset_id: 64 hex characters; see ``shipyard.data.datasets`` for what it hashes.
        name: The logical dataset name (``orders.clean``).
        kind: ``data``, or ``quarantine`` for rows a contract rejected.
        digest: SHA-256 of the Parquet blob in the blob store.
        size_bytes: Size of that blob.
        row_count: Number of rows.
        schema: Columns in order, each ``{"name": ..., "type": ...}``.
        profile: The column profile as JSON (``shipyard.data.profile.Profile.to_dict``).
        lineage: Free-form JSON the producer attached (step name, params, ...), or None.
        run_id: The run that produced it, if any.
        created_ms: When it was first written.
        parent_ids: Versions it was derived from, sorted.
    """

    dataset_id: str
    name: str
    kind: str
    digest: str
    size_bytes: int
    row_count: int
    schema: list[dict[str, str]]
    profile: dict[str, Any]
    lineage: dict[str, Any] | None
    run_id: str | None
    created_ms: int
    parent_ids: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        """The first 12 characters of the id, for display."""
        return self.dataset_id[:12]


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """What one read of a source saw.

    Attributes:
        snapshot_id: Increasing number; breaks ties between snapshots of the same millisecond.
        source: The source name in the project file.
        watermark: The highest watermark value read (JSON), None when not incremental.
        schema: Observed columns in order, each ``{"name": ..., "type": ...}``.
        row_count: Rows read, when known.
        dataset_id: The dataset version the read produced, when there is one.
        run_id: The run that read it, when there is one.
        created_ms: When the read finished.
    """

    snapshot_id: int
    source: str
    watermark: Any
    schema: list[dict[str, str]]
    row_count: int | None
    dataset_id: str | None
    run_id: str | None
    created_ms: int
