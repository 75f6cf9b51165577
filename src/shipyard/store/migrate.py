"""Apply the Alembic migrations when a store opens, once, even with many processes at once.

The common case (schema already at head) costs one small read. Otherwise the migration runs
inside one write transaction that first takes a lock: SQLite's ``BEGIN IMMEDIATE`` (the
database-wide write lock) or a PostgreSQL transaction-level advisory lock. A second process
waits on that lock, then finds the schema at head and does nothing. Both backends have
transactional DDL, so a crash mid-migration leaves the old schema, not half of the new one.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shipyard.store.engine import run_write

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# An arbitrary constant that names "the Shipyard schema lock" among advisory locks.
_PG_ADVISORY_LOCK_ID = 0x5348_4950_5952_44


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    return config


@cache
def head_revision() -> str:
    """Return the revision id the code expects the schema to be at."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("shipyard ships no migrations")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """Return the schema revision recorded in the store (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: sa.Engine) -> bool:
    """Bring the schema to the head revision; return whether anything was applied."""
    if current_revision(engine) == head_revision():
        return False

    def _upgrade(connection: sa.Connection) -> bool:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": _PG_ADVISORY_LOCK_ID}
            )
        if MigrationContext.configure(connection).get_current_revision() == head_revision():
            return False
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return True

    return run_write(engine, _upgrade)
