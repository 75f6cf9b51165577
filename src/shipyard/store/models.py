"""The metadata schema as SQLAlchemy 2 typed rows.

Rows are not entities: the store converts them to the frozen dataclasses of
``shipyard.store.entities`` before they leave it. The schema itself is created and evolved only
by the Alembic migrations in ``shipyard/store/migrations``; a test checks that the migrations
and these classes agree.

Conventions: times are epoch milliseconds in ``*_ms`` columns (BigInteger), durations are
seconds in ``*_seconds`` columns, sizes are ``*_bytes``. A NaN metric is stored as NULL, because
SQLite cannot hold NaN and PostgreSQL orders it above every number; both stores then behave alike.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(32)
KEY = String(250)


class Base(DeclarativeBase):
    """Declarative base of every Shipyard table."""


class ExperimentRow(Base):
    """A named group of runs."""

    __tablename__ = "experiments"

    experiment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(250), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class RunRow(Base):
    """One execution of tracked code, with its environment and resource use."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_experiment_start", "experiment_id", "start_ms"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_parent", "parent_run_id"),
    )

    run_id: Mapped[str] = mapped_column(ID, primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.experiment_id"))
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.run_id"))
    name: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_ms: Mapped[int] = mapped_column(BigInteger)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    pid_started_ms: Mapped[int] = mapped_column(BigInteger)
    user: Mapped[str] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    git_dirty: Mapped[bool | None] = mapped_column(Boolean)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    cpu_user_seconds: Mapped[float | None] = mapped_column(Float)
    cpu_system_seconds: Mapped[float | None] = mapped_column(Float)
    children_cpu_user_seconds: Mapped[float | None] = mapped_column(Float)
    children_cpu_system_seconds: Mapped[float | None] = mapped_column(Float)
    peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)


class ParamRow(Base):
    """A write-once parameter of a run, stored as text."""

    __tablename__ = "params"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TagRow(Base):
    """A mutable label of a run."""

    __tablename__ = "tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MetricRow(Base):
    """One logged value of a metric; the full history, append-only."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    metric_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ID)
    key: Mapped[str] = mapped_column(KEY)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class LatestMetricRow(Base):
    """The value at the highest step of each metric of a run, kept for fast search."""

    __tablename__ = "latest_metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class ArtifactRow(Base):
    """A logical name in a run pointing at a content-addressed blob."""

    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_digest", "digest"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(255))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class NoteRow(Base):
    """A free-text note on a run, for collaboration."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_run", "run_id"),)

    note_id: Mapped[str] = mapped_column(ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"))
    author: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)


from shipyard.store import cost_models as _cost_models  # noqa: E402, F401 - on Base.metadata
from shipyard.store import dataset_models as _dataset_models  # noqa: E402, F401 - on Base.metadata
from shipyard.store import encryption_models as _encryption  # noqa: E402, F401 - on Base.metadata
from shipyard.store import monitor_models as _monitor_models  # noqa: E402, F401 - on Base.metadata
from shipyard.store import registry_models as _registry_models  # noqa: E402, F401 - on Base.metadata
from shipyard.store import security_models as _security_models  # noqa: E402, F401 - on Base.metadata
