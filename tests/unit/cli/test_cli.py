"""The ``shipyard`` command, driven in-process through ``run(argv)`` and, for exit codes and
stderr, as the installed console script.

Most tests use the embedded SQLite workspace in ``tmp_path`` (``SHIPYARD_PROJECT_DIR`` is set by
the autouse fixture in tests/conftest.py); ``runs list``/``runs show`` also run on PostgreSQL.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console

from shipyard.cli import context, main
from shipyard.cli import runs as runs_cli
from shipyard.core.errors import InvalidFilter, InvalidSettings, RunNotFound, ShipyardError
from shipyard.store.entities import RunStatus
from shipyard.track.run import ActiveRun
from shipyard.track.workspace import Workspace
from tests.unit.cli.running import ANSI, Result, cli, subcommands

SHIPYARD = Path(sys.executable).with_name("shipyard")
WIDTH = 200


@pytest.fixture(autouse=True)
def _wide_plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich reads COLUMNS at print time (the consoles are built without a width)."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    assert context.console.width == WIDTH, "COLUMNS was fixed when rich's console was built"


def shipyard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script."""
    assert SHIPYARD.is_file(), f"console script not installed at {SHIPYARD}"
    return subprocess.run(
        [str(SHIPYARD), *args],
        env={**os.environ, "COLUMNS": str(WIDTH), **(env or {})},
        capture_output=True,
        text=True,
        timeout=110,
    )


def strict_json(text: str) -> Any:
    """Parse JSON as other languages would: NaN and Infinity are not JSON."""

    def reject(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [strict_json(line) for line in text.splitlines()]


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.code == 2, result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0]


# -- data logged through the Python API -------------------------------------------------------


@dataclass
class Logged:
    baseline: str
    lgbm: str
    fold: str
    resnet: str
    metric_values: int


def populate() -> Logged:
    """Two experiments, four runs (one child, one failed), artifacts, notes, a NaN metric."""
    with Workspace.open() as ws:
        with ws.start_run(
            name="baseline",
            experiment="churn",
            params={"model": "logreg", "dataset": "v1", "act": "[relu]"},
            tags={"team": "risk"},
        ) as run:
            for step, auc in enumerate((0.7, 0.8, 0.85)):
                run.log_metric("auc", auc, step=step)
            run.log_metric("accuracy", 0.8)
            baseline = run.run_id
        with ws.start_run(
            name="lgbm",
            experiment="churn",
            params={"model": "lgbm", "dataset": "v1"},
            tags={"team": "risk", "stage": "[bold]candidate[/bold]"},
        ) as run:
            run.log_metrics({"auc": 0.93, "accuracy": 0.88})
            run.log_artifact(b"precision 0.9\n", name="report.txt")
            run.add_note("promising; see [/] and [link](https://example.com)")
            with run.child(name="fold-0", params={"fold": 0}) as child:
                child.log_metric("auc", 0.92)
                fold = child.run_id
            lgbm = run.run_id
        run = ws.start_run(name="resnet", experiment="vision", params={"model": "resnet"})
        resnet = run.run_id
        with pytest.raises(RuntimeError, match="out of memory"):
            crash(run)
    return Logged(baseline, lgbm, fold, resnet, metric_values=3 + 1 + 2 + 1 + 2)


def crash(run: ActiveRun) -> None:
    with run:
        run.log_metrics({"auc": 0.97, "loss": math.nan})
        raise RuntimeError("out of memory")


@pytest.fixture
def logged() -> Logged:
    return populate()


def names_in_order(text: str, names: list[str]) -> list[str]:
    """The given run names in the order their table rows appear."""
    found = []
    for line in text.splitlines():
        for name in names:
            if re.search(rf"[│ ]{re.escape(name)}\s+│", line):
                found.append(name)
    return found


# -- help -------------------------------------------------------------------------------------


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    if hasattr(command, "list_commands"):
        for name, sub in sorted(subcommands(command)):
            paths += _command_paths(sub, (*path, name))
    return paths


COMMAND_PATHS = _command_paths(typer.main.get_command(main.app))


def test_the_command_tree_walk_finds_every_known_command() -> None:
    expected = {
        (),
        ("workspace",),
        ("workspace", "init"),
        ("workspace", "info"),
        ("runs",),
        ("runs", "list"),
        ("runs", "show"),
        ("runs", "compare"),
        ("runs", "note"),
        ("runs", "gc"),
        ("experiments",),
        ("experiments", "list"),
        ("demo",),
    }
    assert expected <= set(COMMAND_PATHS)


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "shipyard")
def test_help_works_for_every_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, path: tuple[str, ...]
) -> None:
    result = cli(capsys, *path, "--help")
    assert result.code == 0, result
    assert f"Usage: {' '.join(('shipyard', *path))}" in result.out
    assert result.err == ""
    assert not (tmp_path / ".shipyard").exists(), "--help must not open the workspace"


def test_short_help_option(capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, "runs", "list", "-h")
    assert result.code == 0
    assert "--order-by" in result.out


# -- workspace and experiments -----------------------------------------------------------------


def test_workspace_init_creates_the_embedded_store_and_artifact_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = cli(capsys, "workspace", "init")
    assert result.code == 0, result
    assert (tmp_path / ".shipyard" / "shipyard.db").is_file()
    assert (tmp_path / ".shipyard" / "artifacts").is_dir()
    assert "workspace ready" in result.out
    assert str(tmp_path / ".shipyard" / "shipyard.db") in result.out


def test_project_dir_option_overrides_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    result = cli(capsys, "-C", str(other), "workspace", "init")
    assert result.code == 0, result
    assert (other / ".shipyard" / "shipyard.db").is_file()
    assert not (tmp_path / ".shipyard").exists()


def test_workspace_info_counts_what_was_logged(
    capsys: pytest.CaptureFixture[str], logged: Logged
) -> None:
    result = cli(capsys, "workspace", "info")
    assert result.code == 0, result
    rows = dict(re.findall(r"^\s*(experiments|runs|metric values|blobs)\s+(\S+)", result.out, re.M))
    assert rows == {
        "experiments": "2",
        "runs": "4",
        "metric values": str(logged.metric_values),
        "blobs": "1",
    }


def test_experiments_list_shows_names_and_run_counts(
    capsys: pytest.CaptureFixture[str], logged: Logged
) -> None:
    result = cli(capsys, "experiments", "list")
    assert result.code == 0, result
    counts = dict(re.findall(r"│ (\w+)\s+│\s+(\d+) │", result.out))
    assert counts == {"churn": "3", "vision": "1"}


def test_experiments_list_on_an_empty_workspace(capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(capsys, "experiments", "list")
    assert result.code == 0
    assert "no experiments yet" in result.out


# -- runs list and show, on both backends -----------------------------------------------------


def test_runs_list_and_show_on_each_backend(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store_url: str
) -> None:
    monkeypatch.setenv("SHIPYARD_STORE_URL", store_url)
    logged = populate()

    table = cli(capsys, "runs", "list")
    assert table.code == 0, table
    assert "Runs (4)" in table.out
    assert names_in_order(table.out, ["baseline", "lgbm", "fold-0", "resnet"]) == [
        "resnet",
        "fold-0",
        "lgbm",
        "baseline",
    ]  # newest first
    header = next(line for line in table.out.splitlines() if "┃ run " in line)
    assert re.search(r"┃\s+auc\s+┃", header)
    assert re.search(r"┃\s+accuracy\s+┃", header)
    assert re.search(r"resnet\s+│ vision\s+│ failed", table.out)
    assert re.search(r"lgbm\s+│ churn\s+│ finished", table.out)
    assert re.search(r"└ fold-0\s+│", table.out), "child runs are indented"

    listed = json_lines(cli(capsys, "runs", "list", "--json").out)
    assert sorted(r["run_id"] for r in listed) == sorted(
        [logged.baseline, logged.lgbm, logged.fold, logged.resnet]
    )

    shown = cli(capsys, "runs", "show", logged.lgbm[:8])
    assert shown.code == 0, shown
    assert logged.lgbm in shown.out
    assert re.search(r"│ model\s+│ lgbm\s+│", shown.out)
    assert re.search(r"│ auc\s+│ 0.93\s+│", shown.out)
    assert re.search(r"│ team\s+│ risk\s+│", shown.out)
    assert "report.txt" in shown.out
    assert f"fold-0 ({logged.fold[:8]})" in shown.out
    assert "promising" in shown.out


def test_runs_list_filter(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    result = cli(capsys, "runs", "list", "--filter", "metrics.auc > 0.9", "--json")
    assert result.code == 0, result
    assert {r["name"] for r in json_lines(result.out)} == {"lgbm", "fold-0", "resnet"}
    table = cli(capsys, "runs", "list", "-f", "params.model = 'logreg'")
    assert names_in_order(table.out, ["baseline", "lgbm", "fold-0", "resnet"]) == ["baseline"]


def test_runs_list_filter_matching_nothing(
    capsys: pytest.CaptureFixture[str], logged: Logged
) -> None:
    result = cli(capsys, "runs", "list", "--filter", "metrics.auc > 2")
    assert result.code == 0
    assert "no runs match" in result.out
    assert cli(capsys, "runs", "list", "--filter", "metrics.auc > 2", "--json").out == ""


def test_runs_list_order_by_and_limit(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    names = ["baseline", "lgbm", "fold-0", "resnet"]
    ordered = cli(capsys, "runs", "list", "--order-by", "metrics.auc desc")
    assert names_in_order(ordered.out, names) == ["resnet", "lgbm", "fold-0", "baseline"]
    ascending = cli(capsys, "runs", "list", "-o", "metrics.auc asc", "--json")
    assert [r["name"] for r in json_lines(ascending.out)] == [
        "baseline",
        "fold-0",
        "lgbm",
        "resnet",
    ]
    limited = cli(capsys, "runs", "list", "-o", "metrics.auc desc", "--limit", "2")
    assert "Runs (2)" in limited.out
    assert names_in_order(limited.out, names) == ["resnet", "lgbm"]


def test_runs_list_experiment_option(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    result = cli(capsys, "runs", "list", "-e", "vision", "--json")
    assert [r["name"] for r in json_lines(result.out)] == ["resnet"]


def test_runs_list_json_is_one_strict_object_per_line(
    capsys: pytest.CaptureFixture[str], logged: Logged
) -> None:
    result = cli(capsys, "runs", "list", "--json")
    assert result.code == 0
    runs = json_lines(result.out)  # also fails on NaN, which is not JSON
    assert len(runs) == 4
    by_name = {r["name"]: r for r in runs}
    assert by_name["lgbm"]["metrics"] == {"auc": 0.93, "accuracy": 0.88}
    assert by_name["lgbm"]["params"] == {"model": "lgbm", "dataset": "v1"}
    assert by_name["fold-0"]["parent_run_id"] == logged.lgbm
    assert by_name["resnet"]["status"] == "failed"
    assert by_name["resnet"]["metrics"] == {"auc": 0.97, "loss": None}
    assert "out of memory" in by_name["resnet"]["error"]


def test_runs_show_everything(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    result = cli(capsys, "runs", "show", logged.lgbm[:6])
    assert result.code == 0, result
    out = result.out
    assert logged.lgbm in out
    assert re.search(r"experiment\s+churn", out)
    assert re.search(r"status\s+finished", out)
    assert re.search(r"│ dataset\s+│ v1\s+│", out)
    assert re.search(r"│ accuracy\s+│ 0.88\s+│", out)
    # user text is shown as typed, not read as rich markup
    assert re.search(r"│ stage\s+│ \[bold\]candidate\[/bold\]\s+│", out)
    assert "promising; see [/] and [link](https://example.com)" in out
    assert re.search(r"report.txt\s+│ 14 B", out)
    assert f"Child runs (1): fold-0 ({logged.fold[:8]})" in out


def test_runs_show_failed_run_with_markup_in_params(
    capsys: pytest.CaptureFixture[str], logged: Logged
) -> None:
    resnet = cli(capsys, "runs", "show", logged.resnet)
    assert resnet.code == 0, resnet
    assert "RuntimeError: out of memory" in resnet.out
    assert re.search(r"│ loss\s+│ NaN\s+│", resnet.out)
    baseline = cli(capsys, "runs", "show", logged.baseline)
    assert re.search(r"│ act\s+│ \[relu\]\s+│", baseline.out)


def test_runs_show_json(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    result = cli(capsys, "runs", "show", logged.lgbm[:8], "--json")
    assert result.code == 0, result
    document = strict_json(result.out)
    assert document["run_id"] == logged.lgbm
    assert document["params"] == {"model": "lgbm", "dataset": "v1"}
    assert document["tags"] == {"team": "risk", "stage": "[bold]candidate[/bold]"}
    assert document["metrics"] == {"auc": 0.93, "accuracy": 0.88}
    assert [a["name"] for a in document["artifacts"]] == ["report.txt"]
    assert document["artifacts"][0]["size_bytes"] == 14
    assert [n["text"] for n in document["notes"]] == [
        "promising; see [/] and [link](https://example.com)"
    ]
    assert document["children"] == [logged.fold]
    failed = strict_json(cli(capsys, "runs", "show", logged.resnet, "--json").out)
    assert failed["metrics"]["loss"] is None


# -- compare ----------------------------------------------------------------------------------


def test_runs_compare_shows_both_runs(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    result = cli(capsys, "runs", "compare", logged.baseline[:8], logged.lgbm[:8])
    assert result.code == 0, result
    out = result.out
    for name, run_id in (("baseline", logged.baseline), ("lgbm", logged.lgbm)):
        assert name in out
        assert run_id[:8] in out
    assert re.search(r"params.model\s+│\s+logreg │\s+lgbm │", out)
    assert re.search(r"params.act\s+│\s+\[relu\] │\s+- │", out)
    assert re.search(r"metrics.auc\s+│\s+0.85 │\s+0.93 │", out)


def test_runs_compare_highlights_differences_and_the_best_metric(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, logged: Logged
) -> None:
    colour = Console(force_terminal=True, color_system="standard", width=WIDTH)
    monkeypatch.setattr(runs_cli, "console", colour)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main.run(["runs", "compare", logged.baseline[:8], logged.lgbm[:8]])
    assert exit_info.value.code == 0
    rows = {
        m.group(1): line
        for line in capsys.readouterr().out.splitlines()
        if (m := re.search(r"((?:params|metrics)\.\w+)", ANSI.sub("", line)))
    }
    yellow, bold = "\x1b[33m", "\x1b[1m"
    assert yellow in rows["params.model"]  # logreg vs lgbm
    assert yellow not in rows["params.dataset"]  # v1 in both
    assert f"{bold}0.93" in rows["metrics.auc"]
    assert f"{bold}0.85" not in rows["metrics.auc"]


def test_runs_compare_needs_two_runs(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    assert_one_line_error(
        cli(capsys, "runs", "compare", logged.lgbm[:8]), "compare needs at least two run ids"
    )
    none = cli(capsys, "runs", "compare")
    assert none.code == 2
    assert "Missing argument" in none.err
    assert "Traceback" not in none.err


# -- note -------------------------------------------------------------------------------------


def test_runs_note_is_visible_through_the_api(
    capsys: pytest.CaptureFixture[str], logged: Logged
) -> None:
    result = cli(capsys, "runs", "note", logged.baseline[:8], "beaten by **lgbm**")
    assert result.code == 0, result
    assert f"note added to baseline ({logged.baseline[:8]})" in result.out
    with Workspace.open() as ws:
        notes = ws.notes(logged.baseline)
    assert [n.text for n in notes] == ["beaten by **lgbm**"]
    assert notes[0].run_id == logged.baseline


def test_runs_note_refuses_blank_text(capsys: pytest.CaptureFixture[str], logged: Logged) -> None:
    assert_one_line_error(cli(capsys, "runs", "note", logged.baseline, "  "), "needs some text")
    with Workspace.open() as ws:
        assert ws.notes(logged.baseline) == []


# -- gc ---------------------------------------------------------------------------------------

_ORPHAN = """
import time
from shipyard.track.workspace import Workspace
run = Workspace.open().start_run(name="orphan", experiment="gc")
print(run.run_id, flush=True)
time.sleep(300)
"""


def test_runs_gc_marks_a_sigkilled_run_killed(capsys: pytest.CaptureFixture[str]) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        run_id = worker.stdout.readline().strip()
        assert run_id, worker.stderr.read() if worker.stderr else ""
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
    with Workspace.open() as ws:
        alive = ws.start_run(name="alive", experiment="gc")  # this process: not dead
        try:
            dry = cli(capsys, "runs", "gc", "--dry-run")
            assert dry.code == 0, dry
            assert "Dead runs (dry run)" in dry.out
            assert run_id[:8] in dry.out
            assert f"process {worker.pid}" in dry.out
            assert "is gone" in dry.out
            assert alive.run_id[:8] not in dry.out
            assert "marked" not in dry.out
            assert ws.get_run(run_id).status is RunStatus.RUNNING

            done = cli(capsys, "runs", "gc")
            assert done.code == 0, done
            assert run_id[:8] in done.out
            assert "marked 1 run(s) killed" in done.out
            killed = ws.get_run(run_id)
            assert killed.status is RunStatus.KILLED
            assert "found by runs gc" in (killed.error or "")
            assert ws.get_run(alive.run_id).status is RunStatus.RUNNING

            again = cli(capsys, "runs", "gc")
            assert "no dead runs found" in again.out
        finally:
            alive.end()


# -- errors -----------------------------------------------------------------------------------

USER_ERRORS = {
    "unknown run": (["runs", "show", "deadbeef00"], {}, "deadbeef00"),
    "unknown run, note": (["runs", "note", "deadbeef00", "hi"], {}, "deadbeef00"),
    "not a run id, with markup": (["runs", "show", "[/x]"], {}, "'[/x]'"),
    "bad filter": (["runs", "list", "--filter", "metrics.auc >"], {}, "'>'"),
    "bad order": (["runs", "list", "--order-by", "metrics.auc sideways"], {}, "sideways"),
    "bad store url": (["runs", "list"], {"SHIPYARD_STORE_URL": "mysql://x"}, "mysql"),
    "bad settings": (
        ["workspace", "info"],
        {"SHIPYARD_TRACKING__FLUSH_SIZE": "abc"},
        "tracking.flush_size",
    ),
}


@pytest.mark.parametrize(("args", "env", "fragment"), USER_ERRORS.values(), ids=USER_ERRORS)
def test_user_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    fragment: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal must not wrap the message
    result = cli(capsys, *args)
    assert_one_line_error(result, fragment)
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "env", "error"),
    [
        (["runs", "show", "deadbeef00"], {}, RunNotFound),
        (["runs", "list", "--filter", "metrics.auc >"], {}, InvalidFilter),
        (["runs", "list"], {"SHIPYARD_TRACKING__FLUSH_SIZE": "abc"}, InvalidSettings),
    ],
)
def test_debug_lets_the_exception_through(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    error: type[ShipyardError],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(error):
        main.run(["--debug", *args])
    assert "error:" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["runs", "bogus"],
        ["runs", "list", "--bogus"],
        ["runs", "list", "--limit", "0"],
        ["runs", "list", "--limit", "many"],
        ["runs", "show"],
        ["runs", "note", "abcdef12"],
        ["demo", "--folds", "1"],
        ["--project-dir"],
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    result = cli(capsys, *args)
    assert result.code == 2, result
    assert "Error" in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


@pytest.mark.parametrize("args", [[], ["runs"], ["workspace"], ["experiments"]], ids=" ".join)
def test_a_group_without_a_command_prints_its_help(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    result = cli(capsys, *args)
    assert result.code == 2
    assert f"Usage: {' '.join(['shipyard', *args])}" in result.out + result.err
    assert "Commands" in result.out + result.err


# -- the installed console script ---------------------------------------------------------------


def test_script_user_error_is_one_line_and_debug_shows_the_traceback() -> None:
    plain = shipyard("runs", "show", "deadbeef00", env={"COLUMNS": "30"})
    assert plain.returncode == 2
    assert plain.stdout == ""
    assert len(plain.stderr.splitlines()) == 1
    assert plain.stderr.startswith("error: no run matches 'deadbeef00'")

    debug = shipyard("--debug", "runs", "show", "deadbeef00")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "RunNotFound" in debug.stderr


def test_script_usage_error_and_bad_settings() -> None:
    unknown = shipyard("bogus")
    assert unknown.returncode == 2
    assert "No such command 'bogus'" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    settings = shipyard("runs", "list", env={"SHIPYARD_STORE_URL": "mysql://x", "COLUMNS": "30"})
    assert settings.returncode == 2
    assert settings.stderr.startswith("error: unsupported store backend 'mysql'")
    assert len(settings.stderr.splitlines()) == 1


def test_script_json_lines_are_machine_readable(logged: Logged) -> None:
    result = shipyard("runs", "list", "--json", "--order-by", "metrics.auc desc")
    assert result.returncode == 0, result.stderr
    assert [r["name"] for r in json_lines(result.stdout)] == [
        "resnet",
        "lgbm",
        "fold-0",
        "baseline",
    ]


@pytest.mark.slow
def test_demo_tracks_parents_and_folds(tmp_path: Path) -> None:
    result = shipyard("demo", "--epochs", "2", "--folds", "2", "--no-lifecycle")
    assert result.returncode == 0, result.stderr
    assert "best run: sgd-alpha-" in result.stdout
    with Workspace.open(tmp_path) as ws:
        runs = ws.search_runs(experiments=["demo-breast-cancer"], limit=None)
        parents = [r for r in runs if r.parent_run_id is None]
        children = [r for r in runs if r.parent_run_id is not None]
        assert len(parents) == 3
        assert len(children) == 6
        assert {r.status for r in runs} == {RunStatus.FINISHED}
        assert {c.parent_run_id for c in children} == {p.run_id for p in parents}
        for parent in parents:
            assert 0.5 < parent.metrics["auc"] <= 1.0
            assert [a.name for a in ws.list_artifacts(parent.run_id)] == ["fold_scores.parquet"]
            assert len(ws.notes(parent.run_id)) == 1
