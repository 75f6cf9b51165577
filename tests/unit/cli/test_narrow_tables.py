"""Every list and show table fits an 80-column terminal with its key values whole (issue #16).

Each command runs through the console-script entry point with the console 80 cells wide, on a
workspace whose values are long enough to overflow: a long experiment and run name, several
metrics, a registered model with an alias, datasets, a token user. No line may be wider than
80 cells, and what a person copies into the next command (run ids, names, versions, aliases,
dataset ids, audit actions) must appear unshortened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
import pytest

from shipyard.cli import context
from shipyard.data.datasets import write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.cli.running import cli
from tests.unit.registry.trained import cached_bundle_file

if TYPE_CHECKING:
    from pathlib import Path

WIDTH = 80
RUN_NAME = "gradient-boosting-baseline"
EXPERIMENT = "customer-churn-quarterly-review"
USER = "data-scientist-on-call"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A workspace with runs, a promoted model, datasets and a token user; (root, run, dataset)."""
    root = tmp_path_factory.mktemp("narrow")
    with Workspace.open(root) as workspace:
        for i in range(3):
            with workspace.start_run(name=f"{RUN_NAME}-{i}", experiment=EXPERIMENT) as run:
                run.log_params({"learning_rate": "0.05", "estimator": "lightgbm"})
                for metric in ("roc_auc", "pr_auc", "balanced_accuracy", "log_loss", "brier"):
                    run.log_metric(metric, 0.123456789 * (i + 1))
        registry = ModelRegistry.for_workspace(workspace)
        version = registry.register("churn", cached_bundle_file(workspace, root), actor=OPERATOR)
        registry.promote("churn", version.version, force=True, reason="narrow", actor=OPERATOR)
        dataset = write_dataset(
            workspace, pl.DataFrame({"a_rather_long_column_name": [1, 2, 3]}), name="churn.raw"
        )
        return root, run.run_id, dataset.short_id


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    # Through the environment, as a terminal does: setting ``console.width`` would pin the
    # shared console's width for every later test in this worker.
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    assert context.console.width == WIDTH


def _run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> list[str]:
    code, out, err = cli(capsys, "-C", str(root), *args)
    assert code == 0, err
    return out.splitlines()


CASES = [
    (("runs", "list"), ["RUN8", f"{RUN_NAME}-2", f"{RUN_NAME}-0"]),
    (("runs", "show", "RUN"), ["RUN", f"{RUN_NAME}-2", "roc_auc"]),
    (("experiments", "list"), [EXPERIMENT]),
    (("models", "list"), ["churn", "production→1"]),
    (("models", "show", "churn"), ["production", "1"]),
    (("models", "history", "churn"), ["production"]),
    (("data", "list"), ["DATASET", "churn.raw"]),
    (("audit", "list"), ["models.register", "models.promote"]),
    (("users", "list"), [USER]),
    (("tokens", "list"), [USER]),
    (("roles", "list"), [USER, "viewer"]),
]


@pytest.mark.usefixtures("narrow")
@pytest.mark.parametrize(("command", "whole"), CASES, ids=[" ".join(c) for c, _ in CASES])
def test_a_table_fits_80_columns_with_its_key_values_whole(
    capsys: pytest.CaptureFixture[str],
    project: tuple[Path, str, str],
    command: tuple[str, ...],
    whole: list[str],
) -> None:
    root, run_id, dataset = project
    _run(capsys, root, "tokens", "create", "--user", USER, "--role", "viewer")
    names = {"RUN": run_id, "RUN8": run_id[:8], "DATASET": dataset}
    lines = _run(capsys, root, *(names.get(part, part) for part in command))
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert too_wide == []
    text = "\n".join(lines)
    for value in whole:
        assert names.get(value, value) in text
