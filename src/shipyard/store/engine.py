"""Engines for the metadata store, and the one way to run a write transaction.

SQLite (the embedded default) is opened in WAL mode with ``synchronous=NORMAL``: readers never
block the writer, and a commit is durable against a process crash; on power loss the last
commits before the crash may be lost (SQLite's documented trade-off; see docs/tracking.md).
Write transactions start with ``BEGIN IMMEDIATE`` so that two writers queue on the busy
timeout instead of failing with "database is locked" when a read lock would need upgrading.
Lock errors that still get through are retried with jittered backoff; none reach the user.

PostgreSQL is reached through ``postgresql+psycopg://`` URLs; ``sslmode`` and friends pass
through the URL's query string. Serialization failures and deadlocks are retried the same way.

A store that cannot be reached (the server down, the network cut, the file unreadable) is
``StoreUnavailable`` everywhere, reads and writes alike, never the driver's own error: the
engine's ``handle_error`` hook translates a failed connect or a dropped connection once, here,
at the store's boundary (issue 14, item 6), and ``run_write`` does the same for what it does not
retry. SQLAlchemy's pre-ping keeps its own recovery: a stale pooled connection is replaced
without an error.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)

from shipyard.core import interrupts
from shipyard.core.errors import InvalidSettings, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")

#: The metadata store's engine, as code outside the store names it (a handle it passes to a
#: store class, never one it runs SQL on: the import contract keeps SQLAlchemy in the store).
Engine: TypeAlias = sa.Engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "shipyard_write"
_RETRY_DEADLINE_S = 120.0
_RETRYABLE_PG_CODES = {"40001", "40P01", "55P03"}
#: Text that search compares as a number; PostgreSQL applies it with ``~``, SQLite through
#: the ``shipyard_number`` function registered below, so both agree.
NUMBER_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NUMBER = re.compile(NUMBER_PATTERN)


def create_store_engine(url: str) -> sa.Engine:
    """Create an engine for ``url`` with Shipyard's connection settings applied.

    Raises:
        InvalidSettings: The URL is malformed or names a driver that is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise InvalidSettings(f"store URL {url!r} is not a valid SQLAlchemy URL: {e}") from e
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _translated(_sqlite_engine(parsed))
        if backend == "postgresql":
            args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
            return _translated(
                sa.create_engine(
                    parsed, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=args
                )
            )
    except NoSuchModuleError as e:
        raise InvalidSettings(
            f"no driver for {url!r}: install the extra, e.g. pip install 'shipyard[postgres]'"
        ) from e
    except ImportError as e:
        raise InvalidSettings(
            f"the driver for {parsed.drivername!r} is not installed ({e}); "
            "install it, e.g. pip install 'shipyard[postgres]'"
        ) from e
    raise InvalidSettings(
        f"unsupported store backend {backend!r}; use sqlite:///path or postgresql+psycopg://..."
    )


def _translated(engine: sa.Engine) -> sa.Engine:
    """Make ``engine`` raise ``StoreUnavailable`` when its database cannot be reached."""
    where = engine.url.render_as_string(hide_password=True)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: sa.engine.ExceptionContext) -> None:
        if context.is_pre_ping:
            # A signal that arrived mid-probe (Ctrl-C, SIGTERM's Terminated) leaves the query
            # half-sent, and the probe's own cleanup then fails with a driver error that hides
            # the interrupt: let the interrupt through (the pool drops the connection). Any
            # other failure: the pool replaces the dead connection itself.
            interrupted = context.original_exception.__context__
            if isinstance(interrupted, KeyboardInterrupt | SystemExit):
                raise interrupted
            return
        connection = context.connection
        if connection is not None and connection.get_execution_options().get(WRITE_OPTION):
            return  # run_write retries a dropped connection, then translates
        error = context.sqlalchemy_exception
        # Only the driver's own errors: SQLAlchemy also calls this hook, as a "disconnect", for
        # a KeyboardInterrupt or our SIGTERM's Terminated, which must go through untouched.
        if not isinstance(error, DBAPIError):
            return
        if context.is_disconnect or (
            connection is None and isinstance(error, OperationalError | InterfaceError)
        ):
            raise unavailable(where, context.original_exception) from error

    return engine


def unavailable(where: str, cause: BaseException) -> StoreUnavailable:
    """The error for a metadata store at ``where`` (a URL without password) that is unreachable."""
    reason = " ".join(str(cause).split()) or type(cause).__name__
    return StoreUnavailable(
        f"cannot open the metadata store at {where} ({reason}); check that it is running and "
        "reachable (SHIPYARD_STORE_URL or workspace.store_url), then retry"
    )


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(
                f"cannot create the folder of the SQLite store {database}: {e.strerror}; "
                "choose a writable path in SHIPYARD_STORE_URL or workspace.store_url"
            ) from e
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
        dbapi_connection.create_function("shipyard_number", 1, _text_to_number, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        writes = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def redacted_url(url: str) -> str:
    """Return a store URL with its password hidden, to show in messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def upsert_insert(engine: sa.Engine, row_class: type[Any]) -> Any:
    """Return the dialect's INSERT, which knows ON CONFLICT (both supported backends do)."""
    # Imported here: the postgresql package drags its async drivers' dialects (~80 ms).
    name = engine.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(row_class)
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(row_class)
    raise InvalidSettings(f"unsupported store dialect {name!r}")


def _text_to_number(text: object) -> float | None:
    if isinstance(text, str) and _NUMBER.fullmatch(text):
        return float(text)
    return None


@contextlib.contextmanager
def write_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Open a connection inside a write transaction that commits on success.

    A graceful stop (SIGTERM) arriving inside waits for the transaction's end
    (``core/interrupts.py``): raised mid-statement it would leave the write lock held.
    """
    with interrupts.shielded(), engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            yield connection


def run_write(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work`` in a write transaction, retrying on lock contention.

    ``work`` must be safe to repeat: it runs again from the start after a retryable failure,
    in a fresh transaction.

    Raises:
        StoreUnavailable: The store stayed locked past the retry deadline, or could not be
            reached (connection refused or lost; a lost connection is retried first).
    """
    deadline = time.monotonic() + _RETRY_DEADLINE_S
    delay = 0.005
    while True:
        try:
            with write_connection(engine) as connection:
                return work(connection)
        except DBAPIError as e:
            if not _is_retryable(e) or time.monotonic() > deadline:
                if _is_retryable(e) or e.connection_invalidated:
                    raise StoreUnavailable(
                        f"the metadata store stayed busy or unreachable ({e.orig}); "
                        "check that it is running and not held by a stuck process"
                    ) from e
                if isinstance(e, OperationalError | InterfaceError):
                    where = engine.url.render_as_string(hide_password=True)
                    raise unavailable(where, e.orig or e) from e
                raise
        time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
        delay = min(delay * 2, 1.0)


def _is_retryable(error: DBAPIError) -> bool:
    if error.connection_invalidated:
        return True
    message = str(error.orig).lower()
    if "database is locked" in message or "database is busy" in message:
        return True
    return getattr(error.orig, "sqlstate", None) in _RETRYABLE_PG_CODES
