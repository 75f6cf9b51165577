"""The dataset-version schema: versions, their lineage edges, cache keys and source snapshots.

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()``
loads them with the rest); created by migration ``0002_datasets``.

A dataset version is write-once: its id is a content hash (see ``shipyard.store.datasets``), so
writing the same data under the same name and kind again finds the existing row. Cache keys live
in their own table because one version may be produced under several keys (a refactored step
whose output did not change), and one key may produce several versions (a step's accepted and
quarantined rows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String

from shipyard.store.models import Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped

DIGEST = String(64)


class DatasetRow(Base):
    """One immutable version of a named dataset: a Parquet blob plus its schema and profile."""

    __tablename__ = "datasets"
    __table_args__ = (
        Index("ix_datasets_name_created", "name", "created_ms"),
        Index("ix_datasets_digest", "digest"),
        Index("ix_datasets_run", "run_id"),
    )

    dataset_id: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    name: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(DIGEST)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(BigInteger)
    schema: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.run_id"))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class DatasetParentRow(Base):
    """A lineage edge: ``dataset_id`` was derived from ``parent_id``."""

    __tablename__ = "dataset_parents"
    __table_args__ = (Index("ix_dataset_parents_parent", "parent_id"),)

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.dataset_id"), primary_key=True)
    parent_id: Mapped[str] = mapped_column(ForeignKey("datasets.dataset_id"), primary_key=True)


class DatasetCacheKeyRow(Base):
    """A cache key (hash of inputs, step code and params) under which a version was produced."""

    __tablename__ = "dataset_cache_keys"

    cache_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.dataset_id"), primary_key=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class SourceSnapshotRow(Base):
    """What one read of a source saw: its watermark and schema (incremental reads, drift)."""

    __tablename__ = "source_snapshots"
    __table_args__ = (
        Index("ix_source_snapshots_source_created", "source", "created_ms"),
        Index("ix_source_snapshots_dataset", "dataset_id"),
    )

    snapshot_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    source: Mapped[str] = mapped_column(String(250))
    watermark: Mapped[Any] = mapped_column(JSON, nullable=True)
    schema: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.dataset_id"))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.run_id"))
    created_ms: Mapped[int] = mapped_column(BigInteger)
