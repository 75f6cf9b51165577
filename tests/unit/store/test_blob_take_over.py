"""A local blob store takes over a scratch file instead of copying it (issue 17).

``put_file(path, scratch=True)`` moves a file on the store's filesystem into the store (one
read to hash it, no second write); the blob it stores is the file's bytes under their digest,
exactly as a copy would have stored them. Without ``scratch`` the caller's file is left alone.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from shipyard.store.artifacts.local import LocalBlobStore

if TYPE_CHECKING:
    from pathlib import Path

DATA = os.urandom(3 * 1024 * 1024 + 17)  # more than one CHUNK_SIZE piece


def test_a_scratch_file_is_moved_in_under_its_digest(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    scratch = tmp_path / "out.parquet"
    scratch.write_bytes(DATA)
    inode = scratch.stat().st_ino

    blob = store.put_file(scratch, scratch=True)

    assert blob.digest == hashlib.sha256(DATA).hexdigest()
    assert blob.size_bytes == len(DATA)
    assert blob.created
    assert not scratch.exists()  # taken over, not copied
    stored = store.local_path(blob.digest)
    assert stored.stat().st_ino == inode  # the same file, now the store's
    assert store.get_bytes(blob.digest) == DATA  # get_bytes checks the digest
    assert store.verify(blob.digest)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_a_scratch_file_already_stored_is_dropped(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    first = store.put_bytes(DATA)
    scratch = tmp_path / "again.parquet"
    scratch.write_bytes(DATA)

    blob = store.put_file(scratch, scratch=True)

    assert (blob.digest, blob.created) == (first.digest, False)
    assert not scratch.exists()
    assert store.get_bytes(blob.digest) == DATA
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_without_scratch_the_callers_file_is_copied(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    kept = tmp_path / "kept.parquet"
    kept.write_bytes(DATA)

    blob = store.put_file(kept)

    assert kept.read_bytes() == DATA
    assert store.local_path(blob.digest).stat().st_ino != kept.stat().st_ino
    assert store.get_bytes(blob.digest) == DATA
