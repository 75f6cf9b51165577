"""Editing code a stage runs re-runs that stage; unchanged code reuses every stage (issue 15).

Each ``shipyard run`` is a fresh process over a copy of the installed ``shipyard`` source (code
hashes are cached per process, as in real use), so the test can edit the copy between runs the
way a developer edits the checkout.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import shipyard

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = """\
name: tiny
sources:
  rows:
    uri: data/rows.csv
steps:
  - clean: {coerce: {x1: float64}}
train:
  target: label
  estimators: [{name: logistic}]
  cv: {folds: 3}
  bootstrap_resamples: 50
  explain: false
"""

RUN = """\
import json, sys
from pathlib import Path
import shipyard
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.security.identities import local_identity
from shipyard.track.workspace import Workspace
root = Path(sys.argv[1])
with Workspace.open(root) as ws:
    report = run_pipeline(ws, load_project(root), actor=local_identity("project", source="test"))
print(json.dumps({
    "package": shipyard.__file__,
    "stages": {s.name: s.cached for s in report.stages},
    "train_cached": report.training.cached,
    "train_run": report.training.run_id,
}))
"""

NO_OP = "\n\ndef _stage_cache_probe() -> None:\n    return None\n"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the installed ``shipyard`` source, first on the subprocesses' path."""
    copy = tmp_path / "site"
    shutil.copytree(
        Path(shipyard.__file__).parent,
        copy / "shipyard",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return copy


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    rng = random.Random(3)
    lines = ["x1,x2,label"]
    for _ in range(240):
        a, b = rng.random(), rng.random()
        lines.append(f"{a:.4f},{b:.4f},{int(a + 0.3 * b + rng.random() * 0.4 > 0.8)}")
    (root / "data" / "rows.csv").write_text("\n".join(lines) + "\n")
    (root / "shipyard.yaml").write_text(PROJECT)
    (root / "run.py").write_text(RUN)
    return root


def run(package: Path, project: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(project / "run.py"), str(project)],
        env={**os.environ, "PYTHONPATH": str(package)},
        cwd=project,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert outcome["package"] == str(package / "shipyard" / "__init__.py")  # the copy ran
    return outcome


def edit(package: Path, module: str) -> None:
    path = package / "shipyard" / module
    path.write_text(path.read_text() + NO_OP)


def test_editing_a_helper_reruns_the_stage_that_imports_it(package: Path, project: Path) -> None:
    first = run(package, project)
    assert first["stages"] == {"ingest:rows": False, "validate": False, "0:clean": False}
    assert not first["train_cached"]

    # Unchanged code and data: every cached stage is reused (ingest always reads).
    again = run(package, project)
    assert again["stages"] == {"ingest:rows": False, "validate": True, "0:clean": True}
    assert again["train_cached"]
    assert again["train_run"] == first["train_run"]

    # A module no stage imports (the learning-curve command) changes no key.
    edit(package, "pipeline/curves.py")
    unrelated = run(package, project)
    assert unrelated["stages"] == again["stages"]
    assert unrelated["train_cached"]

    # train/splits.py was missing from training's hand-kept list: the old model was reused.
    edit(package, "train/splits.py")
    split_edit = run(package, project)
    assert split_edit["stages"] == again["stages"]  # the data stages do not import it
    assert not split_edit["train_cached"]
    assert split_edit["train_run"] != first["train_run"]

    # data/contract.py was missing from validation's list; validation now runs again.
    edit(package, "data/contract.py")
    contract_edit = run(package, project)
    assert not contract_edit["stages"]["validate"]
