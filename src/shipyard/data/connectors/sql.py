"""Any database SQLAlchemy can reach: a ``table`` or a read-only ``query``.

**Safety.** ``table`` (``name`` or ``schema.name``) and ``watermark`` must be plain identifiers
(letters, digits, ``_``, ``$``) and are quoted by SQLAlchemy, never pasted into SQL: a name like
``x"; DROP TABLE t; --`` is refused. A ``query`` is the project author's SQL; it runs wrapped as
``SELECT * FROM (<query>) AS _shipyard_query [WHERE <watermark> > :since]`` inside a transaction
that is always rolled back, read-only where the database allows (PostgreSQL ``READ ONLY``
transactions, SQLite ``PRAGMA query_only``). The watermark is a bound parameter.

**Types.** A table's column types come from reflection (``NUMERIC(p, s)`` becomes
``Decimal(p, s)``, a ``NUMERIC`` without scale ``Float64``, unknown types String). A query's
types are inferred by Polars from its first ``PROBE_ROWS`` rows (all-null columns become
String); a later value of another type fails the scan with ``InvalidData`` naming the column
(add a ``CAST`` in the query).

**Memory.** Rows are fetched ``CHUNK_ROWS`` at a time through a server-side cursor
(``stream_results``) and each chunk becomes a Polars frame, so a streaming consumer
(``sink_parquet``) holds one chunk; ``collect()`` holds the result as columnar frames, never as
Python rows. ``_row`` numbers the rows of this scan's result (a table is ordered by its primary
key, so full scans number rows the same way each run).

Connection failures raise ``SourceUnavailable`` naming the URL without its password.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from shipyard.core.errors import InvalidArgument, InvalidData, SourceUnavailable
from shipyard.data.connectors.base import (
    ROW,
    SOURCE,
    ConnectorBase,
    bookkeeping,
    check_identifier,
    lazy_from_batches,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from shipyard.data.connectors.base import SourceSpec

CHUNK_ROWS = 50_000
PROBE_ROWS = 1_000
_TYPES: dict[type, pl.DataType] = {
    bool: pl.Boolean(),
    int: pl.Int64(),
    float: pl.Float64(),
    str: pl.String(),
    bytes: pl.Binary(),
    dt.date: pl.Date(),
    dt.time: pl.Time(),
    dt.timedelta: pl.Duration("us"),
}


class SqlConnector(ConnectorBase):
    """Reads a table or query through SQLAlchemy; see the module docstring."""

    def __init__(self, spec: SourceSpec, *, base_dir: Path) -> None:
        super().__init__(spec, base_dir=base_dir)
        try:
            url = sa.engine.make_url(spec.uri)
        except sa_exc.ArgumentError as e:
            raise InvalidArgument(
                f"source {spec.name!r}: {spec.uri!r} is not a database URL"
            ) from e
        sqlite = url.get_backend_name() == "sqlite"
        if sqlite and url.database not in (None, "", ":memory:"):
            path = Path(url.database or "")
            url = url.set(database=str(path if path.is_absolute() else base_dir / path))
        self._url = url
        self._password = url.password
        self.safe_url = url.set(password=None).render_as_string(hide_password=True)
        self._engine: sa.Engine | None = None

    def close(self) -> None:
        """Close the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def scan(self, since: object | None = None) -> pl.LazyFrame:
        """Read the columns now (reflection or a probe); rows are fetched per collection."""
        spec = self.spec
        watermark = spec.watermark
        if watermark is not None:
            check_identifier(watermark, "watermark column", spec.name)
        with self._translated(), self._engine_().connect() as conn:
            if spec.table is not None:
                stmt, schema = self._table(conn, spec.table, since)
            else:
                stmt, schema = self._query(conn, spec.query or "", since)
        full = {**schema, SOURCE: pl.String(), ROW: pl.Int64()}
        return lazy_from_batches(lambda: self._batches(stmt, schema), full, f"sql:{spec.name}")

    # -- statements ----------------------------------------------------------------------------

    def _table(
        self, conn: sa.Connection, name: str, since: object | None
    ) -> tuple[sa.Select[Any], dict[str, pl.DataType]]:
        parts = name.split(".")
        if len(parts) > 2:
            raise InvalidArgument(f"source {self.spec.name!r}: table {name!r}: use schema.table")
        for part in parts:
            check_identifier(part, "table name part", self.spec.name)
        schema_name = parts[0] if len(parts) == 2 else None
        try:
            table = sa.Table(parts[-1], sa.MetaData(), schema=schema_name, autoload_with=conn)
        except sa_exc.NoSuchTableError:
            raise InvalidData(
                f"source {self.spec.name!r}: table {name!r} not found in {self.safe_url}"
            ) from None
        stmt = sa.select(table)
        if table.primary_key.columns:
            stmt = stmt.order_by(*table.primary_key.columns)
        if since is not None and self.spec.watermark is not None:
            column = table.c.get(self.spec.watermark)
            if column is None:
                raise InvalidData(
                    f"source {self.spec.name!r}: watermark column {self.spec.watermark!r} is "
                    f"not in table {name!r} (columns: {', '.join(table.c.keys())})"
                )
            stmt = stmt.where(column > sa.bindparam("since", since, type_=column.type))
        return stmt, {c.name: _polars_type(c.type) for c in table.columns}

    def _query(
        self, conn: sa.Connection, query: str, since: object | None
    ) -> tuple[sa.Select[Any], dict[str, pl.DataType]]:
        # A colon in the query is text, not a bind parameter (``x::int``, ``'12:30'``).
        text = sa.text(query.strip().rstrip(";").replace(":", r"\:"))
        stmt: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(
            text.columns().subquery("_shipyard_query")
        )
        if since is not None and self.spec.watermark is not None:
            stmt = stmt.where(sa.column(self.spec.watermark) > sa.bindparam("since", since))
        with self._read_only(conn) as ro:
            result = ro.execute(stmt.limit(PROBE_ROWS))
            names = list(result.keys())
            rows = result.fetchall()
        if len(set(names)) != len(names):
            raise InvalidData(f"source {self.spec.name!r}: the query returns duplicate columns")
        probe = pl.DataFrame(
            [[_plain(v) for v in row] for row in rows],
            schema=names,
            orient="row",
            infer_schema_length=None,
        )
        return stmt, {n: (pl.String() if t == pl.Null() else t) for n, t in probe.schema.items()}

    # -- reading -------------------------------------------------------------------------------

    def _batches(
        self, stmt: sa.Select[Any], schema: dict[str, pl.DataType]
    ) -> Iterator[pl.DataFrame]:
        with self._translated(), self._engine_().connect() as conn, self._read_only(conn) as ro:
            streaming = ro.execution_options(stream_results=True, yield_per=CHUNK_ROWS)
            with streaming.execute(stmt) as result:
                first_row = 0
                for chunk in result.partitions(CHUNK_ROWS):
                    frame = self._frame(chunk, schema)
                    yield bookkeeping(frame, self.spec.name, first_row)
                    first_row += frame.height

    def _frame(self, rows: Sequence[sa.Row[Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        series = []
        for (name, dtype), values in zip(schema.items(), columns, strict=True):
            plain = [_plain(v) for v in values]
            if dtype == pl.String():
                plain = [v if v is None or isinstance(v, str) else _text(v) for v in plain]
            try:
                series.append(pl.Series(name, plain, dtype=dtype, strict=True))
            except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as e:
                raise InvalidData(
                    f"source {self.spec.name!r}: column {name!r} has values that are not "
                    f"{dtype} ({type(e).__name__}); CAST it in the query"
                ) from None
        return pl.DataFrame(series)

    # -- connections ---------------------------------------------------------------------------

    def _engine_(self) -> sa.Engine:
        if self._engine is None:
            url = self._url
            args: dict[str, Any] = {}
            if url.get_backend_name() == "sqlite":
                if (
                    url.database not in (None, "", ":memory:")
                    and not Path(url.database or "").is_file()
                ):
                    raise SourceUnavailable(
                        f"source {self.spec.name!r}: no database file {self.safe_url}"
                    )
            elif url.get_backend_name() == "postgresql":
                args["connect_args"] = {"connect_timeout": 10}
            try:
                engine = sa.create_engine(url, pool_pre_ping=True, **args)
            except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as e:
                raise InvalidArgument(
                    f"source {self.spec.name!r}: cannot use {self.safe_url}: {e}"
                ) from None
            if url.get_backend_name() == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_query_only)
            self._engine = engine
        return self._engine

    @contextlib.contextmanager
    def _read_only(self, conn: sa.Connection) -> Iterator[sa.Connection]:
        """A transaction that is read-only where supported and always rolled back."""
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(postgresql_readonly=True)
        tx = conn.begin()
        try:
            yield conn
        finally:
            tx.rollback()

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLAlchemy errors into Shipyard's, without the password."""
        try:
            yield
        except sa_exc.DBAPIError as e:
            if self._unreachable(e):
                raise SourceUnavailable(
                    f"source {self.spec.name!r}: cannot read {self.safe_url}: {self._scrub(e)}; "
                    "check the server is up and the URL is right"
                ) from None
            raise InvalidData(
                f"source {self.spec.name!r}: reading {self.safe_url} failed: {self._scrub(e)}"
            ) from None
        except sa_exc.StatementError as e:  # a parameter (the watermark) could not be bound
            raise InvalidData(
                f"source {self.spec.name!r}: cannot run the query on {self.safe_url}: "
                f"{self._scrub(e)}; check the watermark value's type"
            ) from None
        except sa_exc.TimeoutError as e:
            raise SourceUnavailable(
                f"source {self.spec.name!r}: {self.safe_url} timed out: {self._scrub(e)}"
            ) from None

    def _unreachable(self, error: sa_exc.DBAPIError) -> bool:
        """Whether the error means the database could not be reached (retry may help)."""
        if isinstance(error, sa_exc.InterfaceError) or error.connection_invalidated:
            return True
        if not isinstance(error, sa_exc.OperationalError):
            return False
        if self._url.get_backend_name() != "sqlite":
            return True
        # sqlite3 reports syntax errors and missing tables as OperationalError too.
        return any(s in str(error.orig) for s in ("unable to open", "locked", "disk I/O"))

    def _scrub(self, error: sa_exc.SQLAlchemyError) -> str:
        orig = getattr(error, "orig", None) or error
        message = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        return message.replace(self._password, "***") if self._password else message


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()


def _polars_type(sa_type: sa.types.TypeEngine[Any]) -> pl.DataType:
    """The Polars type that holds values of an SQLAlchemy column type."""
    try:
        python_type = sa_type.python_type
    except NotImplementedError:
        return pl.String()
    if python_type is dt.datetime:
        return pl.Datetime("us", "UTC" if getattr(sa_type, "timezone", False) else None)
    if python_type is decimal.Decimal:
        precision, scale = getattr(sa_type, "precision", None), getattr(sa_type, "scale", None)
        if precision is not None and scale is not None and precision <= 38:
            return pl.Decimal(precision, scale)
        return pl.Float64()
    return _TYPES.get(python_type, pl.String())


def _plain(value: object) -> object:
    """Values Polars takes as they are; others (UUID, JSON, arrays, ...) as text."""
    if value is None or isinstance(value, str | int | float | bytes | dt.date | dt.time):
        return value
    if isinstance(value, dt.timedelta | decimal.Decimal):
        return value
    return _text(value)


def _text(value: object) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    return str(value)
