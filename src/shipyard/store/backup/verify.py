"""``backup verify``: check a backup without restoring it; name the first bad file.

Checks, in order: the manifest is there (else the backup was interrupted) and matches its own
checksum; every file it lists exists with its size (else truncated) and SHA-256 (else changed);
every blob it lists is in the target with its size and SHA-256; and, when the snapshot can be
read (not sealed, or the master key given), every blob the snapshot references is listed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.store.backup.files import file_sha256, read_file, write_durably
from shipyard.store.backup.manifest import (
    SNAPSHOT,
    BackupInvalid,
    FileEntry,
    Manifest,
    blob_path,
    read_manifest,
    seal_name,
)
from shipyard.store.backup.snapshot import stored_blobs

if TYPE_CHECKING:
    from shipyard.store.artifacts.encrypted import BlobCipher


@dataclass(frozen=True, slots=True)
class Verified:
    """A backup that passed: its manifest, files and blobs checked, references checked or not."""

    folder: Path
    manifest: Manifest
    files: int
    blobs: int
    references_checked: bool


def verify_backup(
    folder: Path, *, cipher: BlobCipher | None = None, keep_snapshot: Path | None = None
) -> Verified:
    """Check the backup in ``folder`` (a ``backup-...`` folder of a target).

    ``keep_snapshot``: where to leave the plain snapshot that the reference check opened (the
    restore goes on from it instead of opening it again).

    Raises:
        BackupInvalid: Incomplete, truncated, changed or missing anything; the message names
            the file.
    """
    if not folder.is_dir():
        raise BackupInvalid(f"{folder} is not a backup folder (`shipyard backup list` shows them)")
    manifest = read_manifest(folder)
    for entry in manifest.files:
        _check(folder / entry.path, entry.sha256, entry.size_bytes, manifest)
    target = folder.parent
    for digest, size in manifest.blobs.items():
        _check(blob_path(target, digest), digest, size, manifest)
    checked = False
    snapshot = snapshot_entry(manifest)
    if snapshot.seal is None or cipher is not None:
        with tempfile.TemporaryDirectory(prefix="shipyard-verify-") as scratch:
            plain = keep_snapshot or Path(scratch) / SNAPSHOT
            open_snapshot(folder, manifest, cipher, plain)
            needed, _ = stored_blobs(plain)
        missing = sorted(needed - set(manifest.blobs))
        if missing:
            raise BackupInvalid(
                f"backup {manifest.backup_id}: its snapshot references {len(missing)} blob(s) the "
                f"manifest does not list (first: {missing[0][:12]}); use another backup"
            )
        checked = True
    return Verified(folder, manifest, len(manifest.files), len(manifest.blobs), checked)


def snapshot_entry(manifest: Manifest) -> FileEntry:
    """Return the manifest's entry of the metadata snapshot."""
    for entry in manifest.files:
        if entry.path in {SNAPSHOT, f"{SNAPSHOT}.sealed"}:
            return entry
    raise BackupInvalid(f"backup {manifest.backup_id} lists no metadata snapshot")


def open_snapshot(folder: Path, manifest: Manifest, cipher: BlobCipher | None, out: Path) -> None:
    """Write the backup's snapshot, unsealed, to ``out`` (a plain SQLite file)."""
    entry = snapshot_entry(manifest)
    write_durably(out, read_file(folder, entry, cipher, seal_name(manifest.backup_id, SNAPSHOT)))


def _check(path: Path, sha256: str, size: int, manifest: Manifest) -> None:
    name = manifest.backup_id
    if not path.is_file() or path.is_symlink():
        raise BackupInvalid(
            f"backup {name}: {path} is missing; the backup is incomplete: use another backup"
        )
    actual_size = path.stat().st_size
    if actual_size != size:
        raise BackupInvalid(
            f"backup {name}: {path} is {actual_size} bytes, the manifest recorded {size} "
            "(truncated or replaced); use another backup"
        )
    actual, _ = file_sha256(path)
    if actual != sha256:
        raise BackupInvalid(
            f"backup {name}: {path} does not match its SHA-256 in the manifest (changed or "
            "corrupt); use another backup"
        )
