"""Backups of the metadata store and its blobs: verified, refused when damaged, restored.

Real SQLite and PostgreSQL (the ``workspace`` fixture runs each test on both), real files. The
concurrency, SIGKILL, SQLite → PostgreSQL and drill tests are in tests/integration.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.core.settings import load_settings
from shipyard.security.envelope import Envelope
from shipyard.security.keys import generate_master_key, parse_master_key
from shipyard.store.backup.catalog import list_backups, prune_backups
from shipyard.store.backup.create import create_backup
from shipyard.store.backup.manifest import BLOBS_DIR, MANIFEST, SNAPSHOT, BackupInvalid
from shipyard.store.backup.restore import RestoreTargetNotEmpty, restore_backup
from shipyard.store.backup.verify import verify_backup
from shipyard.track.workspace import Workspace
from tests.backups import populate, table_rows


def _blob_files(target: Path) -> list[Path]:
    return sorted(p for p in (target / BLOBS_DIR).rglob("*") if p.is_file())


def test_a_backup_verifies_and_restores_with_every_row_and_blob(
    workspace: Workspace, tmp_path: Path
) -> None:
    populate(workspace, tmp_path, model=False)
    result = create_backup(workspace.store, workspace.blobs, tmp_path / "bk")

    checked = verify_backup(result.folder)
    assert checked.references_checked
    assert result.manifest.references == 1
    assert len(result.manifest.blobs) == 1

    url = f"sqlite:///{tmp_path / 'restored.db'}"
    restored = restore_backup(result.folder, url, str(tmp_path / "restored-blobs"))
    assert restored.rows["runs"] == 1
    engine = sa.create_engine(url)
    try:
        assert table_rows(engine) == table_rows(workspace.store.engine)
    finally:
        engine.dispose()
    again = Workspace(
        load_settings(project_dir=tmp_path, store_url=url, artifact_root=str(tmp_path / "rb"))
    )
    try:
        (run,) = again.search_runs()
        (artifact,) = again.list_artifacts(run.run_id)
        assert artifact.digest in set(result.manifest.blobs)
    finally:
        again.close()


def test_damaged_backups_are_refused_naming_the_file(workspace: Workspace, tmp_path: Path) -> None:
    populate(workspace, tmp_path, model=False)
    folder = create_backup(workspace.store, workspace.blobs, tmp_path / "bk").folder
    (blob,) = _blob_files(tmp_path / "bk")

    content = blob.read_bytes()
    blob.write_bytes(content[:-3])  # truncated
    with pytest.raises(BackupInvalid, match=rf"{blob.name}.*truncated"):
        verify_backup(folder)
    blob.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # same size, one bit changed
    with pytest.raises(BackupInvalid, match=rf"{blob.name}.*SHA-256"):
        verify_backup(folder)
    blob.write_bytes(content)

    snapshot = folder / SNAPSHOT
    data = bytearray(snapshot.read_bytes())
    data[5000] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    with pytest.raises(BackupInvalid, match=r"metadata\.sqlite does not match its SHA-256"):
        verify_backup(folder)
    with pytest.raises(BackupInvalid, match=r"metadata\.sqlite"):
        restore_backup(folder, f"sqlite:///{tmp_path / 'r.db'}", str(tmp_path / "rb"))
    assert not (tmp_path / "r.db").exists()
    data[5000] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    verify_backup(folder)

    manifest = folder / MANIFEST
    document = json.loads(manifest.read_text())
    document["blobs"] = {}  # hide the blob from the manifest
    manifest.write_text(json.dumps(document))
    with pytest.raises(BackupInvalid, match=r"MANIFEST\.json does not match its checksum"):
        verify_backup(folder)
    manifest.unlink()
    with pytest.raises(BackupInvalid, match=r"incomplete: .*MANIFEST\.json is missing"):
        verify_backup(folder)


def test_backups_share_blobs_by_digest_and_prune_keeps_what_the_rest_need(
    workspace: Workspace, tmp_path: Path
) -> None:
    target = tmp_path / "bk"
    populate(workspace, tmp_path, model=False, tag="a")
    first = create_backup(workspace.store, workspace.blobs, target)
    populate(workspace, tmp_path, model=False, tag="b")
    second = create_backup(workspace.store, workspace.blobs, target)
    third = create_backup(workspace.store, workspace.blobs, target)

    assert (first.blobs_copied, first.blobs_reused) == (1, 0)
    assert (second.blobs_copied, second.blobs_reused) == (1, 1)
    assert (third.blobs_copied, third.blobs_reused) == (0, 2)
    assert len(_blob_files(target)) == 2

    incomplete = target / "backup-20000101T000000000Z-000000"
    incomplete.mkdir()  # an interrupted backup, older than every complete one
    listed = list_backups(target)
    assert [b.manifest is not None for b in listed] == [False, True, True, True]

    pruned = prune_backups(target, keep=1)
    assert pruned.backups == sorted(
        [incomplete.name, first.manifest.backup_id, second.manifest.backup_id]
    )
    assert pruned.kept == [third.manifest.backup_id]
    assert pruned.blobs == 0  # the kept backup needs both blobs
    verify_backup(third.folder)


def test_restore_refuses_a_target_that_holds_data(workspace: Workspace, tmp_path: Path) -> None:
    populate(workspace, tmp_path, model=False)
    folder = create_backup(workspace.store, workspace.blobs, tmp_path / "bk").folder
    url = f"sqlite:///{tmp_path / 'r.db'}"
    restore_backup(folder, url, str(tmp_path / "rb"))
    with pytest.raises(RestoreTargetNotEmpty, match="already holds data"):
        restore_backup(folder, url, str(tmp_path / "rb"))


def test_an_encrypted_workspace_backup_is_sealed_and_needs_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = generate_master_key()
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", text)
    settings = load_settings(project_dir=tmp_path, encryption={"enabled": True})
    cipher = Envelope(parse_master_key(text, "test"))
    with Workspace(settings) as ws:
        populate(ws, tmp_path, model=False)
        result = create_backup(ws.store, ws.blobs, tmp_path / "bk", cipher=cipher)
        (run,) = ws.search_runs()
        expected = ws.read_artifact(run.run_id, "notes-a.txt")

    files = [entry.path for entry in result.manifest.files]
    assert files == [f"{SNAPSHOT}.sealed"]
    sealed = (result.folder / files[0]).read_bytes()
    assert not sealed.startswith(b"SQLite format")
    assert all(b"artifact a" not in p.read_bytes() for p in _blob_files(tmp_path / "bk"))
    assert not verify_backup(result.folder).references_checked  # no key: files only
    assert verify_backup(result.folder, cipher=cipher).references_checked
    with pytest.raises(BackupInvalid, match="encrypted under master key"):
        restore_backup(result.folder, f"sqlite:///{tmp_path / 'r.db'}", str(tmp_path / "rb"))

    url = f"sqlite:///{tmp_path / 'r2.db'}"
    restore_backup(result.folder, url, str(tmp_path / "rb2"), cipher=cipher)
    restored = load_settings(
        project_dir=tmp_path,
        store_url=url,
        artifact_root=str(tmp_path / "rb2"),
        encryption={"enabled": True},
    )
    with Workspace(restored) as ws:
        (run,) = ws.search_runs()
        assert ws.read_artifact(run.run_id, "notes-a.txt") == expected
