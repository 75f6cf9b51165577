"""``backup restore``: a verified backup into a fresh SQLite or PostgreSQL store and blob store.

The target store must hold no Shipyard rows (restoring over data would merge two histories). The
snapshot is migrated to the code's head in a temp copy; into SQLite its pages are copied (the
online backup API), into PostgreSQL the target is migrated and the rows copied table by table
in dependency order with ids preserved, in one transaction, so a failed restore leaves the
target empty. Blobs are put into the target blob store as stored (ciphertext stays
ciphertext: the restored ``blob_keys`` rows open it under the same master key).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.errors import Conflict, IntegrityFailure
from shipyard.store.artifacts import open_blob_store
from shipyard.store.backup.manifest import SNAPSHOT, BackupInvalid, blob_path
from shipyard.store.backup.tables import copy_tables, count_rows
from shipyard.store.backup.verify import Verified, open_snapshot, verify_backup
from shipyard.store.engine import create_store_engine, redacted_url, write_connection
from shipyard.store.migrate import head_revision, upgrade_to_head

if TYPE_CHECKING:
    import sqlalchemy as sa

    from shipyard.store.artifacts.encrypted import BlobCipher


class RestoreTargetNotEmpty(Conflict):
    """The store a backup is to be restored into already holds data."""

    code = "restore_target_not_empty"


@dataclass(frozen=True, slots=True)
class Restored:
    """A finished restore: what was checked, rows per table, blobs put, and how long it took."""

    verified: Verified
    store_url: str
    blob_url: str
    rows: dict[str, int]
    blobs: int
    seconds: float


def _copy_into(snapshot: Path, target: sa.Engine) -> dict[str, int]:
    """Copy the (migrated) snapshot into the empty ``target``; return rows per table.

    Into SQLite, the online backup API copies the pages (every row, index and id exactly, and
    far faster than rows); into PostgreSQL, rows table by table in one transaction.
    """
    if target.dialect.name == "sqlite":
        with target.connect() as c:
            destination = c.connection.driver_connection
            assert isinstance(destination, sqlite3.Connection)
            source = sqlite3.connect(snapshot)
            try:
                source.backup(destination)
            finally:
                source.close()
        with target.connect() as c:
            return count_rows(c)
    source_engine = create_store_engine(f"sqlite:///{snapshot}")
    try:
        upgrade_to_head(target)
        with source_engine.connect() as read, read.begin(), write_connection(target) as write:
            return copy_tables(read, write)
    finally:
        source_engine.dispose()


def restore_backup(
    folder: Path, store_url: str, blob_url: str, *, cipher: BlobCipher | None = None
) -> Restored:
    """Verify the backup in ``folder``, then restore it into ``store_url`` and ``blob_url``.

    Raises:
        BackupInvalid: The backup failed verification, or is from a newer schema (nothing was
            written).
        RestoreTargetNotEmpty: The target store holds rows.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shipyard-restore-") as scratch:
        plain = Path(scratch) / SNAPSHOT
        verified = verify_backup(folder, cipher=cipher, keep_snapshot=plain)
        rows = _restore_store(verified, plain, store_url, cipher)
    blobs = open_blob_store(blob_url)
    for digest in sorted(verified.manifest.blobs):
        stored = blobs.put_file(blob_path(folder.parent, digest))
        if stored.digest != digest:
            raise IntegrityFailure(
                f"blob {digest[:12]} changed while it was restored; run the restore again"
            )
    return Restored(
        verified,
        redacted_url(store_url),
        blobs.url,
        rows,
        len(verified.manifest.blobs),
        time.monotonic() - started,
    )


def _restore_store(
    verified: Verified, plain: Path, store_url: str, cipher: BlobCipher | None
) -> dict[str, int]:
    """Restore the metadata into ``store_url`` from the verified backup's snapshot."""
    manifest = verified.manifest
    if manifest.schema_revision.isdigit() and manifest.schema_revision > head_revision():
        raise BackupInvalid(
            f"backup {manifest.backup_id} has schema revision {manifest.schema_revision}, newer "
            f"than this Shipyard's {head_revision()}; restore it with the version that wrote it"
        )
    target = create_store_engine(store_url)
    try:
        with target.connect() as c:
            held = {name: n for name, n in count_rows(c).items() if n}
        if held:
            shown = ", ".join(f"{name} ({n})" for name, n in sorted(held.items())[:5])
            raise RestoreTargetNotEmpty(
                f"the target store {redacted_url(store_url)} already holds data ({shown}); "
                "restore into a new, empty database"
            )
        if not plain.is_file():  # sealed, verified without the key: opened now (or refused)
            open_snapshot(verified.folder, manifest, cipher, plain)
        source = create_store_engine(f"sqlite:///{plain}")
        try:
            upgrade_to_head(source)
        finally:
            source.dispose()
        return _copy_into(plain, target)
    finally:
        target.dispose()
