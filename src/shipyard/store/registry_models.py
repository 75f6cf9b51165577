"""The model-registry schema: registered models, immutable versions, aliases and their history.

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()``
loads them with the rest); created by migration ``0003_model_registry``. A version row is
written once; an alias row is the only thing that moves, and every move (or refused move) leaves
an event row in the same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, ForeignKey, ForeignKeyConstraint, Index, Integer, String

from shipyard.store.models import Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped

NAME = String(100)


class RegisteredModelRow(Base):
    """A model name under which versions are registered."""

    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    description: Mapped[str | None] = mapped_column(String(2000))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class ModelVersionRow(Base):
    """One immutable version: a bundle blob (by sha256) and what it was measured to do."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_run", "run_id"),)

    name: Mapped[str] = mapped_column(ForeignKey("registered_models.name"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[str | None] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(16))
    primary_metric: Mapped[str] = mapped_column(String(50))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(2000))
    created_by: Mapped[str] = mapped_column(String(200))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class ModelAliasRow(Base):
    """Where an alias points now."""

    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["name", "version"], ["model_versions.name", "model_versions.version"]
        ),
    )

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    alias: Mapped[str] = mapped_column(NAME, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class AliasEventRow(Base):
    """One alias move or refused promotion: who, when, why, and the gate's numbers."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_name_alias", "name", "alias", "event_id"),)

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    name: Mapped[str] = mapped_column(NAME)
    alias: Mapped[str] = mapped_column(NAME)
    action: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(2000))
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
