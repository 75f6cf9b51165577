"""`shipyard demo`: the whole lifecycle, as `make demo` runs it, in a fresh folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace

pytestmark = pytest.mark.slow

SHIPYARD = Path(sys.executable).with_name("shipyard")


def test_demo_carries_a_model_from_csv_to_http(tmp_path: Path) -> None:
    env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(tmp_path), "COLUMNS": "160"}
    stale = tmp_path / ".shipyard" / "demo-project"
    stale.mkdir(parents=True)
    (stale / "left-over").write_text("from an earlier demo")  # the demo starts afresh
    done = subprocess.run(
        [str(SHIPYARD), "demo", "--epochs", "2", "--folds", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (stale / "left-over").exists()
    out = done.stdout
    assert "rows conserved" in out
    assert "stays at version 1" in out  # the gate refused the weak challenger
    assert "(rollback)" in out
    assert "10 requests answered" in out
    assert "422" in out
    assert "(conserved)" in out
    project = tmp_path / ".shipyard" / "demo-project"
    with Workspace.open(project) as workspace:
        registry = ModelRegistry(workspace)
        assert registry.get("cancer@production").version == 1
        actions = [e.action for e in registry.history("cancer", "production")]
        assert actions == ["promote", "refused", "force", "rollback"]
    assert (project / "cards" / "cancer.html").read_text().startswith("<!doctype html>")
