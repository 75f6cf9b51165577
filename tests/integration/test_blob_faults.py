"""Blob writes under injected faults (RELIABILITY.md lesson 5) and symlinks planted in the store.

After each fault: no partial blob is visible, every visible blob matches its digest, and nothing
outside the store root changed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest

from shipyard.core.errors import IntegrityFailure
from shipyard.core.faults import ENV_VAR
from shipyard.store.artifacts.fsspec_store import FsspecBlobStore
from shipyard.store.artifacts.local import LocalBlobStore

PAYLOAD = b"weights " * 100_000  # 800 kB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()

_WRITER = """
import sys
from pathlib import Path
from shipyard.store.artifacts.local import LocalBlobStore
store = LocalBlobStore(sys.argv[1])
if sys.argv[2] == "file":
    store.put_file(Path(sys.argv[3]))
else:
    store.put_bytes(Path(sys.argv[3]).read_bytes())
print("finished")
"""


def run_writer(
    root: Path, fault: str, source: Path, how: str = "bytes"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV_VAR: fault}
    return subprocess.run(
        [sys.executable, "-c", _WRITER, str(root), how, str(source)],
        env=env,
        cwd=root.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def temp_files(root: Path) -> list[str]:
    tmp = root / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    return path


@pytest.mark.slow  # a subprocess imports the whole shipyard package (~3 s)
@pytest.mark.parametrize("how", ["bytes", "file"])
def test_kill_after_temp_write_leaves_no_partial_blob(
    tmp_path: Path, source: Path, how: str
) -> None:
    root = tmp_path / "store"
    result = run_writer(root, "artifact.after_tmp_write:kill", source, how)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert "finished" not in result.stdout

    store = LocalBlobStore(root)
    assert list(store.iter_digests()) == []
    assert not store.exists(DIGEST)
    assert not (root / "blobs" / "sha256" / DIGEST[:2] / DIGEST[2:]).exists()
    leftovers = temp_files(root)
    assert len(leftovers) == 1
    assert (root / "tmp" / leftovers[0]).read_bytes() == PAYLOAD  # fsynced before the fault

    assert store.sweep_temp() == 0  # too young for the default age
    assert store.sweep_temp(0) == 1
    assert temp_files(root) == []
    # The store still works, and the retried write lands.
    assert store.put_file(source).created is True
    assert store.get_bytes(DIGEST) == PAYLOAD


@pytest.mark.slow  # a subprocess imports the whole shipyard package (~3 s)
def test_kill_after_rename_leaves_a_complete_blob(tmp_path: Path, source: Path) -> None:
    root = tmp_path / "store"
    result = run_writer(root, "artifact.after_rename:kill", source)
    assert result.returncode == -signal.SIGKILL, result.stderr

    store = LocalBlobStore(root)
    assert list(store.iter_digests()) == [DIGEST]
    assert store.verify(DIGEST)
    assert temp_files(root) == []
    assert store.put_bytes(PAYLOAD).created is False


@pytest.mark.slow  # a subprocess imports the whole shipyard package (~3 s)
def test_unarmed_writer_finishes(tmp_path: Path, source: Path) -> None:
    root = tmp_path / "store"
    result = run_writer(root, "", source)
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout
    assert LocalBlobStore(root).get_bytes(DIGEST) == PAYLOAD


@pytest.mark.parametrize("how", ["bytes", "file"])
def test_enospc_after_temp_write_cleans_up(
    tmp_path: Path, source: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    store = LocalBlobStore(root)
    monkeypatch.setenv(ENV_VAR, "artifact.after_tmp_write:raise:ENOSPC")
    put = (lambda: store.put_file(source)) if how == "file" else (lambda: store.put_bytes(PAYLOAD))
    with pytest.raises(OSError, match="injected fault") as info:
        put()
    assert info.value.errno == errno.ENOSPC
    assert temp_files(root) == []
    assert list(store.iter_digests()) == []
    assert not store.exists(DIGEST)

    monkeypatch.delenv(ENV_VAR)
    assert store.put_bytes(PAYLOAD).created is True


def test_error_after_rename_keeps_a_valid_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path)
    monkeypatch.setenv(ENV_VAR, "artifact.after_rename:raise:EIO")
    with pytest.raises(OSError, match="injected fault"):
        store.put_bytes(PAYLOAD)
    monkeypatch.delenv(ENV_VAR)
    assert temp_files(tmp_path) == []
    assert list(store.iter_digests()) == [DIGEST]
    assert store.verify(DIGEST)


@pytest.mark.parametrize("object_store", [False, True])
def test_memory_store_fault_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, object_store: bool
) -> None:
    name = f"shipyard-test-{uuid.uuid4().hex}"
    store = FsspecBlobStore(f"memory://{name}", object_store=object_store)
    fs = fsspec.filesystem("memory")
    monkeypatch.setenv(ENV_VAR, "artifact.after_tmp_write:raise:ENOSPC")
    try:
        with pytest.raises(OSError, match="injected fault"):
            store.put_bytes(PAYLOAD)
        assert list(store.iter_digests()) == []
        assert fs.find(f"/{name}") == []
    finally:
        if fs.exists(f"/{name}"):
            fs.rm(f"/{name}", recursive=True)


def test_symlink_at_blob_path_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalBlobStore(root)
    store.put_bytes(b"unrelated")  # creates the layout
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"secret outside the root")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    link = root / "blobs" / "sha256" / digest[:2] / digest[2:]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)

    with pytest.raises(IntegrityFailure, match="symlink"):
        store.get_bytes(digest)
    with pytest.raises(IntegrityFailure, match="symlink"):
        store.open(digest)
    with pytest.raises(IntegrityFailure):
        store.size(digest)
    assert store.verify(digest) is False
    assert not store.exists(digest)
    assert digest not in list(store.iter_digests())

    # Writing the same content replaces the link itself, never the file it points at.
    assert store.put_bytes(b"secret outside the root").created is True
    assert not link.is_symlink()
    assert store.get_bytes(digest) == b"secret outside the root"
    assert secret.read_bytes() == b"secret outside the root"
    store.delete(digest)
    assert secret.exists()


def test_symlinked_shard_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    data = b"planted"
    digest = hashlib.sha256(data).hexdigest()
    (outside / digest[2:]).write_bytes(data)
    root = tmp_path / "store"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "blobs" / "sha256" / digest[:2]).symlink_to(outside, target_is_directory=True)

    store = LocalBlobStore(root)
    with pytest.raises(IntegrityFailure, match="symlink"):
        store.get_bytes(digest)
    assert list(store.iter_digests()) == []
    # Writing through the planted directory would create a file outside the root.
    with pytest.raises(IntegrityFailure, match="symlink"):
        store.put_bytes(data)
    assert sorted(os.listdir(outside)) == [digest[2:]]
    assert temp_files(root) == []


def test_fifo_at_blob_path_does_not_block(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = hashlib.sha256(b"fifo").hexdigest()
    path = tmp_path / "blobs" / "sha256" / digest[:2] / digest[2:]
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with pytest.raises(IntegrityFailure, match="not a regular file"):
        store.get_bytes(digest)
