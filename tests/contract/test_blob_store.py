"""One contract for every BlobStore backend: local disk, the fsspec in-memory twin, and the
encrypting wrapper over each (AES-256-GCM, small chunks so that blobs span many of them)."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from shipyard.core.errors import ArtifactNotFound, IntegrityFailure, InvalidArgument
from shipyard.core.ids import CHUNK_SIZE
from shipyard.store.artifacts import BlobStore, open_blob_store
from shipyard.store.artifacts.encrypted import EncryptedBlobStore
from shipyard.store.artifacts.fsspec_store import FsspecBlobStore
from shipyard.store.artifacts.local import LocalBlobStore
from shipyard.store.encryption import BlobKeyStore
from shipyard.store.sql import SqlStore
from tests.corpus import BAD_URIS

BAD_DIGESTS = [
    "../x",
    "A" * 64,
    "a" * 63,
    "a" * 65,
    "g" * 64,
    "",
    "../" + "a" * 61,
    "a" * 62 + "/.",
]


@pytest.fixture(
    params=["local", "memory", "memory-single-put", "encrypted-local", "encrypted-memory"]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param.startswith("encrypted-"):
        migrated = request.getfixturevalue("migrated_keys_db")
        yield from _encrypted(request.param.removeprefix("encrypted-"), tmp_path, migrated)
        return
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "store")
        return
    name = f"shipyard-test-{uuid.uuid4().hex}"
    yield FsspecBlobStore(f"memory://{name}", object_store=request.param == "memory-single-put")
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture(scope="session")
def migrated_keys_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite store at the head revision, copied per test (migrating takes ~0.2 s)."""
    path = tmp_path_factory.mktemp("keys") / "keys.db"
    SqlStore(f"sqlite:///{path}").close()
    return path


def _encrypted(inner_kind: str, tmp_path: Path, migrated: Path) -> Iterator[BlobStore]:
    from shipyard.security.envelope import Envelope
    from shipyard.security.keys import MasterKey

    master = MasterKey.from_bytes(hashlib.sha256(b"contract").digest())
    shutil.copyfile(migrated, tmp_path / "keys.db")
    sql = SqlStore(f"sqlite:///{tmp_path / 'keys.db'}")
    keys = BlobKeyStore(sql)
    name = f"shipyard-test-{uuid.uuid4().hex}"
    inner: BlobStore = (
        LocalBlobStore(tmp_path / "store")
        if inner_kind == "local"
        else FsspecBlobStore(f"memory://{name}")
    )
    yield EncryptedBlobStore(inner, keys, Envelope(master, chunk_bytes=4096))
    sql.close()
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_get_roundtrip(store: BlobStore) -> None:
    data = b"model bytes \x00\xff"
    info = store.put_bytes(data)
    assert info.digest == sha(data)
    assert info.size_bytes == len(data)
    assert info.created is True
    assert store.get_bytes(info.digest) == data
    assert store.exists(info.digest)
    assert store.size(info.digest) == len(data)
    assert store.verify(info.digest)
    with store.open(info.digest) as stream:
        assert stream.read() == data


def test_empty_blob(store: BlobStore) -> None:
    info = store.put_bytes(b"")
    assert info.digest == sha(b"")
    assert store.get_bytes(info.digest) == b""
    assert store.size(info.digest) == 0


def test_storing_twice_deduplicates(store: BlobStore) -> None:
    first = store.put_bytes(b"same")
    second = store.put_bytes(b"same")
    assert first.created is True
    assert second.created is False
    assert second.digest == first.digest
    assert list(store.iter_digests()) == [first.digest]


def test_put_file_streams_large_file(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(CHUNK_SIZE * 2 + 12345)
    source.write_bytes(data)
    info = store.put_file(source)
    assert info.digest == sha(data)
    assert info.size_bytes == len(data)
    assert store.get_bytes(info.digest) == data
    assert store.put_file(source).created is False
    assert store.put_bytes(data).created is False


def test_missing_digest_is_not_found(store: BlobStore) -> None:
    missing = sha(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(ArtifactNotFound, match=missing):
        store.get_bytes(missing)
    with pytest.raises(ArtifactNotFound):
        store.open(missing)
    with pytest.raises(ArtifactNotFound):
        store.size(missing)
    with pytest.raises(ArtifactNotFound):
        store.verify(missing)


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_malformed_digest_is_invalid_argument(store: BlobStore, digest: str) -> None:
    store.put_bytes(b"something")
    for call in (store.get_bytes, store.open, store.exists, store.size, store.verify, store.delete):
        with pytest.raises(InvalidArgument, match="64 lowercase hexadecimal"):
            call(digest)


def test_delete(store: BlobStore) -> None:
    keep = store.put_bytes(b"keep")
    gone = store.put_bytes(b"gone")
    store.delete(gone.digest)
    assert not store.exists(gone.digest)
    with pytest.raises(ArtifactNotFound):
        store.get_bytes(gone.digest)
    store.delete(gone.digest)  # deleting again is a no-op
    assert list(store.iter_digests()) == [keep.digest]
    assert store.put_bytes(b"gone").created is True


def test_iter_digests_lists_every_blob(store: BlobStore) -> None:
    assert list(store.iter_digests()) == []
    digests = {store.put_bytes(f"blob {i}".encode()).digest for i in range(20)}
    assert sorted(store.iter_digests()) == sorted(digests)


def test_writes_leave_no_temp_files(store: BlobStore) -> None:
    store.put_bytes(b"a")
    store.put_bytes(b"a")
    assert isinstance(store, LocalBlobStore | FsspecBlobStore | EncryptedBlobStore)
    assert store.sweep_temp(0) == 0


def test_url_reopens_the_same_store(store: BlobStore) -> None:
    info = store.put_bytes(b"reopen me")
    again = open_blob_store(store.url)
    if isinstance(store, EncryptedBlobStore):  # the URL names where the ciphertext lives
        assert type(again) is type(store.inner)
        again = EncryptedBlobStore(again, store.keys, store.cipher)
    assert type(again) is type(store)
    assert again.get_bytes(info.digest) == b"reopen me"


def test_local_tampering_is_detected(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    info = store.put_bytes(b"original content")
    blob = tmp_path / "blobs" / "sha256" / info.digest[:2] / info.digest[2:]
    assert blob.read_bytes() == b"original content"
    blob.write_bytes(b"tampered content")
    assert store.verify(info.digest) is False
    with pytest.raises(IntegrityFailure, match="corrupt"):
        store.get_bytes(info.digest)


def test_memory_tampering_is_detected() -> None:
    name = f"shipyard-test-{uuid.uuid4().hex}"
    store = FsspecBlobStore(f"memory://{name}")
    info = store.put_bytes(b"original content")
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/{name}/blobs/sha256/{info.digest[:2]}/{info.digest[2:]}", b"tampered")
    try:
        assert store.verify(info.digest) is False
        with pytest.raises(IntegrityFailure):
            store.get_bytes(info.digest)
    finally:
        fs.rm(f"/{name}", recursive=True)


def test_local_layout_and_url(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()  # nothing is created until the first write
    assert store.url == (tmp_path / "fresh").as_uri()
    info = store.put_bytes(b"x")
    assert (tmp_path / "fresh" / "blobs" / "sha256" / info.digest[:2] / info.digest[2:]).is_file()
    assert (tmp_path / "fresh" / "tmp").is_dir()


@pytest.mark.parametrize(
    "uri", [u for u in BAD_URIS if u.split(":")[0] in {"http", "gopher", "dict"}]
)
def test_open_blob_store_refuses_fetch_schemes(uri: str) -> None:
    with pytest.raises(InvalidArgument, match="cannot be a blob store root"):
        open_blob_store(uri)


@pytest.mark.parametrize("uri", ["https://example.com/x", "ftp://example.com/x", "HTTP://x/"])
def test_open_blob_store_refuses_other_fetch_schemes(uri: str) -> None:
    with pytest.raises(InvalidArgument):
        open_blob_store(uri)


@pytest.mark.parametrize(
    "uri", ["file://evil.example.com/data", "file:///data?x=1", "", "nosuchproto://x"]
)
def test_open_blob_store_refuses_bad_locations(uri: str) -> None:
    with pytest.raises(InvalidArgument):
        open_blob_store(uri)


def test_open_blob_store_picks_backend(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(tmp_path), LocalBlobStore)
    assert isinstance(open_blob_store(str(tmp_path)), LocalBlobStore)
    for url in (tmp_path.as_uri(), "FILE://" + str(tmp_path)):
        local = open_blob_store(url)
        assert isinstance(local, LocalBlobStore)
        assert local.root == tmp_path
    assert isinstance(open_blob_store(f"memory://{uuid.uuid4().hex}"), FsspecBlobStore)
