"""The metadata schema as SQLAlchemy 2 typed rows.

Rows are not entities: the store converts them to the frozen dataclasses of
``shipyard.store.entities`` before they leave it. The schema itself is created and evolved only
by the Alembic migrations in ``shipyard/store/migrations``; a test checks that the migrations
and these classes agree.

The classes read like SQLAlchemy's declarative ones (``Mapped[...]`` annotations, a
``mapped_column`` per column) but build plain Core ``Table`` objects: the store reads and
writes through Core only, and building declarative (ORM) classes, with ``sqlalchemy.orm``
imported for them, was a third of a read-only command's start-up (issue #17). ``RunRow.status``
is the table's column, ``RunRow.__table__`` the table, and ``sa.select(RunRow)`` selects it.

Conventions: times are epoch milliseconds in ``*_ms`` columns (BigInteger), durations are
seconds in ``*_seconds`` columns, sizes are ``*_bytes``. A NaN metric is stored as NULL, because
SQLite cannot hold NaN and PostgreSQL orders it above every number; both stores then behave alike.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped  # for the type checker only: `RunRow.x` is a column

ID = String(32)
KEY = String(250)


@dataclass(frozen=True)
class _ColumnSpec:
    """A column not yet named: ``Base`` builds it once it knows the attribute's name."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def mapped_column(*args: Any, **kwargs: Any) -> Any:
    """A column of a row class, as ``sqlalchemy.orm.mapped_column`` takes it (see ``Base``)."""
    return _ColumnSpec(args, kwargs)


class Base:
    """Base of every Shipyard row class: each subclass becomes one Core ``Table``.

    A subclass names its table (``__tablename__``), may add ``__table_args__`` (indexes,
    constraints) and declares columns as ``name: Mapped[T] = mapped_column(...)``. As with
    SQLAlchemy's declarative classes, a column is NULL-able exactly when ``T`` admits None
    and is not part of the primary key, unless ``nullable=`` says otherwise.
    """

    metadata: ClassVar[MetaData] = MetaData()
    __tablename__: ClassVar[str]
    __table__: ClassVar[Table]
    __table_args__: ClassVar[tuple[Any, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        annotations = inspect.get_annotations(cls)
        columns: list[Column[Any]] = []
        for name, spec in cls.__dict__.items():
            if not isinstance(spec, _ColumnSpec):
                continue
            kwargs = dict(spec.kwargs)
            if "nullable" not in kwargs:
                primary = kwargs.get("primary_key", False)
                kwargs["nullable"] = not primary and _admits_none(annotations[name])
            columns.append(Column(name, *spec.args, **kwargs))
        cls.__table__ = Table(cls.__tablename__, Base.metadata, *columns, *cls.__table_args__)
        for column in cls.__table__.columns:
            setattr(cls, column.key, column)

    @classmethod
    def __clause_element__(cls) -> Table:
        """The table: lets ``sa.select(RunRow)``, ``sa.insert(RunRow)`` ... take the class."""
        return cls.__table__


def _admits_none(annotation: object) -> bool:
    """Whether a (string, postponed) ``Mapped[...]`` annotation admits None."""
    text = str(annotation).replace(" ", "")
    inner = text[text.index("[") + 1 : text.rindex("]")]
    return "None" in inner.split("|")


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


def full_metadata() -> MetaData:
    """``Base.metadata`` with every table of the store, each domain's models imported now.

    The domain modules (``*_models``) are imported by the code that uses their tables, not
    here: declarative classes are costly to build, and a read-only command such as ``runs
    list`` should build only those it reads (issue #17). What walks every table (migrations'
    autogenerate, the erasure scan) asks for them all through this function.
    """
    from shipyard.store import (  # noqa: F401 - imported for their tables on Base.metadata
        cost_models,
        dataset_models,
        encryption_models,
        lease_models,
        monitor_models,
        registry_models,
        security_models,
        teamwork_models,
    )

    return Base.metadata
