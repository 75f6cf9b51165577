"""Encryption at rest on a real workspace: nothing readable on disk, wrong keys refused, rotation.

Every test uses a real workspace (SQLite store, local artifact root) with ``encryption.enabled``
and the master key in ``$SHIPYARD_MASTER_KEY``, as a user would set it up.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest

from shipyard.core.errors import IntegrityFailure, InvalidSettings
from shipyard.data.datasets import get_dataset, read_dataset, write_dataset
from shipyard.security.at_rest import rotate_master_key
from shipyard.security.audit_chain import security_store
from shipyard.security.envelope import MasterKeyMismatch
from shipyard.security.keys import MasterKey, write_key_file
from shipyard.store.artifacts.encrypted import EncryptedBlobStore
from shipyard.store.artifacts.local import LocalBlobStore
from shipyard.store.encryption import BlobKeyStore
from shipyard.store.security import SecurityStore
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

if TYPE_CHECKING:
    from collections.abc import Iterator

MARKER = b"PLAINTEXT-MARKER-7f3a9c"
#: In dataset rows. Dataset profiles (top values, min/max) live in the metadata store, which
#: encryption at rest does not cover (docs/security.md), so this one is looked for in files only.
DATA_MARKER = b"DATASET-MARKER-51be02"


def master(seed: str) -> MasterKey:
    return MasterKey.from_bytes(hashlib.sha256(seed.encode()).digest(), seed)


def b64(key: MasterKey) -> str:
    return base64.b64encode(key.material).decode()


OLD, NEW = master("old"), master("new")


@pytest.fixture
def encrypted_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "true")
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", b64(OLD))


def open_ws(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path, artifact_root=str(tmp_path / "artifacts"))


def files_under(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def fill(ws: Workspace, tmp_path: Path) -> tuple[str, str, str]:
    """Log a small and a multi-chunk artifact and a dataset, each holding the marker."""
    big = tmp_path / "big.bin"
    big.write_bytes((MARKER + b"\n") * 200_000)  # ~4.6 MiB: five 1 MiB chunks
    frame = pl.DataFrame(
        {"secret": [f"{DATA_MARKER.decode()}{i}" for i in range(50)], "x": range(50)}
    )
    with ws.start_run("r") as run:
        small = run.log_artifact(MARKER + b" in a small artifact", name="small.txt")[0]
        large = run.log_artifact(big, name="big.bin")[0]
    dataset = write_dataset(ws, frame, name="people")
    big.unlink()
    return small.digest, large.digest, dataset.dataset_id


@pytest.mark.usefixtures("encrypted_env")
def test_no_plaintext_on_disk_and_everything_reads_back(tmp_path: Path) -> None:
    with open_ws(tmp_path) as ws:
        assert isinstance(ws.blobs, EncryptedBlobStore)
        small, large, dataset = fill(ws, tmp_path)
        run_id = ws.search_runs()[0].run_id
    everything = list(files_under(tmp_path))  # the store, its WAL, every blob
    assert [p for p in everything if MARKER in p.read_bytes()] == []
    artifact_files = list(files_under(tmp_path / "artifacts"))
    assert len(artifact_files) == 3  # two artifacts and one dataset: ciphertext only
    for path in artifact_files:
        assert DATA_MARKER not in path.read_bytes(), path
        assert not path.read_bytes().startswith(b"PAR1"), "a Parquet file in the clear"
    with open_ws(tmp_path) as ws:
        assert ws.read_artifact(run_id, "small.txt") == MARKER + b" in a small artifact"
        assert ws.blobs.get_bytes(large) == (MARKER + b"\n") * 200_000
        with ws.blobs.open(large) as stream:
            assert stream.read(len(MARKER)) == MARKER
        assert ws.blobs.verify(small)
        frame = read_dataset(ws, dataset).collect()
        assert frame["secret"][3] == f"{DATA_MARKER.decode()}3"
        stored = get_dataset(ws, dataset).digest
        assert sorted(ws.blobs.iter_digests()) == sorted({small, large, stored})


def test_an_unencrypted_workspace_is_unchanged(tmp_path: Path) -> None:
    with open_ws(tmp_path) as ws:
        assert isinstance(ws.blobs, LocalBlobStore)
        with ws.start_run("r") as run:
            run.log_artifact(MARKER, name="plain.txt")
    assert any(MARKER in p.read_bytes() for p in files_under(tmp_path / "artifacts"))


@pytest.mark.usefixtures("encrypted_env")
def test_turning_encryption_on_keeps_old_blobs_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "false")
    with open_ws(tmp_path) as ws:
        before = ws.blobs.put_bytes(MARKER + b" from before").digest
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "true")
    with open_ws(tmp_path) as ws:
        assert ws.blobs.get_bytes(before) == MARKER + b" from before"
        assert list(ws.blobs.iter_digests()) == [before]
        assert ws.blobs.put_bytes(MARKER + b" from before").created is True  # now sealed
        assert ws.blobs.get_bytes(before) == MARKER + b" from before"
    assert not any(MARKER in p.read_bytes() for p in files_under(tmp_path / "artifacts"))


def test_encryption_without_a_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "true")
    with pytest.raises(InvalidSettings, match=r"no master key is set.*SHIPYARD_MASTER_KEY"):
        open_ws(tmp_path)


@pytest.mark.usefixtures("encrypted_env")
def test_the_key_file_setting_is_relative_to_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_MASTER_KEY")
    write_key_file(tmp_path / "master.key", b64(OLD))
    (tmp_path / "shipyard.yaml").write_text(
        "workspace:\n  encryption:\n    enabled: true\n    key_file: master.key\n"
    )
    with open_ws(tmp_path) as ws:
        digest = ws.blobs.put_bytes(MARKER).digest
        assert ws.blobs.keys.get(digest).key.key_id == OLD.key_id  # type: ignore[union-attr]


@pytest.mark.usefixtures("encrypted_env")
def test_a_wrong_master_key_is_refused_with_both_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_ws(tmp_path) as ws:
        ws.blobs.put_bytes(MARKER)
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", b64(master("intruder")))
    with pytest.raises(MasterKeyMismatch, match=f"not this workspace's key.*{OLD.key_id}"):
        open_ws(tmp_path)


@pytest.mark.usefixtures("encrypted_env")
def test_rotation_rewraps_keys_without_rewriting_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_ws(tmp_path) as ws:
        _, large, dataset = fill(ws, tmp_path)
    artifacts = tmp_path / "artifacts"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files_under(artifacts)}
    with open_ws(tmp_path) as ws:
        report = rotate_master_key(ws.blobs.keys, OLD, NEW, actor=OPERATOR, audit_log=_log(ws))  # type: ignore[attr-defined]
    assert (report.rewrapped, report.skipped) == (3, 0)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files_under(artifacts)}
    assert after == before  # not one byte of data rewritten
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", b64(NEW))
    with open_ws(tmp_path) as ws:
        assert ws.blobs.get_bytes(large) == (MARKER + b"\n") * 200_000
        assert read_dataset(ws, dataset).collect().height == 50
        records = ws.blobs.keys.master_keys()  # type: ignore[attr-defined]
    assert [(r.key_id, r.blob_count, r.retired_ms is not None) for r in records] == [
        (OLD.key_id, 0, True),
        (NEW.key_id, 3, False),
    ]
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", b64(OLD))
    with pytest.raises(MasterKeyMismatch, match="was replaced by key"):
        open_ws(tmp_path)


@pytest.mark.usefixtures("encrypted_env")
def test_an_interrupted_rotation_is_finished_by_a_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_ws(tmp_path) as ws:
        digests = [ws.blobs.put_bytes(MARKER + bytes([i])).digest for i in range(5)]
        keys: BlobKeyStore = ws.blobs.keys  # type: ignore[attr-defined]
        monkeypatch.setenv("SHIPYARD_FAULT", "keys.after_rewrap:raise:EIO")
        with pytest.raises(OSError, match="injected fault"):
            rotate_master_key(keys, OLD, NEW, actor=OPERATOR, audit_log=_log(ws))
        monkeypatch.delenv("SHIPYARD_FAULT")
        assert keys.counts_by_key() == {OLD.key_id: 4, NEW.key_id: 1}  # one committed
        assert keys.current_key_id() == NEW.key_id
        # Mid-rotation, the old key can no longer write (its new rows would be stranded).
        with pytest.raises(MasterKeyMismatch, match="was replaced"):
            ws.blobs.put_bytes(b"written during rotation")
        report = rotate_master_key(keys, OLD, NEW, actor=OPERATOR, audit_log=_log(ws))
        assert report.rewrapped == 4
        assert keys.counts_by_key() == {NEW.key_id: 5}
        assert (
            rotate_master_key(keys, OLD, NEW, actor=OPERATOR, audit_log=_log(ws)).rewrapped == 0
        )  # a third run has nothing to do
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", b64(NEW))
    with open_ws(tmp_path) as ws:
        assert [ws.blobs.get_bytes(d) for d in digests] == [MARKER + bytes([i]) for i in range(5)]


@pytest.mark.usefixtures("encrypted_env")
def test_rotation_refuses_the_wrong_old_key(tmp_path: Path) -> None:
    with open_ws(tmp_path) as ws:
        ws.blobs.put_bytes(MARKER)
        keys: BlobKeyStore = ws.blobs.keys  # type: ignore[attr-defined]
        with pytest.raises(MasterKeyMismatch, match="not this workspace's current master key"):
            rotate_master_key(keys, master("intruder"), NEW, actor=OPERATOR, audit_log=_log(ws))
        with pytest.raises(ValueError, match="same key"):
            rotate_master_key(keys, OLD, OLD, actor=OPERATOR, audit_log=_log(ws))
        assert keys.counts_by_key() == {OLD.key_id: 1}


@pytest.mark.usefixtures("encrypted_env")
def test_swapped_ciphertexts_are_detected(tmp_path: Path) -> None:
    with open_ws(tmp_path) as ws:
        a = ws.blobs.put_bytes(b"object a " * 10).digest
        b = ws.blobs.put_bytes(b"object b " * 10).digest
        keys: BlobKeyStore = ws.blobs.keys  # type: ignore[attr-defined]
        inner: LocalBlobStore = ws.blobs.inner  # type: ignore[attr-defined]
        row_a, row_b = keys.get(a), keys.get(b)
        assert row_a is not None
        assert row_b is not None
        path_a = inner.local_path(row_a.cipher_digest)
        path_b = inner.local_path(row_b.cipher_digest)
        data_a = path_a.read_bytes()
        path_a.write_bytes(path_b.read_bytes())
        assert ws.blobs.verify(a) is False
        with pytest.raises(IntegrityFailure, match="failed authentication"):
            ws.blobs.get_bytes(a)
        path_a.write_bytes(data_a[:-1] + bytes([data_a[-1] ^ 1]))
        with pytest.raises(IntegrityFailure):
            ws.blobs.get_bytes(a)
        assert ws.blobs.get_bytes(b) == b"object b " * 10


def _log(ws: Workspace) -> SecurityStore:
    """The workspace's audit log, sealed as its settings say."""
    return security_store(ws.settings, ws.store)
