"""Every list and show command answers with ``--json`` for scripts: strict JSON, the same facts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import typer

from shipyard.cli.main import app
from shipyard.data.datasets import write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.cli.running import cli, subcommands
from tests.unit.registry.trained import cached_bundle_file

#: Commands that show stored state (and so must speak JSON too), by their last word.
READ_COMMANDS = {"list", "show", "info", "history", "status", "profile", "quarantine",
                 "compare", "lineage", "alerts", "diff"}  # fmt: skip


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "list_commands"):  # a group (Typer may vendor its own click)
        return [leaf for name, sub in subcommands(command) for leaf in _leaves(sub, (*path, name))]
    return [(path, command)]


def test_every_list_and_show_command_has_a_json_option() -> None:
    root = typer.main.get_command(app)
    read = [(p, c) for p, c in _leaves(root) if p[-1] in READ_COMMANDS]
    assert len(read) >= 15  # the walk found the tree
    missing = [
        " ".join(p)
        for p, c in read
        if not any("--json" in getattr(o, "opts", ()) for o in c.params)
    ]
    assert missing == []


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("json-project")
    with Workspace.open(root) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        registry.register(
            "churn", cached_bundle_file(workspace, root, name="churn"), actor=OPERATOR
        )
        write_dataset(
            workspace, pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]}), name="orders"
        )
        for i in range(2):
            with workspace.start_run(name=f"r{i}", experiment="e") as run:
                run.log_param("lr", str(i))
                run.log_metric("auc", float("nan") if i else 0.5)
    return root


def _json(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> object:
    code, out, err = cli(capsys, "-C", str(root), *args, "--json")
    assert code == 0, err
    return json.loads(out)  # strict: NaN would fail here


def test_the_json_holds_what_the_tables_show(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    models = _json(capsys, project, "models", "list")
    assert [m["name"] for m in models] == ["churn"]
    shown = _json(capsys, project, "models", "show", "churn")
    assert [v["version"] for v in shown["versions"]] == [1]
    assert _json(capsys, project, "models", "history", "churn") == []

    (version,) = _json(capsys, project, "data", "list", "orders")
    assert (version["name"], version["rows"], version["columns"]) == ("orders", 3, 2)
    detail = _json(capsys, project, "data", "show", version["dataset_id"][:12])
    assert detail["rows"] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": None}]
    profile = _json(capsys, project, "data", "profile", version["dataset_id"][:12])
    assert profile["dataset_id"] == version["dataset_id"]

    experiments = {e["name"]: e["run_count"] for e in _json(capsys, project, "experiments", "list")}
    assert experiments["e"] == 2
    code, out, err = cli(capsys, "-C", str(project), "runs", "list", "-e", "e", "--json")
    assert code == 0, err
    ids = [json.loads(line)["run_id"] for line in out.splitlines()]  # JSON lines
    compared = _json(capsys, project, "runs", "compare", *ids)
    assert sorted(r["metrics"]["auc"] for r in compared if r["metrics"]["auc"] is not None) == [0.5]
    info = _json(capsys, project, "workspace", "info")
    assert info["runs"] >= 2
    assert info["schema_revision"]
    users = _json(capsys, project, "users", "list")
    assert isinstance(users, list)
    assert isinstance(_json(capsys, project, "tokens", "list"), list)
    assert isinstance(_json(capsys, project, "roles", "list"), list)
