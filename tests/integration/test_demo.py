"""`make demo` from a fresh clone: the whole lifecycle, then the monitor commands on its project.

The repository is cloned (or, outside a git checkout, copied without its virtualenv) into a
temporary folder and ``make demo`` runs there exactly as a newcomer would run it; only the uv
binary is shared, so the virtualenv is built from the lock file (uv's cache makes it quick).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.cli.demo_monitoring import RECALIBRATED
from shipyard.registry.registry import ModelRegistry
from shipyard.store.monitoring import MonitoringStore
from shipyard.track.workspace import Workspace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".tools" / "bin" / "uv"


def _fresh_checkout(target: Path) -> Path:
    if (REPO / ".git").exists():
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)
    else:
        ignore = shutil.ignore_patterns(".venv", ".tools", ".*_cache", ".shipyard", "__pycache__")
        shutil.copytree(REPO, target, ignore=ignore)
    return target


def _shipyard(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("shipyard")
    return subprocess.run(
        [str(binary), "-C", str(project), *args],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.timeout(900)  # a fresh clone's `make demo` (its own limit: 600 s) on a busy box
def test_make_demo_from_a_fresh_clone_carries_a_model_through_its_life(tmp_path: Path) -> None:
    clone = _fresh_checkout(tmp_path / "clone")
    home = tmp_path / "home"
    stale = home / ".shipyard" / "demo-project"
    stale.mkdir(parents=True)
    (stale / "left-over").write_text("from an earlier demo")  # the demo starts afresh
    make = [shutil.which("make") or "make", "demo"]
    if UV.exists():
        make.append(f"UV={UV}")  # share the bootstrap; the clone still builds its own .venv
    env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(home), "COLUMNS": "160"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(make, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (clone / ".venv" / "bin" / "shipyard").exists(), "make demo builds its own virtualenv"
    assert not (stale / "left-over").exists()
    out = done.stdout
    assert "rows conserved" in out
    assert "stays at version 1" in out  # the gate refused the weak challenger
    assert "(rollback)" in out
    assert "without the token → 401" in out
    assert "600 requests answered (0 failed)" in out
    assert "600 labels matched" in out
    assert "(conserved)" in out
    assert "the lifecycle in" in out
    if os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1" or "skipped: no Redis" not in out:
        assert "2,000 predictions for 2,000 distinct events (none lost, none doubled)" in out
        assert "SIGTERM drained and exited 0" in out
        assert "dead letter: contract: mean_texture" in out

    project = home / ".shipyard" / "demo-project"
    with Workspace.open(project) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        history = registry.history("cancer", "production")
        assert [e.action for e in history][:4] == ["promote", "refused", "force", "rollback"]
        retrain = history[4:]
        assert len(retrain) == 1, "one retrain, however many features drifted"
        alerts = MonitoringStore(workspace.store).alerts(model="cancer")
        drift_alerts = [a for a in alerts if a.rule == "input-drift"]
        # exactly the recalibrated features drifted (and, through them, the model's output)
        drifted = {a.subject for a in drift_alerts} - {"__prediction__", "__probability__"}
        assert drifted == set(RECALIBRATED)
        outcome = drift_alerts[0].outcome
        assert outcome is not None
        holder = registry.get("cancer@production").version
        if retrain[0].action == "promote":  # the gate's verdict and the alias agree
            assert outcome["text"].startswith("promoted version 3")
            assert holder == 3
            assert outcome["numbers"]["candidate_score"] > outcome["numbers"]["holder_score"]
        else:
            assert outcome["text"].startswith("refused version 3")
            assert holder == 1
    assert (project / "cards" / "cancer.html").read_text().startswith("<!doctype html>")
    report = (project / "reports" / "cancer-monitoring.html").read_text()
    assert "Drift flagged on" in report
    assert "data:image/png;base64," in report

    # the monitor commands work on what the demo left
    listed = _shipyard(project, "monitor", "alerts", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {a["rule"] for a in json.loads(listed.stdout)} >= {"input-drift"}
    again = _shipyard(project, "monitor", "run", "--once", "--no-retrain")
    assert again.returncode == 0, again.stderr
    # the same windows are not judged twice: no alert is raised again
    assert "drift windows" in again.stdout
    assert "new alerts" not in again.stdout
    written = _shipyard(project, "monitor", "report", "cancer", "-o", str(tmp_path / "r.html"))
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
