"""The backup manifest: what a backup holds, each file's SHA-256, written last and atomically.

A backup target is a folder::

    TARGET/.lock                         held (flock) by create and prune, one at a time
    TARGET/blobs/ab/abcdef...            blobs, by the SHA-256 of their stored bytes, shared
    TARGET/backup-20261207T221530123Z-1a2b3c/
        metadata.sqlite                  the metadata snapshot (``.sealed`` when encrypted)
        extra/...                        files the caller adds (the drill's reference batch)
        MANIFEST.json                    written last: the backup exists once this does

A backup folder without ``MANIFEST.json`` is one that was interrupted; nothing reads it, and the
previous backups, each with its own manifest, stay valid. The manifest carries a SHA-256 of its
own canonical JSON, so an edited manifest is told apart from a damaged file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from pathlib import Path

FORMAT = 1
MANIFEST = "MANIFEST.json"
BLOBS_DIR = "blobs"
SNAPSHOT = "metadata.sqlite"
EXTRA_DIR = "extra"
BACKUP_PREFIX = "backup-"
BACKUP_NAME = re.compile(r"^backup-\d{8}T\d{9}Z-[0-9a-f]{6}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

__all__ = ["BackupInvalid", "FileEntry", "Manifest", "read_manifest", "write_manifest"]


class BackupInvalid(InvalidArgument):
    """A backup is incomplete, truncated or changed; it is refused, never restored from."""

    code = "backup_invalid"


@dataclass(frozen=True, slots=True)
class Seal:
    """How a sealed file's data key is wrapped (``security.envelope``): key id and bytes."""

    key_id: str
    wrapped_hex: str


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a backup folder: its path there, SHA-256 and size of the stored bytes."""

    path: str
    sha256: str
    size_bytes: int
    seal: Seal | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything a backup holds, and where it came from.

    Attributes:
        backup_id: The folder's name; sorts by time.
        created_ms: When the snapshot was taken: the backup's recovery point.
        finished_ms: When the manifest was written.
        source_backend: ``sqlite`` or ``postgresql``.
        source_url: The store's URL without its password.
        schema_revision: The snapshot's schema revision (restore migrates it to head).
        files: The backup folder's files.
        blobs: Stored blob digest -> size, each under ``TARGET/blobs``.
        references: How many live blob references the snapshot holds.
        encrypted: Whether the folder's files are sealed under the workspace master key.
    """

    backup_id: str
    created_ms: int
    finished_ms: int
    source_backend: str
    source_url: str
    schema_revision: str
    files: tuple[FileEntry, ...]
    blobs: dict[str, int]
    references: int
    encrypted: bool
    format: int = FORMAT
    extras: tuple[str, ...] = field(default=())

    def file(self, path: str) -> FileEntry:
        """Return the entry of ``path``.

        Raises:
            BackupInvalid: The manifest lists no such file.
        """
        for entry in self.files:
            if entry.path == path:
                return entry
        raise BackupInvalid(f"backup {self.backup_id} has no file {path!r} in its manifest")


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``MANIFEST.json`` atomically: temp file, fsync, rename, fsync the folder."""
    document = asdict(manifest)
    document["checksum"] = hashlib.sha256(_canonical(document)).hexdigest()
    final = folder / MANIFEST
    temp = folder / f".{MANIFEST}.tmp"
    with open(temp, "wb") as out:
        out.write(json.dumps(document, sort_keys=True, indent=1).encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, final)
    fsync_dir(folder)
    return final


def read_manifest(folder: Path) -> Manifest:
    """Read and check a backup folder's manifest.

    Raises:
        BackupInvalid: No manifest (an interrupted backup), unreadable JSON, or a manifest whose
            checksum does not match its content (edited or damaged).
    """
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupInvalid(
            f"backup {folder.name} is incomplete: {path} is missing (the backup was "
            "interrupted before it finished); use an earlier backup or run `shipyard backup "
            "create` again"
        )
    try:
        document = json.loads(path.read_bytes())
        if not isinstance(document, dict):
            raise TypeError("not an object")
        checksum = document.pop("checksum", None)
        if checksum != hashlib.sha256(_canonical(document)).hexdigest():
            raise BackupInvalid(
                f"backup {folder.name}: {path} does not match its checksum (it was edited or "
                "damaged); use another backup"
            )
        manifest = _from_document(document)
    except BackupInvalid:
        raise
    except (ValueError, TypeError, KeyError) as e:
        raise BackupInvalid(
            f"backup {folder.name}: {path} is not a readable manifest ({e}); use another backup"
        ) from e
    if manifest.format != FORMAT:
        raise BackupInvalid(
            f"backup {folder.name} has format {manifest.format}; this Shipyard reads format "
            f"{FORMAT}: restore it with the version that wrote it"
        )
    return manifest


def _from_document(document: dict[str, Any]) -> Manifest:
    files = tuple(
        FileEntry(
            str(f["path"]),
            str(f["sha256"]),
            int(f["size_bytes"]),
            None if f.get("seal") is None else Seal(**f["seal"]),
        )
        for f in document["files"]
    )
    for entry in files:
        _check_relative(entry.path)
    blobs = {str(k): int(v) for k, v in document["blobs"].items()}
    for digest in blobs:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"blob name {digest[:80]!r} is not a SHA-256 digest")
    return Manifest(
        backup_id=str(document["backup_id"]),
        created_ms=int(document["created_ms"]),
        finished_ms=int(document["finished_ms"]),
        source_backend=str(document["source_backend"]),
        source_url=str(document["source_url"]),
        schema_revision=str(document["schema_revision"]),
        files=files,
        blobs=blobs,
        references=int(document["references"]),
        encrypted=bool(document["encrypted"]),
        format=int(document["format"]),
        extras=tuple(str(x) for x in document.get("extras", ())),
    )


def _check_relative(path: str) -> None:
    """A manifest's file paths stay inside the backup folder (the manifest is input too)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise ValueError(f"file path {path[:80]!r} leaves the backup folder")


def seal_name(backup_id: str, path: str) -> str:
    """The name a sealed file's key is bound to: a file moved to another backup fails to open."""
    return f"backup:{backup_id}/{path}"


def blob_path(target: Path, digest: str) -> Path:
    """Where the blob with stored digest ``digest`` lives in a backup target."""
    return target / BLOBS_DIR / digest[:2] / digest


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in ``path`` durable (RELIABILITY.md lesson 5)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
