"""``shipyard gc`` and ``shipyard budget status`` on the embedded workspace of tmp_path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.cli.running import cli
from tests.unit.registry.bundles import WEAK, bundle_bytes


def test_gc_dry_run_lists_then_gc_deletes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with Workspace.open(tmp_path) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        for i, features in enumerate([None, WEAK["binary"], ["mean_radius"]]):
            registry.register(
                "cancer", bundle_bytes(tmp_path, features=features, name=f"b{i}"), actor=OPERATOR
            )
        registry.promote("cancer", 1, force=True, reason="ship", actor=OPERATOR)
        orphan = workspace.blobs.put_bytes(b"nobody's").digest
        v2 = registry.get("cancer:2").bundle_sha256
    (tmp_path / "shipyard.yaml").write_text("name: p\nretention:\n  keep_versions: 1\n")

    code, out, _ = cli(capsys, "gc", "--dry-run", "--grace-hours", "0")
    assert code == 0, out
    assert "would release 1" in out
    assert "cancer:2" in out
    assert "2 of 4 blobs would free" in out
    assert "/month of storage" in out

    code, out, _ = cli(capsys, "gc", "--grace-hours", "0", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["dry_run"] is False
    assert set(report["freed"]) == {orphan, v2}
    assert report["releases"][0]["ref"] == "cancer:2"
    assert float(report["usd_per_month_saved"]) > 0
    assert report["missing"] == []
    with Workspace.open(tmp_path) as workspace:
        assert not workspace.blobs.exists(v2)
        assert (
            ModelRegistry.for_workspace(workspace).load("cancer@production").manifest.task
            == "binary"
        )

    code, out, _ = cli(capsys, "gc", "--grace-hours", "-1")
    assert code == 2


def test_budget_status_shows_thresholds_and_exits_1_when_used_up(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli(capsys, "budget", "status")
    assert code == 0
    assert "no budgets" in out
    with Workspace.open(tmp_path) as workspace, workspace.start_run(experiment="e"):
        end = time.process_time() + 0.05
        while time.process_time() < end:
            sum(range(1000))
    (tmp_path / "shipyard.yaml").write_text(
        "name: p\nbudget:\n  limits:\n"
        "    - {name: roomy, usd: '1000', period: all}\n"
        "    - {name: tiny, experiment: e, cpu_hours: 0.000001, period: all}\n"
    )
    code, out, _ = cli(capsys, "budget", "status")
    assert code == 1
    assert "roomy" in out
    assert "tiny" in out
    assert "50%, 80%, 100%" in out
    code, out, _ = cli(capsys, "budget", "status", "--json")
    statuses = {s["budget"]: s for s in json.loads(out)}
    assert statuses["tiny"]["crossed"] == [0.5, 0.8, 1.0]
    assert statuses["roomy"]["crossed"] == []
    assert statuses["roomy"]["unit"] == "usd"

    (tmp_path / "shipyard.yaml").write_text("budget:\n  limits: [{name: x}]\n")
    code, _, err = cli(capsys, "budget", "status")
    assert code == 2
    assert "exactly one of usd or cpu_hours" in err


def test_gc_sweeps_temp_files_crashed_writers_left_but_not_writes_in_progress(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with Workspace.open(tmp_path) as workspace:
        workspace.blobs.put_bytes(b"makes the store")
    temp = tmp_path / ".shipyard" / "artifacts" / "tmp"
    orphan, in_progress = temp / ("0" * 32 + ".tmp"), temp / ("1" * 32 + ".tmp")
    for path in (orphan, in_progress):
        path.write_bytes(b"half a blob")
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))

    code, out, err = cli(capsys, "gc", "--dry-run", "--json")
    assert code == 0, err
    assert orphan.exists()  # a dry run changes nothing
    code, out, err = cli(capsys, "gc", "--json")  # default grace: one hour
    assert code == 0, err
    assert json.loads(out)["temp_removed"] == 1
    assert not orphan.exists()
    assert in_progress.exists()
