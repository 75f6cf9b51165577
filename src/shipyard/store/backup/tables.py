"""Copy every metadata table from one store to another, in dependency order, ids preserved.

One function serves both directions of the portable format: a PostgreSQL store is exported into
a fresh SQLite file at the same schema revision (inside one REPEATABLE READ transaction, so all
tables are read from one snapshot), and a backup's SQLite file is restored into a fresh SQLite or
PostgreSQL store. The tables are the row classes' ``Table`` objects (generic SQLAlchemy types),
so each side converts values its own way; the migrations and the row classes agree (a test holds
them to it). After a copy into PostgreSQL, each serial column's sequence is moved past the
largest id copied, so the next insert does not collide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import IntegrityFailure
from shipyard.store.models import full_metadata

if TYPE_CHECKING:
    from collections.abc import Iterator

_BATCH = 1000

__all__ = ["copy_tables", "count_rows", "tables"]


def tables() -> list[sa.Table]:
    """Every metadata table, parents before children."""
    return list(full_metadata().sorted_tables)


def count_rows(connection: sa.Connection) -> dict[str, int]:
    """Return the row count of every metadata table that exists behind ``connection``."""
    present = set(sa.inspect(connection).get_table_names())
    return {
        t.name: int(connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
        for t in tables()
        if t.name in present
    }


def copy_tables(source: sa.Connection, target: sa.Connection) -> dict[str, int]:
    """Copy every row of every metadata table from ``source`` into ``target``; return counts.

    ``target`` must hold the schema and no rows; the caller owns both transactions. A table
    the source lacks (an older schema) is skipped.
    """
    present = set(sa.inspect(source).get_table_names())
    copied: dict[str, int] = {}
    for table in tables():
        if table.name not in present:
            continue
        count = 0
        for batch in _batches(source, table):
            target.execute(sa.insert(table), batch)
            count += len(batch)
        copied[table.name] = count
    if target.dialect.name == "postgresql":
        _advance_sequences(target)
    return copied


def _batches(source: sa.Connection, table: sa.Table) -> Iterator[list[dict[str, Any]]]:
    """Yield the table's rows in batches, parents first for a self-referencing table."""
    self_refs = [
        (fk.parent.name, fk.column.name)
        for fk in table.foreign_keys
        if fk.column.table is table and fk.parent.nullable
    ]
    query = sa.select(table).order_by(*table.primary_key.columns)
    if not self_refs:
        result = source.execution_options(yield_per=_BATCH).execute(query)
        for part in result.partitions():
            yield [dict(row._mapping) for row in part]
        return
    # Few rows have parents (runs.parent_run_id): insert in waves, each after its parents.
    pending = [dict(row._mapping) for row in source.execute(query)]
    done: set[tuple[str, Any]] = set()
    while pending:
        wave = [
            row
            for row in pending
            if all(
                row[child] is None or (parent, row[child]) in done for child, parent in self_refs
            )
        ]
        if not wave:
            raise IntegrityFailure(
                f"table {table.name} has rows whose parent is missing or that form a cycle; "
                "the store's foreign keys are broken: repair them before copying"
            )
        for row in wave:
            for _, parent in self_refs:
                done.add((parent, row[parent]))
        taken = {id(row) for row in wave}
        pending = [row for row in pending if id(row) not in taken]
        for start in range(0, len(wave), _BATCH):
            yield wave[start : start + _BATCH]


def _advance_sequences(target: sa.Connection) -> None:
    for table in tables():
        for column in table.primary_key.columns:
            if not isinstance(column.type, sa.Integer) or column.autoincrement is False:
                continue
            top = sa.select(sa.func.max(column)).scalar_subquery()
            sequence = sa.func.pg_get_serial_sequence(table.name, column.name)
            target.execute(
                sa.select(sa.func.setval(sequence, sa.func.coalesce(top, 1), top.is_not(None)))
            )
