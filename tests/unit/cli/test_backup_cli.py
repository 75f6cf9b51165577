"""``shipyard backup``: create, list, verify (exit 2 naming the bad file), restore, prune."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.cli.access import accounts_of
from shipyard.track.workspace import Workspace
from tests.backups import populate
from tests.unit.cli.running import cli


def _flat(text: str) -> str:
    """The text with the terminal's line wrapping undone."""
    return " ".join(text.split())


def test_backup_commands_from_create_to_prune(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Workspace.open(tmp_path) as ws:
        populate(ws, tmp_path, model=False)
    target = tmp_path / "elsewhere"

    first = cli(capsys, "backup", "create", "--to", str(target))
    assert first.code == 0, first.err
    assert "1 blobs (1 copied, 0 already there)" in _flat(first.out)
    second = cli(capsys, "backup", "create", "--to", str(target), "--keep", "1", "--json")
    assert second.code == 0, second.err
    document = json.loads(second.out)
    assert (document["blobs_copied"], document["blobs_reused"]) == (0, 1)
    assert len(document["pruned"]) == 1

    with Workspace.open(tmp_path) as ws:
        entries = accounts_of(ws).store.list_audit()
    assert [e.action for e in entries].count("backup.manage") == 2

    listed = json.loads(cli(capsys, "backup", "list", "--in", str(target), "--json").out)
    assert [b["complete"] for b in listed] == [True]

    ok = cli(capsys, "backup", "verify", str(target))  # a target: its newest backup
    assert ok.code == 0, ok.err
    assert "1 blobs match the manifest" in _flat(ok.out)

    restored = cli(
        capsys, "backup", "restore", str(target), "--to", f"sqlite:///{tmp_path / 'new' / 'x.db'}"
    )
    assert restored.code == 0, restored.err
    assert (tmp_path / "new" / "artifacts").is_dir()
    again = cli(
        capsys, "backup", "restore", str(target), "--to", f"sqlite:///{tmp_path / 'new' / 'x.db'}"
    )
    assert again.code == 2
    assert "already holds data" in _flat(again.err)

    (blob,) = (p for p in (target / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes()[:-1])
    bad = cli(capsys, "backup", "verify", document["backup"])
    assert bad.code == 2
    assert blob.name in _flat(bad.err)
    assert "truncated" in _flat(bad.err)
    assert "Traceback" not in bad.err

    pruned = cli(capsys, "backup", "prune", "--keep", "1", "--in", str(target))
    assert pruned.code == 0


def test_an_encrypted_workspace_is_backed_up_sealed_and_drilled_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.security.keys import generate_master_key

    monkeypatch.setenv("SHIPYARD_MASTER_KEY", generate_master_key())
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "true")
    with Workspace.open(tmp_path) as ws:
        populate(ws, tmp_path, model=False)

    created = cli(capsys, "backup", "create", "--json")
    assert created.code == 0, created.err
    assert json.loads(created.out)["encrypted"]

    drill = cli(capsys, "dr", "drill", "--json")
    assert drill.code == 0, drill.out + drill.err
    checks = {c["name"]: c for c in json.loads(drill.out)["checks"]}
    assert checks["referenced blobs and hashes"] == {
        "name": "referenced blobs and hashes",
        "ok": True,
        "detail": "1 references",
    }

    monkeypatch.delenv("SHIPYARD_MASTER_KEY")
    monkeypatch.delenv("SHIPYARD_ENCRYPTION__ENABLED")
    keyless = cli(capsys, "dr", "drill", "--json")
    assert keyless.code == 1
    restore = json.loads(keyless.out)["checks"][0]
    assert not restore["ok"]
    assert "encrypted under master key" in restore["detail"]
