"""Rows for cost (budgets, serving meters) and storage retention.

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()``
loads them with the rest); created by migration ``0006_cost``.

Retention never deletes a run, dataset or model-version row: those stay as history (as an
erasure leaves them). A ``RetentionReleaseRow`` says that one of them no longer holds its blob,
so the blob garbage collector may delete the blob once nothing else refers to it. A sweep of
that collector is recorded before it deletes anything (``GcSweepRow`` + ``GcCandidateRow``), so
what it removed, and why, can be read back after a crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text

from shipyard.store.models import Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped


class RetentionReleaseRow(Base):
    """One reference given up by retention: a model version, a dataset version or a run."""

    __tablename__ = "retention_releases"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ref: Mapped[str] = mapped_column(String(250), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    released_ms: Mapped[int] = mapped_column(BigInteger)


class BlobTierRow(Base):
    """The storage tier a blob is priced at (``hot`` when absent)."""

    __tablename__ = "blob_tiers"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[str] = mapped_column(String(32))
    changed_ms: Mapped[int] = mapped_column(BigInteger)


class GcSweepRow(Base):
    """One run of the blob garbage collector: its mark, and what the sweep did."""

    __tablename__ = "gc_sweeps"

    sweep_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    started_ms: Mapped[int] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)
    grace_seconds: Mapped[float] = mapped_column(Float)
    blobs_seen: Mapped[int] = mapped_column(Integer)
    candidates: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)
    bytes_freed: Mapped[int] = mapped_column(BigInteger)


class GcCandidateRow(Base):
    """A blob the mark found unreferenced; ``deleted_ms`` is set once its file is gone."""

    __tablename__ = "gc_candidates"
    __table_args__ = (Index("ix_gc_candidates_digest", "digest"),)

    sweep_id: Mapped[str] = mapped_column(ForeignKey("gc_sweeps.sweep_id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    deleted_ms: Mapped[int | None] = mapped_column(BigInteger)
