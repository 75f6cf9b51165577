"""Read-only commands import only what they need (issue #17: start-up is most of their time).

Each command runs in a fresh interpreter, as a user's shell starts it, on a workspace that holds
runs, a registered model and audit entries; the libraries it loaded are read from
``sys.modules`` when it is done. A command that pulls in the training, dataframe or plotting
stack to print a table from the metadata store fails here. This checks what is imported, not
how long it takes (speed is measured in ``benchmarks/cli.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.registry.trained import cached_bundle_file

if TYPE_CHECKING:
    from pathlib import Path

#: Libraries a command that only reads the metadata store has no use for.
HEAVY = frozenset(
    {
        "sklearn",
        "scipy",
        "pandas",
        "pyarrow",
        "polars",
        "lightgbm",
        "xgboost",
        "matplotlib",
        "optuna",
        "onnxruntime",
        "skl2onnx",
        "fastapi",
        "uvicorn",
        # Settings are dataclasses (core.typed_config) and typer < 0.29 parses options without
        # it: pydantic validates project-file sections and HTTP bodies, not a listing.
        "pydantic",
        "pydantic_core",
    }
)

#: Runs the CLI in this interpreter, then reports every module it imported.
PROBE = """
import json, sys
from shipyard.cli.main import run
code = 0
try:
    run(sys.argv[2:])
except SystemExit as e:
    code = e.code or 0
loaded = sorted(sys.modules)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": loaded}, out)
"""

READ_ONLY = [
    ["runs", "list"],
    ["runs", "show", "RUN"],
    ["experiments", "list"],
    ["models", "list"],
    ["models", "history", "m"],
    ["models", "reviews"],
    ["comments", "list", "run", "RUN"],
    ["activity"],
    ["workspace", "info"],
    ["audit", "list"],
    ["users", "list"],
    ["--help"],
    ["models", "--help"],
    ["run", "--help"],
    ["serve", "--help"],
    ["backup", "list"],
    ["dr", "--help"],
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A workspace with a run, a registered model (an audited change) and its test dataset."""
    root = tmp_path_factory.mktemp("imports")
    with Workspace.open(root) as workspace:
        with workspace.start_run(name="r", experiment="churn") as run:
            run.log_params({"p": "1"})
            run.log_metric("auc", 0.9)
        registry = ModelRegistry.for_workspace(workspace)
        registry.register("m", cached_bundle_file(workspace, root), actor=OPERATOR)
        return root, run.run_id


def _imported(root: Path, args: list[str], *, full_names: bool = False) -> tuple[int, set[str]]:
    """Run ``shipyard -C root *args`` in a fresh interpreter: its exit code, what it imported.

    Top-level package names, or every module's full name with ``full_names``.
    """
    report = root / "imports.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), "-C", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(report.read_text())
    modules = set(found["modules"])
    return int(found["code"]), modules if full_names else {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_imports_no_data_or_ml_library(
    project: tuple[Path, str], command: list[str]
) -> None:
    root, run_id = project
    args = [run_id if part == "RUN" else part for part in command]
    code, modules = _imported(root, args)
    assert code == 0
    assert "shipyard" in modules  # the probe saw the command's own imports
    assert sorted(modules & HEAVY) == []


#: What a listing has no use for: ORM machinery (the store reads through Core tables) and the
#: process probes (psutil) that only a running run or ``runs gc`` needs.
START_UP_EXTRAS = ("sqlalchemy.orm", "psutil")


@pytest.mark.parametrize("command", READ_ONLY[:8], ids=" ".join)
def test_a_read_only_command_loads_no_orm_nor_process_probes(
    project: tuple[Path, str], command: list[str]
) -> None:
    root, run_id = project
    args = [run_id if part == "RUN" else part for part in command]
    code, modules = _imported(root, args, full_names=True)
    assert code == 0
    assert "shipyard.store.sql" in modules  # it did read the store
    assert sorted(m for m in modules if m.startswith(START_UP_EXTRAS)) == []


def test_a_data_only_run_imports_neither_training_nor_the_registry(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("order_id,amount\n1,9.5\n2,12.0\n3,7.25\n")
    (tmp_path / "shipyard.yaml").write_text(
        "name: orders\nsources:\n  orders:\n    uri: orders.csv\n", encoding="utf-8"
    )
    code, modules = _imported(tmp_path, ["run"], full_names=True)
    assert code == 0
    assert "shipyard.pipeline.validate_stage" in modules  # it did validate the data
    # numpy too: polars reads and checks without it (issue 17: ~0.1 CPU-s of start-up).
    training = {"sklearn", "scipy", "lightgbm", "xgboost", "optuna", "skops", "matplotlib", "numpy"}
    assert sorted({m.split(".")[0] for m in modules} & training) == []
    # The project file's schema names the train: section's spec; nothing else of train/.
    schemas = {"shipyard.train", "shipyard.train.spec", "shipyard.train.cleaning_spec"}
    unwanted = [
        m
        for m in modules
        if m.startswith(
            (
                "shipyard.registry",
                "shipyard.pipeline.training",
                # Steps this project has none of (loaded when a step asks for them).
                "shipyard.pipeline.clean_stage",
                "shipyard.pipeline.features_stage",
                "shipyard.pipeline.privacy_stage",
            )
        )
        or (m.startswith("shipyard.train") and m not in schemas)
    ]
    assert unwanted == []
