"""A ``shipyard run`` killed mid-search: the next run resumes from the trials it stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.track.workspace import Workspace
from shipyard.train.resume import RESUMED_FROM

pytestmark = pytest.mark.slow

TRIALS = 30
PROJECT = f"""
name: cancer
sources:
  rows: {{uri: rows.csv}}
train:
  target: target
  estimators:
    - name: logistic
      params: {{max_iter: 300}}
      space: {{C: {{low: 0.01, high: 10.0, log: true}}}}
  tuning: {{trials: {TRIALS}, sampler: random}}
  cv: {{folds: 3}}
  bootstrap_resamples: 20
"""


def _run(root: Path, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env |= {"SHIPYARD_TRACKING__CAPTURE_GIT": "false"}
    if fault:
        env["SHIPYARD_FAULT"] = fault
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    return subprocess.run(
        [shipyard, "-C", str(root), "run"], env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip


def test_a_driver_killed_mid_search_is_resumed_by_the_next_run(tmp_path: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    pl.from_pandas(frame).head(240).write_csv(tmp_path / "rows.csv")
    (tmp_path / "shipyard.yaml").write_text(PROJECT)

    killed = _run(tmp_path, "trials.after_write:kill")  # dies right after the first trials land
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = _run(tmp_path, None)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    with Workspace.open(tmp_path) as workspace:
        runs = workspace.search_runs("tags.kind = 'train'", limit=None)
        first, second = sorted(runs, key=lambda r: r.start_ms)
        stored = workspace.search_runs(f"parent_run_id = '{first.run_id}'", limit=None)
        new = workspace.search_runs(f"parent_run_id = '{second.run_id}'", limit=None)
    assert second.tags[RESUMED_FROM] == first.run_id
    assert 1 <= len(stored) <= TRIALS
    # The budget is shared: the stored complete trials count, only the rest ran again (a
    # pruned trial is not taken over: it had no full score to learn from).
    complete = [r for r in stored if r.tags.get("trial_state", "complete") == "complete"]
    assert complete
    assert len(new) == TRIALS - len(complete)
    assert len({r.name for r in new}) == len(new)
