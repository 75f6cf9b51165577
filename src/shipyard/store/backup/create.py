"""``backup create``: snapshot, blobs by digest, then the manifest, last; and the target's lock.

Order of writes, so that a backup killed at any point leaves the previous ones valid and itself
detectably incomplete: the snapshot (taken in a temp folder, then written into the backup folder,
sealed when encryption is on), the extra files, the blobs the snapshot references that the target
lacks (incremental by digest: blobs are shared by every backup in the target), and only then
``MANIFEST.json``, atomically. ``prune`` takes the same lock, so it never deletes a blob that a
running backup counted on finding.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core import faults
from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import ArtifactNotFound, Conflict, IntegrityFailure
from shipyard.store.backup.files import add_file, chunks_of, copy_blobs
from shipyard.store.backup.manifest import (
    BACKUP_NAME,
    BACKUP_PREFIX,
    EXTRA_DIR,
    SNAPSHOT,
    Manifest,
    fsync_dir,
    seal_name,
    write_manifest,
)
from shipyard.store.backup.snapshot import snapshot_revision, stored_blobs, take_snapshot
from shipyard.store.engine import redacted_url

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.artifacts.encrypted import BlobCipher
    from shipyard.store.sql import SqlStore

LOCK = ".lock"
SCRATCH_PREFIX = ".scratch-"


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What one ``create`` did: the manifest, blobs copied and reused, and how long it took."""

    folder: Path
    manifest: Manifest
    blobs_copied: int
    blobs_reused: int
    seconds: float


@contextlib.contextmanager
def target_lock(target: Path) -> Iterator[None]:
    """Hold the backup target's lock (one ``create`` or ``prune`` at a time).

    Raises:
        Conflict: Another backup or prune holds it.
    """
    target.mkdir(parents=True, exist_ok=True)
    fd = os.open(target / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise Conflict(
                f"another `shipyard backup` is writing to {target}; wait for it to finish"
            ) from e
        yield
    finally:
        os.close(fd)  # closing releases the lock (a killed process releases it too)


def new_backup_id(target: Path, now_ms: int) -> str:
    """A backup folder name that sorts by time: ``backup-YYYYmmddTHHMMSSmmmZ-xxxxxx``.

    Later than every folder already in ``target`` (a clock that did not move, or moved back,
    still gives the newest backup the greatest name: retention keeps the newest by name).
    """
    stamp = _stamp(now_ms)
    existing = sorted(p.name for p in target.iterdir() if BACKUP_NAME.fullmatch(p.name))
    while existing and stamp <= existing[-1][len(BACKUP_PREFIX) : len(BACKUP_PREFIX) + 19]:
        now_ms += 1
        stamp = _stamp(now_ms)
    return f"{BACKUP_PREFIX}{stamp}-{secrets.token_hex(3)}"


def _stamp(now_ms: int) -> str:
    moment = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{now_ms % 1000:03d}Z"


def raw_blob_store(blobs: BlobStore) -> BlobStore:
    """The store of the bytes as stored: an encrypted store's inner one, else ``blobs``."""
    inner = getattr(blobs, "inner", None)
    return blobs if inner is None else inner


def create_backup(
    store: SqlStore,
    blobs: BlobStore,
    target: Path,
    *,
    cipher: BlobCipher | None = None,
    extras: Mapping[str, bytes] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BackupResult:
    """Back up the metadata store and the blobs it references into ``target``.

    Args:
        store: The metadata store to snapshot.
        blobs: The workspace's blob store (an encrypted one is read through to its ciphertext).
        target: The backup target folder (created if needed).
        cipher: Seals the snapshot and extras (the workspace master key); None stores them plain.
        extras: More files to keep in the backup (``extra/<name>``), sealed like the snapshot.
        clock: When the backup is taken.

    Raises:
        Conflict: Another backup or prune is writing to ``target``.
        IntegrityFailure: A referenced blob is missing or changed in the blob store.
    """
    started = time.monotonic()
    raw = raw_blob_store(blobs)
    with target_lock(target):
        created_ms = clock.now_ms()
        backup_id = new_backup_id(target, created_ms)
        folder = target / backup_id
        folder.mkdir()
        fsync_dir(target)
        try:
            manifest, copied, reused = _write(
                store, raw, folder, backup_id, created_ms, cipher, extras or {}, clock
            )
        except Exception:
            # An error (not a kill): remove the partial folder now rather than leave it to prune.
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return BackupResult(folder, manifest, copied, reused, time.monotonic() - started)


def _write(
    store: SqlStore,
    raw: BlobStore,
    folder: Path,
    backup_id: str,
    created_ms: int,
    cipher: BlobCipher | None,
    extras: Mapping[str, bytes],
    clock: Clock,
) -> tuple[Manifest, int, int]:
    """Write one backup folder: snapshot, extras, blobs, then the manifest."""
    target = folder.parent
    # In the target, not /tmp: a kill leaves the (plaintext) snapshot where prune removes it.
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=target) as scratch:
        snapshot = Path(scratch) / SNAPSHOT
        take_snapshot(store.engine, snapshot)
        faults.hit("backup.after_snapshot")
        digests, references = stored_blobs(snapshot)
        revision = snapshot_revision(snapshot)
        with open(snapshot, "rb") as source:
            files = [
                add_file(
                    folder, SNAPSHOT, chunks_of(source), cipher, seal_name(backup_id, SNAPSHOT)
                )
            ]
    for name, data in sorted(extras.items()):
        path = f"{EXTRA_DIR}/{name}"
        files.append(add_file(folder, path, [data], cipher, seal_name(backup_id, path)))
    sizes = _sizes(raw, digests)
    copied, reused = copy_blobs(raw, sizes, target)
    manifest = Manifest(
        backup_id=backup_id,
        created_ms=created_ms,
        finished_ms=clock.now_ms(),
        source_backend=store.engine.dialect.name,
        source_url=redacted_url(store.url),
        schema_revision=revision,
        files=tuple(files),
        blobs=sizes,
        references=references,
        encrypted=cipher is not None,
        extras=tuple(sorted(extras)),
    )
    faults.hit("backup.before_manifest")
    write_manifest(folder, manifest)
    return manifest, copied, reused


def _sizes(raw: BlobStore, digests: set[str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for digest in sorted(digests):
        try:
            sizes[digest] = raw.size(digest)
        except ArtifactNotFound as e:
            raise IntegrityFailure(
                f"blob {digest[:12]} is referenced by the metadata store but missing from the "
                f"blob store {raw.url}; the workspace is damaged (RELIABILITY.md invariant 1): "
                "restore that blob or release its reference before backing up"
            ) from e
    return sizes
