"""An encrypted workspace stays encrypted for a process that lacks the encryption setting.

Real workspaces (SQLite store, local artifact root), the master key in ``$SHIPYARD_MASTER_KEY``
as a user would set it; the "other process" is a second ``Workspace.open`` without
``encryption.enabled`` (and, in the first cases, without the key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shipyard.core.errors import ArtifactNotFound
from shipyard.security.at_rest import MasterKeyRequired
from shipyard.store.artifacts.encrypted import EncryptedBlobStore
from shipyard.store.encryption import BlobKeyStore
from tests.unit.security.test_at_rest import MARKER, OLD, b64, files_under, open_ws

if TYPE_CHECKING:
    from pathlib import Path


def _snapshot(root: Path) -> set[Path]:
    return set(files_under(root))


@pytest.fixture
def encrypted_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A workspace with one plaintext blob from before encryption and one encrypted blob.

    Leaves the environment as a process without the setting and without the key sees it.
    """
    monkeypatch.delenv("SHIPYARD_ENCRYPTION__ENABLED", raising=False)
    monkeypatch.delenv("SHIPYARD_MASTER_KEY", raising=False)
    with open_ws(tmp_path) as ws:
        legacy = ws.blobs.put_bytes(b"public text from before encryption").digest
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "true")
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", b64(OLD))
    with open_ws(tmp_path) as ws:
        secret = ws.blobs.put_bytes(MARKER + b" sealed").digest
    monkeypatch.delenv("SHIPYARD_ENCRYPTION__ENABLED")
    monkeypatch.delenv("SHIPYARD_MASTER_KEY")
    return legacy, secret


def test_the_workspace_records_that_it_is_encrypted_and_under_which_key(
    tmp_path: Path, encrypted_workspace: tuple[str, str]
) -> None:
    with open_ws(tmp_path) as ws:
        assert BlobKeyStore(ws.store).current_key_id() == OLD.key_id
        assert isinstance(ws.blobs, EncryptedBlobStore)


def test_a_process_without_the_key_refuses_to_write(
    tmp_path: Path, encrypted_workspace: tuple[str, str]
) -> None:
    before = _snapshot(tmp_path / "artifacts")
    with open_ws(tmp_path) as ws:
        with pytest.raises(MasterKeyRequired, match=f"encrypted \\(master key {OLD.key_id}\\)"):
            ws.blobs.put_bytes(MARKER + b" must not land in plaintext")
        big = tmp_path / "big.bin"
        big.write_bytes(MARKER * 1000)
        with pytest.raises(MasterKeyRequired, match="SHIPYARD_MASTER_KEY"):
            ws.blobs.put_file(big)
        with pytest.raises(MasterKeyRequired), ws.start_run("r") as run:
            run.log_artifact(MARKER + b" via a run", name="x.txt")
    assert _snapshot(tmp_path / "artifacts") == before  # nothing written, not even a temp file
    assert not any(MARKER in p.read_bytes() for p in files_under(tmp_path / "artifacts"))


def test_reading_an_encrypted_blob_without_the_key_says_so(
    tmp_path: Path, encrypted_workspace: tuple[str, str]
) -> None:
    legacy, secret = encrypted_workspace
    with open_ws(tmp_path) as ws:
        message = f"blob {secret} is encrypted under master key {OLD.key_id}"
        with pytest.raises(MasterKeyRequired, match=message):
            ws.blobs.get_bytes(secret)
        with pytest.raises(MasterKeyRequired, match="no master key to read it"):
            ws.blobs.open(secret)
        with pytest.raises(MasterKeyRequired):
            ws.blobs.verify(secret)
        assert ws.blobs.exists(secret)
        assert ws.blobs.size(secret) == len(MARKER + b" sealed")
        assert ws.blobs.get_bytes(legacy) == b"public text from before encryption"
        with pytest.raises(ArtifactNotFound, match="no blob with digest"):
            ws.blobs.get_bytes("0" * 64)


def test_a_process_with_the_key_but_not_the_setting_encrypts(
    tmp_path: Path, encrypted_workspace: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, secret = encrypted_workspace
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", b64(OLD))
    with open_ws(tmp_path) as ws:
        digest = ws.blobs.put_bytes(MARKER + b" written without the setting").digest
        assert ws.blobs.get_bytes(secret) == MARKER + b" sealed"
        assert ws.blobs.get_bytes(digest) == MARKER + b" written without the setting"
    assert not any(MARKER in p.read_bytes() for p in files_under(tmp_path / "artifacts"))
