"""Files of a backup: written durably while hashed, sealed when a cipher is given; blobs copied.

Every file of a backup is written to a temp name, hashed as it is written, fsynced and renamed,
so the manifest's SHA-256 is of the bytes that reached the disk. Sealing uses the workspace's
``BlobCipher`` (``security.envelope.Envelope``: AES-256-GCM under a fresh data key wrapped by the
master key); this module only moves bytes, it never does cryptography itself.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, BinaryIO

from shipyard.core import faults
from shipyard.core.errors import IntegrityFailure
from shipyard.core.ids import CHUNK_SIZE
from shipyard.store.backup.manifest import BackupInvalid, FileEntry, Seal, blob_path, fsync_dir
from shipyard.store.encryption import WrappedKey

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.artifacts.encrypted import BlobCipher


def chunks_of(stream: BinaryIO) -> Iterator[bytes]:
    """Yield ``stream``'s content in chunks."""
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def file_sha256(path: Path) -> tuple[str, int]:
    """Return the SHA-256 hex digest and the size of the file at ``path``."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        for chunk in chunks_of(source):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def write_durably(path: Path, chunks: Iterable[bytes]) -> tuple[str, int]:
    """Write ``chunks`` to ``path`` (temp, fsync, rename); return the SHA-256 and size written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    hasher = hashlib.sha256()
    size = 0
    with open(temp, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            hasher.update(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)
    return hasher.hexdigest(), size


def add_file(
    folder: Path, name: str, chunks: Iterable[bytes], cipher: BlobCipher | None, seal_name: str
) -> FileEntry:
    """Write one file of a backup folder, sealed under ``cipher`` when given."""
    if cipher is None:
        digest, size = write_durably(folder / name, chunks)
        return FileEntry(name, digest, size)
    wrapped, sealed = cipher.seal(seal_name, chunks)
    digest, size = write_durably(folder / f"{name}.sealed", sealed)
    return FileEntry(f"{name}.sealed", digest, size, Seal(wrapped.key_id, wrapped.wrapped.hex()))


def read_file(
    folder: Path, entry: FileEntry, cipher: BlobCipher | None, seal_name: str
) -> Iterator[bytes]:
    """Yield the plaintext of a backup file (unsealed under ``cipher`` when it was sealed).

    Raises:
        BackupInvalid: The file is sealed and no cipher (master key) was given.
    """
    path = folder / entry.path
    if entry.seal is None:
        with open(path, "rb") as source:
            yield from chunks_of(source)
        return
    if cipher is None:
        raise BackupInvalid(
            f"{path} is encrypted under master key {entry.seal.key_id}; set the workspace's "
            "master key (SHIPYARD_MASTER_KEY or encryption.key_file) to read it"
        )
    wrapped = WrappedKey(entry.seal.key_id, bytes.fromhex(entry.seal.wrapped_hex))
    with open(path, "rb") as source:
        yield from cipher.unseal(seal_name, wrapped, source)


def copy_blobs(raw: BlobStore, digests: dict[str, int], target: Path) -> tuple[int, int]:
    """Copy the stored blobs that ``target`` lacks; return (copied, already there).

    ``raw`` is the store holding the bytes as stored (ciphertext for encrypted blobs), so
    nothing is decrypted on the way. Each copy is hashed and must match its digest.
    """
    copied = reused = 0
    for digest in sorted(digests):
        final = blob_path(target, digest)
        if final.is_file() and final.stat().st_size == digests[digest]:
            reused += 1
            continue
        with raw.open(digest) as source:
            written, _ = write_durably(final, chunks_of(source))
        if written != digest:
            final.unlink(missing_ok=True)
            raise IntegrityFailure(
                f"blob {digest[:12]} changed while it was copied (its bytes hash to "
                f"{written[:12]}); run `shipyard gc --verify` and back up again"
            )
        copied += 1
        faults.hit("backup.after_blob")
    return copied, reused
