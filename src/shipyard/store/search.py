"""Run search: the parsed filter language compiled to one SQL statement, then 4 bulk loads.

Filters on metrics use each run's latest value (``latest_metrics``); a comparison on a metric,
param or tag only matches runs that have that key. Params and tags are text: compared with a
number they are read as numbers where they look like one (and never match where they don't),
identically on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.store.engine import NUMBER_PATTERN
from shipyard.store.entities import Resources, Run, RunStatus
from shipyard.store.filters import And, Comparison, Field, Not, Or
from shipyard.store.models import (
    ExperimentRow,
    LatestMetricRow,
    ParamRow,
    RunRow,
    TagRow,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shipyard.store.filters import Expr, OrderKey
    from shipyard.store.sql import SqlStore

_ATTRIBUTES: dict[str, Any] = {
    "run_id": RunRow.run_id,
    "name": RunRow.name,
    "status": RunRow.status,
    "experiment": ExperimentRow.name,
    "start_time": RunRow.start_ms,
    "end_time": RunRow.end_ms,
    "parent_run_id": RunRow.parent_run_id,
    "host": RunRow.host,
}
_LOAD_CHUNK = 5_000


def status_is(status: RunStatus) -> Comparison:
    """Return the filter ``status = '<status>'``."""
    return Comparison(Field("attributes", "status"), "=", status.value)


def search_runs(
    engine: sa.Engine,
    where: Expr | None,
    *,
    experiments: Sequence[str] | None,
    order_by: Sequence[OrderKey],
    limit: int | None,
    offset: int = 0,
) -> list[Run]:
    """Return the runs matching ``where``, ordered, with params, tags and latest metrics.

    ``offset`` skips that many runs of the ordered result (the web UI's pages): the order
    always ends on the run id, so pages never overlap or skip a run.
    """
    query = _matching(engine, sa.select(RunRow.run_id), where, experiments)
    for key in order_by:
        column = _order_column(key.field)
        query = query.order_by(
            column.desc().nulls_last() if key.descending else column.asc().nulls_last()
        )
    query = query.order_by(RunRow.start_ms.desc(), RunRow.run_id)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    with engine.connect() as connection:
        run_ids = list(connection.execute(query).scalars())
    return load_runs(engine, run_ids)


def count_runs(store: SqlStore, where: Expr | None, *, experiments: Sequence[str] | None) -> int:
    """How many runs match ``where`` (the web UI's page count), with the same SQL filter."""
    engine = store.engine
    query = _matching(engine, sa.select(sa.func.count(RunRow.run_id)), where, experiments)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _matching(
    engine: sa.Engine,
    query: sa.Select[Any],
    where: Expr | None,
    experiments: Sequence[str] | None,
) -> sa.Select[Any]:
    query = query.select_from(RunRow).join(
        ExperimentRow, ExperimentRow.experiment_id == RunRow.experiment_id
    )
    if experiments:
        query = query.where(ExperimentRow.name.in_(list(experiments)))
    if where is not None:
        query = query.where(_compile(where, engine.dialect.name))
    return query


def load_runs(engine: sa.Engine, run_ids: Sequence[str]) -> list[Run]:
    """Load whole runs for ``run_ids``, keeping their order."""
    loaded: dict[str, Run] = {}
    with engine.connect() as connection:
        for start in range(0, len(run_ids), _LOAD_CHUNK):
            chunk = list(run_ids[start : start + _LOAD_CHUNK])
            loaded.update(_load_chunk(connection, chunk))
    return [loaded[r] for r in run_ids if r in loaded]


def _load_chunk(connection: sa.Connection, run_ids: list[str]) -> dict[str, Run]:
    params: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    tags: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    metrics: dict[str, dict[str, float]] = {r: {} for r in run_ids}
    for table, into in ((ParamRow, params), (TagRow, tags)):
        for run_id, key, text in connection.execute(
            sa.select(table.run_id, table.key, table.value).where(table.run_id.in_(run_ids))
        ):
            into[run_id][key] = text
    for run_id, key, number in connection.execute(
        sa.select(LatestMetricRow.run_id, LatestMetricRow.key, LatestMetricRow.value).where(
            LatestMetricRow.run_id.in_(run_ids)
        )
    ):
        metrics[run_id][key] = math.nan if number is None else number
    rows = connection.execute(
        sa.select(*RunRow.__table__.c, ExperimentRow.name.label("experiment_name"))
        .join(ExperimentRow, ExperimentRow.experiment_id == RunRow.experiment_id)
        .where(RunRow.run_id.in_(run_ids))
    ).all()
    return {row.run_id: _to_run(row, params, tags, metrics) for row in rows}


def _to_run(
    row: Any,
    params: dict[str, dict[str, str]],
    tags: dict[str, dict[str, str]],
    metrics: dict[str, dict[str, float]],
) -> Run:
    return Run(
        run_id=row.run_id,
        experiment_id=row.experiment_id,
        experiment=row.experiment_name,
        name=row.name,
        status=RunStatus(row.status),
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        heartbeat_ms=row.heartbeat_ms,
        parent_run_id=row.parent_run_id,
        host=row.host,
        pid=row.pid,
        pid_started_ms=row.pid_started_ms,
        user=row.user,
        error=row.error,
        git_commit=row.git_commit,
        git_dirty=row.git_dirty,
        environment=row.environment or {},
        resources=Resources(
            wall_seconds=row.wall_seconds,
            cpu_user_seconds=row.cpu_user_seconds,
            cpu_system_seconds=row.cpu_system_seconds,
            children_cpu_user_seconds=row.children_cpu_user_seconds,
            children_cpu_system_seconds=row.children_cpu_system_seconds,
            peak_rss_bytes=row.peak_rss_bytes,
        ),
        params=params[row.run_id],
        tags=tags[row.run_id],
        metrics=metrics[row.run_id],
    )


def _compile(expr: Expr, dialect: str) -> sa.ColumnElement[bool]:
    if isinstance(expr, And):
        return sa.and_(*(_compile(item, dialect) for item in expr.items))
    if isinstance(expr, Or):
        return sa.or_(*(_compile(item, dialect) for item in expr.items))
    if isinstance(expr, Not):
        return sa.not_(_compile(expr.item, dialect))
    return _compile_comparison(expr, dialect)


def _compile_comparison(cmp: Comparison, dialect: str) -> sa.ColumnElement[bool]:
    field = cmp.field
    if field.kind == "attributes":
        return _apply(_ATTRIBUTES[field.name], cmp)
    table: Any = {"metrics": LatestMetricRow, "params": ParamRow, "tags": TagRow}[field.kind]
    owned = sa.and_(table.run_id == RunRow.run_id, table.key == field.name)
    if cmp.op in ("is null", "is not null"):
        present = sa.exists().where(owned, table.value.is_not(None))
        return present if cmp.op == "is not null" else sa.not_(present)
    column: sa.ColumnElement[Any] = table.value
    if field.kind != "metrics" and _is_numeric(cmp.value):
        column = _as_number(table.value, dialect)
    return sa.exists().where(owned, _apply(column, cmp))


def _is_numeric(value: object) -> bool:
    if isinstance(value, tuple):
        return bool(value) and all(_is_numeric(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(text: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """Read a text column as a number where it looks like one, else NULL (never an error)."""
    if dialect == "sqlite":
        return sa.func.shipyard_number(text)
    looks_numeric = text.op("~")(NUMBER_PATTERN)
    return sa.case((looks_numeric, sa.cast(text, sa.Float)), else_=sa.null())


def _apply(column: sa.ColumnElement[Any], cmp: Comparison) -> sa.ColumnElement[bool]:
    value = cmp.value
    if isinstance(value, bool):
        value = str(value).lower()
    match cmp.op:
        case "=":
            return column == value
        case "!=":
            return column != value
        case "<":
            return column < value
        case "<=":
            return column <= value
        case ">":
            return column > value
        case ">=":
            return column >= value
        case "like":
            return column.like(value)
        case "ilike":
            return column.ilike(value)
        case "in":
            return column.in_(list(value))  # type: ignore[arg-type]
        case "not in":
            return column.not_in(list(value))  # type: ignore[arg-type]
        case "is null":
            return column.is_(None)
        case "is not null":
            return column.is_not(None)
    raise AssertionError(f"unhandled operator {cmp.op}")


def _order_column(field: Field) -> sa.ColumnElement[Any]:
    if field.kind == "attributes":
        column: sa.ColumnElement[Any] = _ATTRIBUTES[field.name]
        return column
    table: Any = {"metrics": LatestMetricRow, "params": ParamRow, "tags": TagRow}[field.kind]
    return (
        sa.select(table.value)
        .where(table.run_id == RunRow.run_id, table.key == field.name)
        .scalar_subquery()
    )
