"""Apply the Alembic migrations when a store opens, once, even with many processes at once.

The common case (schema already at head) costs one small read and imports nothing of Alembic
(which, with every migration module it loads, was a good part of a read-only command's start):
the head revision is the newest ``versions/NNNN_*.py`` file's number, a convention a test
holds Alembic to, and the current one is read with a plain SELECT. Otherwise the migration runs
inside one write transaction that first takes a lock: SQLite's ``BEGIN IMMEDIATE`` (the
database-wide write lock) or a PostgreSQL transaction-level advisory lock. A second process
waits on that lock, then finds the schema at head and does nothing. Both backends have
transactional DDL, so a crash mid-migration leaves the old schema, not half of the new one.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.store.engine import run_write

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# An arbitrary constant that names "the Shipyard schema lock" among advisory locks.
_PG_ADVISORY_LOCK_ID = 0x5348_4950_5952_44


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    return config


@cache
def head_revision() -> str:
    """Return the revision id the code expects the schema to be at.

    Migration ``versions/NNNN_name.py`` declares ``revision = "NNNN"`` and follows NNNN-1, so
    the head is the largest number; ``tests/unit/store/test_migrate.py`` checks that Alembic
    agrees.
    """
    numbers = [p.name.split("_", 1)[0] for p in (_MIGRATIONS_DIR / "versions").glob("*_*.py")]
    heads = sorted(n for n in numbers if n.isdigit())
    if not heads:
        raise RuntimeError("shipyard ships no migrations")
    return heads[-1]


def current_revision(engine: sa.Engine) -> str | None:
    """Return the schema revision recorded in the store (None for an empty database)."""
    with engine.connect() as connection:
        return _recorded_revision(connection)


def _recorded_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    value = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def upgrade_to_head(engine: sa.Engine) -> bool:
    """Bring the schema to the head revision; return whether anything was applied."""
    if current_revision(engine) == head_revision():
        return False

    def _upgrade(connection: sa.Connection) -> bool:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": _PG_ADVISORY_LOCK_ID}
            )
        if _recorded_revision(connection) == head_revision():
            return False
        from alembic import command

        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return True

    return run_write(engine, _upgrade)
