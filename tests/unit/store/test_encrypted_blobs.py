"""The encrypting blob store's own rules: key rows vs ciphertexts, races, crashes, legacy blobs."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from shipyard.core.errors import ArtifactNotFound, IntegrityFailure
from shipyard.security.envelope import Envelope
from shipyard.security.keys import MasterKey
from shipyard.store.artifacts.encrypted import EncryptedBlobStore
from shipyard.store.artifacts.local import LocalBlobStore
from shipyard.store.encryption import BlobKey, BlobKeyStore
from shipyard.store.sql import SqlStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from shipyard.store.encryption import WrappedKey

KEY = MasterKey.from_bytes(hashlib.sha256(b"unit").digest())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EncryptedBlobStore]:
    sql = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield EncryptedBlobStore(
        LocalBlobStore(tmp_path / "blobs"), BlobKeyStore(sql), Envelope(KEY, chunk_bytes=64)
    )
    sql.close()


def test_a_lost_race_drops_only_the_losers_ciphertext(
    store: EncryptedBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"same content, two writers"
    digest = hashlib.sha256(data).hexdigest()
    seal = store.cipher.seal
    rival: list[str] = []

    def rival_commits_first(
        name: str, chunks: Iterable[bytes]
    ) -> tuple[WrappedKey, Iterator[bytes]]:
        # Another writer stores the same content between our check and our key row.
        wrapped, sealed = seal(name, [data])
        rival.append(store.inner.put_bytes(b"".join(sealed)).digest)
        store.keys.insert(BlobKey(digest, rival[0], wrapped, len(data)), 1)
        return seal(name, chunks)

    monkeypatch.setattr(store.cipher, "seal", rival_commits_first)
    assert store.put_bytes(data).created is False
    assert list(store.inner.iter_digests()) == rival  # our ciphertext was removed, theirs kept
    assert store.get_bytes(digest) == data


def test_a_row_whose_ciphertext_vanished_is_written_afresh(store: EncryptedBlobStore) -> None:
    info = store.put_bytes(b"payload")
    row = store.keys.get(info.digest)
    assert row is not None
    store.inner.delete(row.cipher_digest)
    assert not store.exists(info.digest)
    with pytest.raises(ArtifactNotFound, match="ciphertext"):
        store.get_bytes(info.digest)
    assert store.put_bytes(b"payload").created is True
    assert store.get_bytes(info.digest) == b"payload"


def test_a_crash_before_the_key_row_leaves_only_collectable_ciphertext(
    store: EncryptedBlobStore,
) -> None:
    data = b"written, then the process died"
    _, sealed = store.cipher.seal(hashlib.sha256(data).hexdigest(), [data])
    orphan = store.inner.put_bytes(b"".join(sealed)).digest
    assert list(store.iter_digests()) == [orphan]  # unreferenced: garbage collection's to remove
    store.delete(orphan)
    assert list(store.inner.iter_digests()) == []
    assert store.put_bytes(data).created is True


def test_a_ciphertext_is_not_a_blob_of_its_own(store: EncryptedBlobStore) -> None:
    info = store.put_bytes(b"secret")
    row = store.keys.get(info.digest)
    assert row is not None
    assert not store.exists(row.cipher_digest)
    with pytest.raises(ArtifactNotFound):
        store.get_bytes(row.cipher_digest)
    store.delete(row.cipher_digest)  # must not destroy the blob it belongs to
    assert store.get_bytes(info.digest) == b"secret"
    assert list(store.iter_digests()) == [info.digest]


def test_a_file_that_changes_while_stored_is_refused(
    store: EncryptedBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "moving.bin"
    source.write_bytes(b"a" * 1000)
    seal = store.cipher.seal

    def seal_after_a_change(
        name: str, chunks: Iterable[bytes]
    ) -> tuple[WrappedKey, Iterator[bytes]]:
        source.write_bytes(b"b" * 1000)  # another process rewrites the file mid-way
        return seal(name, chunks)

    monkeypatch.setattr(store.cipher, "seal", seal_after_a_change)
    with pytest.raises(IntegrityFailure, match="changed while it was being stored"):
        store.put_file(source)
    assert list(store.iter_digests()) == []
    assert list(store.inner.iter_digests()) == []
