"""Writing metric values in bulk: the rows as the driver takes them, and the fastest way in.

The tracking service has checked every value before it gets here (``shipyard.track``), so this
module only shapes and ships rows. Everything per row runs at C speed (``zip``, ``map``, ``sum``,
``sorted`` on already-ordered data); a Python loop per row is the fallback for unusual batches,
never the common path (issue 17: the batch path within 1.2x of a bare ``executemany``).

- **SQLite** gets the rows through the driver's ``executemany`` on positional tuples; one run's
  batch binds the caller's own ``(key, value, step, timestamp_ms)`` tuples under a statement
  that carries the run id. SQLite itself stores a NaN as NULL, which is what Shipyard stores
  (see ``models``).
- **PostgreSQL** gets big batches through ``COPY ... FROM STDIN`` on the transaction's own
  connection (psycopg's ``cursor.copy``), small ones through ``executemany``; NaN becomes NULL
  first, because PostgreSQL would keep it as NaN and order it above every number.

Both run inside the caller's transaction, so a batch is written whole or not at all.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.store.engine import upsert_insert
from shipyard.store.models import LatestMetricRow

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

#: One metric value as the store takes it: (run_id, key, value, step, timestamp_ms).
MetricTuple = tuple[str, str, float, int, int]
#: The same with NaN already replaced by None (what PostgreSQL is sent).
StoredTuple = tuple[str, str, float | None, int, int]

METRIC_COLUMNS = ("run_id", "key", "value", "step", "timestamp_ms")
#: From this many rows on, PostgreSQL gets COPY; below it, a statement costs less than the
#: COPY protocol's extra round trip.
COPY_MIN_ROWS = 64

_INSERT = "INSERT INTO metrics (run_id, key, value, step, timestamp_ms) VALUES "
_COPY = "COPY metrics (run_id, key, value, step, timestamp_ms) FROM STDIN"
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_RUN_KEY = itemgetter(0, 1)
_VALUE = itemgetter(2)
_STEP = itemgetter(3)
_TIMESTAMP = itemgetter(4)


def latest_by_key(rows: Sequence[MetricTuple]) -> dict[tuple[str, str], MetricTuple]:
    """Each (run, key)'s latest row: the highest (step, timestamp), the later row on a tie.

    When steps and timestamps both never decrease along the batch (values logged in order, the
    usual case), the last row of each key is its latest: one ``dict(zip(...))`` at C speed.
    """
    steps = list(map(_STEP, rows))
    stamps = list(map(_TIMESTAMP, rows))
    if steps == sorted(steps) and stamps == sorted(stamps):
        return dict(zip(map(_RUN_KEY, rows), rows, strict=True))
    best: dict[tuple[str, str], MetricTuple] = {}
    for row in rows:
        key = (row[0], row[1])
        seen = best.get(key)
        if seen is None or (row[3], row[4]) >= (seen[3], seen[4]):
            best[key] = row
    return best


def nan_as_null(rows: Sequence[MetricTuple]) -> Sequence[StoredTuple]:
    """The rows with each NaN value replaced by None (the rows themselves when none is NaN).

    The plain sum of the values is NaN exactly when one is NaN or infinities of both signs
    cancel; only then is each row looked at.
    """
    total = sum(map(_VALUE, rows), 0.0)
    if total == total:
        return rows
    return [(r[0], r[1], None if r[2] != r[2] else r[2], r[3], r[4]) for r in rows]


def insert_sql(dialect: sa.Dialect) -> str:
    """The driver-level INSERT of one metric row, in the dialect's parameter style."""
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    return _INSERT + "(" + ", ".join(repeat(marker, len(METRIC_COLUMNS))) + ")"


def copy_rows(connection: sa.Connection, rows: Sequence[StoredTuple]) -> None:
    """Send ``rows`` to PostgreSQL's ``metrics`` table with COPY, in the open transaction.

    The driver's errors come back as SQLAlchemy's ``DBAPIError`` family, as they would from
    ``execute``, so ``run_write`` retries and translates them the same way.
    """
    driver = connection.connection.driver_connection
    assert driver is not None
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
    except dbapi_error as e:
        raise sa.exc.DBAPIError.instance(
            _COPY, None, e, dbapi_error, dialect=connection.dialect
        ) from e


def latest_params(latest: Iterable[Sequence[Any]], *, null_nan: bool) -> list[dict[str, Any]]:
    """The latest-value upsert's parameters: one dict per (run, key)."""
    out = []
    for run_id, key, value, step, timestamp_ms in latest:
        if null_nan and value != value:
            value = None
        out.append(
            {
                "run_id": run_id,
                "key": key,
                "value": value,
                "step": step,
                "timestamp_ms": timestamp_ms,
            }
        )
    return out


def insert_for_run_sql(run_id: str) -> str:
    """A SQLite INSERT that binds one run's ``(key, value, step, timestamp_ms)`` tuples as given.

    The run id is written into the statement, so it must be an id this store made: 32
    lowercase hex characters, checked here, never text from outside.
    """
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return _INSERT + f"('{run_id}', ?, ?, ?, ?)"


def upsert_latest(connection: sa.Connection, latest: list[dict[str, Any]]) -> None:
    """Move each (run, key)'s latest value forward to these, where they are newer."""
    if not latest:
        return
    statement = upsert_insert(connection.engine, LatestMetricRow)
    excluded = statement.excluded
    table = LatestMetricRow.__table__
    newer = sa.or_(
        excluded.step > table.c.step,
        sa.and_(excluded.step == table.c.step, excluded.timestamp_ms >= table.c.timestamp_ms),
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                "value": excluded.value,
                "step": excluded.step,
                "timestamp_ms": excluded.timestamp_ms,
            },
            where=newer,
        ),
        latest,
    )
