"""``shipyard cost curve`` on a trained breast-cancer project: table, JSON, and refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shipyard.cli import main
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.pipeline.test_curves import write_project

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = 0
    try:
        main.run(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, _ANSI.sub("", out), _ANSI.sub("", err)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = write_project(tmp_path_factory.mktemp("curve-cli"))
    with Workspace.open(root) as workspace:
        run_pipeline(workspace, load_project(root), actor=OPERATOR)
    return str(root)


def test_json_has_the_points_the_gains_and_the_plot(capsys, trained: str) -> None:
    code, out, err = cli(
        capsys, "-C", trained, "cost", "curve", "--fractions", "0.2,0.6,1", "--repeats", "2",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert document["metric"] == "roc_auc"
    assert document["candidate_source"] == "cancer:1 (production)"
    assert [p["fraction"] for p in document["points"]] == [0.2, 0.6, 1.0]
    assert all(len(p["scores"]) == 2 for p in document["points"])
    assert document["points"][-1]["rows"] == document["train_rows"]
    assert [(g["from"], g["to"]) for g in document["gains"]] == [(0.2, 0.6), (0.6, 1.0)]
    assert document["summary"].startswith("going from 60% to 100% of the data")
    assert document["instance"] == "m5.large"
    assert Path(document["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Workspace.open(trained) as workspace:
        run = workspace.get_run(document["run_id"])
    assert run.experiment == "bc-curves"
    assert run.metrics["f0.6/roc_auc_mean"] == pytest.approx(document["points"][1]["mean"])


def test_the_table_ends_with_the_plain_language_line(capsys, monkeypatch, trained: str) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    plot = Path(trained) / "curve.png"
    code, out, err = cli(
        capsys, "-C", trained, "cost", "curve", "--fractions", "0.5,1.0", "--repeats", "1",
        "--plot", str(plot),
    )  # fmt: skip
    assert code == 0, err
    assert "Learning curve: logistic (cancer:1 (production))" in out
    assert "gain/doubling" in out
    assert re.search(
        r"going from 50% to 100% of the data \(\d+ to \d+ rows\) adds [+-]0\.\d{4} roc_auc", out
    )
    assert "m5.large on_demand" in out
    assert f"plot: {plot}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ("0", "0 is not a share of the training rows"),
        ("0.5,1.5", "1.5 is not a share of the training rows"),
        ("0.5,0.25", "must increase strictly"),
        ("0.25,0.5,0.5", "must increase strictly"),
        ("a,b", "'a' is not a number"),
    ],
)
def test_bad_fractions_exit_2_before_any_work(capsys, tmp_path: Path, fractions, message) -> None:
    root = write_project(tmp_path)
    code, _, err = cli(capsys, "-C", str(root), "cost", "curve", "--fractions", fractions)
    assert code == 2
    assert message in err
    assert not (root / ".shipyard").exists()  # refused before the workspace was opened


def test_a_project_without_train_exits_2(capsys, tmp_path: Path) -> None:
    root = write_project(tmp_path, train="")
    code, _, err = cli(capsys, "-C", str(root), "cost", "curve")
    assert code == 2
    assert "no train: section in shipyard.yaml" in err


def test_repeats_must_be_positive(capsys, tmp_path: Path) -> None:
    root = write_project(tmp_path)
    code, _, err = cli(capsys, "-C", str(root), "cost", "curve", "--repeats", "0")
    assert code == 2
    assert "--repeats" in err


def test_a_folder_as_plot_path_exits_2_before_any_fit(capsys, trained: str) -> None:
    with Workspace.open(trained) as workspace:
        before = len(workspace.search_runs(experiments=["bc-curves"], limit=None))
    code, _, err = cli(capsys, "-C", trained, "cost", "curve", "--plot", trained)
    assert code == 2
    assert "is a folder; give a file name such as curve.png" in err
    with Workspace.open(trained) as workspace:
        assert len(workspace.search_runs(experiments=["bc-curves"], limit=None)) == before
