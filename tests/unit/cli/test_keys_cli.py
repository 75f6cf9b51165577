"""``shipyard keys generate|status|rotate`` and the wrong-key path, driven in-process."""

from __future__ import annotations

import base64
import json
import re
import stat
from typing import TYPE_CHECKING

import pytest

from shipyard.track.workspace import Workspace
from tests.unit.cli.running import cli

if TYPE_CHECKING:
    from pathlib import Path

MARKER = b"cli-marker-8d1e"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def key_in(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> tuple[Path, str]:
    path = tmp_path / name
    result = cli(capsys, "keys", "generate", "--out", str(path))
    assert result.code == 0, result.err
    key_id = re.search(r"master key ([0-9a-f]{16})", result.out)
    assert key_id is not None
    return path, key_id.group(1)


def test_generate_prints_a_key_or_writes_a_private_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    printed = cli(capsys, "keys", "generate")
    assert printed.code == 0
    assert len(base64.b64decode(printed.out.strip(), validate=True)) == 32
    path, _ = key_in(capsys, tmp_path, "a.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = cli(capsys, "keys", "generate", "--out", str(path))
    assert again.code == 2
    assert "already exists" in again.err


def test_rotate_then_only_the_new_key_opens_the_workspace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, old_id = key_in(capsys, tmp_path, "old.key")
    new, new_id = key_in(capsys, tmp_path, "new.key")
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "true")
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__KEY_FILE", str(old))
    with Workspace.open(tmp_path) as ws:
        digest = ws.blobs.put_bytes(MARKER).digest

    status = json.loads(cli(capsys, "keys", "status", "--json").out)
    assert status["current_key_id"] == old_id
    assert status["configured_key_is_current"] is True
    assert [(k["key_id"], k["blobs"]) for k in status["keys"]] == [(old_id, 1)]

    rotated = cli(capsys, "keys", "rotate", "--old-key-file", str(old), "--new-key-file", str(new))
    assert rotated.code == 0, rotated.err
    assert f"{old_id} -> {new_id}: 1 data keys re-wrapped" in rotated.out

    table = cli(capsys, "keys", "status")  # still configured with the old key
    assert "not the current key" in table.out
    assert re.search(rf"{old_id}\W+retired", table.out)
    assert re.search(rf"{new_id}\W+current", table.out)

    refused = cli(capsys, "workspace", "info")
    assert refused.code == 2
    assert f"master key {old_id} was replaced by key {new_id}" in refused.err
    assert "Traceback" not in refused.err + refused.out

    monkeypatch.setenv("SHIPYARD_ENCRYPTION__KEY_FILE", str(new))
    assert cli(capsys, "workspace", "info").code == 0
    with Workspace.open(tmp_path) as ws:
        assert ws.blobs.get_bytes(digest) == MARKER


def test_a_wrong_key_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    right, right_id = key_in(capsys, tmp_path, "right.key")
    wrong, wrong_id = key_in(capsys, tmp_path, "wrong.key")
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__ENABLED", "true")
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__KEY_FILE", str(right))
    with Workspace.open(tmp_path) as ws:
        ws.blobs.put_bytes(MARKER)
    monkeypatch.setenv("SHIPYARD_ENCRYPTION__KEY_FILE", str(wrong))
    result = cli(capsys, "runs", "list")
    assert result.code == 2
    assert result.err.startswith("error: master key")
    assert wrong_id in result.err
    assert right_id in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_rotate_needs_both_keys(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    new, _ = key_in(capsys, tmp_path, "new.key")
    result = cli(capsys, "keys", "rotate", "--new-key-file", str(new))
    assert result.code == 2
    assert "no old master key: pass --old-key-file or set $SHIPYARD_OLD_MASTER_KEY" in result.err
