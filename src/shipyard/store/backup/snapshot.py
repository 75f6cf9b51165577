"""A consistent snapshot of the metadata store, as a SQLite file at the store's schema revision.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies the whole database in one
step, inside one read transaction: in WAL mode writers go on meanwhile and the copy is the
database as of the moment the step began. PostgreSQL: every table is read in one REPEATABLE READ,
read-only transaction (one snapshot, as ``pg_dump`` takes it) into a fresh SQLite file migrated
to the same revision. Either way the backup's format is one SQLite file, which restores into
SQLite or PostgreSQL alike (``tables.copy_tables``).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.core.errors import IntegrityFailure
from shipyard.store.backup.tables import copy_tables
from shipyard.store.blob_refs import live_references
from shipyard.store.encryption_models import BlobKeyRow
from shipyard.store.engine import create_store_engine, write_connection
from shipyard.store.migrate import current_revision, upgrade_to_head

if TYPE_CHECKING:
    from pathlib import Path


def take_snapshot(engine: sa.Engine, destination: Path) -> None:
    """Write a consistent copy of the store behind ``engine`` to the SQLite file ``destination``."""
    if engine.dialect.name == "sqlite":
        _sqlite_snapshot(engine, destination)
    else:
        _export(engine, destination)
    check = sqlite3.connect(destination)
    try:
        problems = check.execute("PRAGMA quick_check").fetchall()
    finally:
        check.close()
    if problems != [("ok",)]:
        raise IntegrityFailure(
            f"the snapshot of the metadata store failed SQLite's integrity check ({problems[:3]}); "
            "run `PRAGMA integrity_check` on the store and repair it before backing up"
        )


def _sqlite_snapshot(engine: sa.Engine, destination: Path) -> None:
    with engine.connect() as connection:
        source = connection.connection.driver_connection
        assert isinstance(source, sqlite3.Connection)
        target = sqlite3.connect(destination)
        try:
            source.backup(target)  # pages=-1: one step, one read transaction
        finally:
            target.close()


def _export(engine: sa.Engine, destination: Path) -> None:
    target_engine = create_store_engine(f"sqlite:///{destination}")
    try:
        upgrade_to_head(target_engine)
        with engine.connect() as raw:
            source = raw.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with source.begin(), write_connection(target_engine) as target:
                copy_tables(source, target)
    finally:
        target_engine.dispose()


def snapshot_revision(snapshot: Path) -> str:
    """Return the schema revision a snapshot file is at."""
    engine = create_store_engine(f"sqlite:///{snapshot}")
    try:
        return current_revision(engine) or "none"
    finally:
        engine.dispose()


def stored_blobs(snapshot: Path) -> tuple[set[str], int]:
    """Return the stored blobs the snapshot's live references need, and how many references.

    An encrypted blob is stored as its ciphertext (``blob_keys.cipher_digest``); others under
    their plaintext digest.
    """
    engine = create_store_engine(f"sqlite:///{snapshot}")
    try:
        with engine.connect() as c:
            references = live_references(c)
            cipher = dict(c.execute(sa.select(BlobKeyRow.digest, BlobKeyRow.cipher_digest)).all())
    finally:
        engine.dispose()
    return {cipher.get(r.digest, r.digest) for r in references}, len(references)
