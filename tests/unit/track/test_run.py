"""The run API users call, on both store backends."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import polars as pl
import pytest

from shipyard.core.errors import (
    InvalidArgument,
    InvalidMetricValue,
    InvalidName,
    ParamConflict,
    RunNotActive,
)
from shipyard.store.entities import RunStatus
from shipyard.track.workspace import Workspace
from tests.corpus import BAD_NAMES


def test_a_run_that_returns_is_finished(workspace: Workspace) -> None:
    with workspace.start_run(name="ok", experiment="e", params={"lr": 0.1}, tags={"t": 1}) as run:
        run.log_metric("auc", 0.9)
    stored = workspace.get_run(run.run_id)
    assert stored.status is RunStatus.FINISHED
    assert stored.params == {"lr": "0.1"}
    assert stored.tags == {"t": "1"}
    assert stored.metrics == {"auc": 0.9}
    assert stored.end_ms is not None
    assert stored.end_ms >= stored.start_ms
    assert stored.experiment == "e"


def test_an_exception_fails_the_run_and_is_recorded(workspace: Workspace) -> None:
    def fail_inside_a_run() -> None:
        with workspace.start_run(name="bad") as run:
            run.log_metric("before", 1.0)
            raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        fail_inside_a_run()
    (run,) = workspace.search_runs("name = 'bad'")
    stored = workspace.get_run(run.run_id)
    assert stored.status is RunStatus.FAILED
    assert stored.error is not None
    assert "ZeroDivisionError" in stored.error
    assert stored.metrics == {"before": 1.0}  # what was logged before the failure is kept


def test_keyboard_interrupt_kills_the_run(workspace: Workspace) -> None:
    with pytest.raises(KeyboardInterrupt), workspace.start_run() as run:
        raise KeyboardInterrupt
    assert workspace.get_run(run.run_id).status is RunStatus.KILLED


def test_system_exit_zero_finishes_and_nonzero_fails(workspace: Workspace) -> None:
    with pytest.raises(SystemExit), workspace.start_run() as ok:
        raise SystemExit(0)
    with pytest.raises(SystemExit), workspace.start_run() as bad:
        raise SystemExit(3)
    assert workspace.get_run(ok.run_id).status is RunStatus.FINISHED
    assert workspace.get_run(bad.run_id).status is RunStatus.FAILED


def test_metric_values_are_checked(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        for bad in ("0.5", b"1", True, None, [1.0], {"v": 1}, 1 + 2j):
            with pytest.raises(InvalidMetricValue, match="must be a real number"):
                run.log_metric("m", bad)  # type: ignore[arg-type]
        run.log_metric("nan", math.nan)
        run.log_metric("inf", math.inf)
        run.log_metric("np", np.float32(0.25))
        run.log_metric("int", np.int64(3))
        run.log_metric("decimal", Decimal("0.5"))  # type: ignore[arg-type]
        run.log_metric("fraction", Fraction(1, 4))
    metrics = workspace.get_run(run.run_id).metrics
    assert math.isnan(metrics["nan"])
    assert metrics["inf"] == math.inf
    assert metrics["np"] == 0.25
    assert metrics["int"] == 3.0
    assert metrics["fraction"] == 0.25
    assert set(metrics) == {"nan", "inf", "np", "int", "decimal", "fraction"}


def test_bad_keys_steps_and_timestamps_are_refused(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        for key in ("", "a" * 251, "a\x00b", "../x", "/abs", "semi;colon", 5):
            with pytest.raises(InvalidName):
                run.log_metric(key, 1.0)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="step must be an integer"):
            run.log_metric("m", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="non-negative epoch milliseconds"):
            run.log_metric("m", 1.0, timestamp=-5)
        with pytest.raises(InvalidArgument, match="timezone-aware"):
            run.log_metric("m", 1.0, timestamp=dt.datetime(2026, 1, 1))
    assert workspace.store.count_metrics([run.run_id]) == 0


def test_steps_default_to_one_past_the_last(workspace: Workspace) -> None:
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    with workspace.start_run() as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
        run.log_metric("loss", 0.5, step=10)
        run.log_metric("loss", 0.4)
        run.log_metric("at", 1.0, timestamp=when)
    history = workspace.metric_history(run.run_id, "loss")
    assert [(p.step, p.value) for p in history] == [
        (0, 3.0),
        (1, 2.0),
        (2, 1.0),
        (10, 0.5),
        (11, 0.4),
    ]
    assert workspace.metric_history(run.run_id, "at")[0].timestamp_ms == 1767312000000


def test_duplicate_params_with_other_values_are_refused(workspace: Workspace) -> None:
    with workspace.start_run(params={"lr": 0.1}) as run:
        run.log_param("lr", 0.1)
        with pytest.raises(ParamConflict, match="write-once"):
            run.log_param("lr", 0.2)
        with pytest.raises(InvalidArgument, match="log large values as an artifact"):
            run.log_param("huge", "x" * 9000)
    assert workspace.get_run(run.run_id).params == {"lr": "0.1"}


def test_an_ended_run_refuses_more_logging(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        pass
    with pytest.raises(RunNotActive):
        run.log_metric("m", 1.0)
    with pytest.raises(RunNotActive):
        run.log_param("p", 1)
    with pytest.raises(RunNotActive):
        run.log_artifact(b"x", name="x.bin")
    run.end(RunStatus.FAILED)  # ending twice is a no-op
    assert workspace.get_run(run.run_id).status is RunStatus.FINISHED


def test_child_runs_share_the_experiment(workspace: Workspace) -> None:
    with workspace.start_run(name="cv", experiment="tune") as parent:
        for fold in range(3):
            with parent.child(name=f"fold-{fold}", params={"fold": fold}) as child:
                child.log_metric("auc", 0.8 + fold / 100)
    children = workspace.search_runs(f"parent_run_id = '{parent.run_id}'", order_by=["name"])
    assert [c.name for c in children] == ["fold-0", "fold-1", "fold-2"]
    assert {c.experiment for c in children} == {"tune"}
    assert all(c.status is RunStatus.FINISHED for c in children)


def test_notes(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        run.add_note("first look: **promising**", author="ana")
        with pytest.raises(InvalidArgument, match="needs some text"):
            run.add_note("   ")
    workspace.add_note(run.run_id, "reviewed after the fact")
    notes = workspace.notes(run.run_id)
    assert next((n.author, n.text) for n in notes) == ("ana", "first look: **promising**")
    assert notes[1].text == "reviewed after the fact"


def test_buffered_metrics_are_durable_after_flush(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        for i in range(250):
            run.log_metric("x", float(i))
        run.flush()
        assert workspace.store.count_metrics([run.run_id]) == 250
        assert workspace.writer.pending == 0


def test_log_batch_is_synchronous_and_all_or_nothing(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        written = run.log_batch([("a", 1.0, 0, 1), ("a", 2.0, 1, 2), ("b", 3.0, 0, 3)])
        assert written == 3
        assert workspace.store.count_metrics([run.run_id]) == 3
        with pytest.raises(InvalidMetricValue):
            run.log_batch([("c", 1.0, 0, 1), ("c", "oops", 1, 2)])  # type: ignore[list-item]
        assert workspace.store.count_metrics([run.run_id]) == 3
        run.log_metric("a", 9.0)  # continues after the batch's last step
    assert workspace.metric_history(run.run_id, "a")[-1].step == 2


def test_run_records_environment_and_resources(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        total = sum(i * i for i in range(300_000))
        run.log_metric("total", float(total))
    stored = workspace.get_run(run.run_id)
    assert stored.environment["python"].startswith("3.")
    assert "sqlalchemy" in stored.environment["packages"]
    resources = stored.resources
    assert resources.wall_seconds is not None
    assert resources.wall_seconds > 0
    assert resources.cpu_seconds is not None
    assert resources.cpu_seconds > 0
    assert resources.peak_rss_bytes is not None
    assert resources.peak_rss_bytes > 10_000_000
    assert stored.pid > 0
    assert stored.host


def test_artifacts_of_every_kind(workspace: Workspace, tmp_path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.txt").write_text("w")
    (folder / "sub" / "config.json").write_text("{}")
    single = tmp_path / "report.html"
    single.write_text("<h1>r</h1>")
    with workspace.start_run() as run:
        run.log_artifact(b"raw", name="raw.bin")
        run.log_artifact(single)
        run.log_artifact(folder)
        run.log_artifact(pl.DataFrame({"a": [1, 2]}), name="frames/polars.parquet")
        run.log_artifact(pd.DataFrame({"b": [3.0]}), name="frames/pandas.parquet")
        again = run.log_artifact(b"raw", name="copy.bin")
    names = {a.name: a for a in workspace.list_artifacts(run.run_id)}
    assert set(names) == {
        "raw.bin",
        "copy.bin",
        "report.html",
        "model/weights.txt",
        "model/sub/config.json",
        "frames/polars.parquet",
        "frames/pandas.parquet",
    }
    assert names["report.html"].media_type == "text/html"
    assert again[0].digest == names["raw.bin"].digest  # deduplicated by content
    frame = pl.read_parquet(workspace.read_artifact(run.run_id, "frames/polars.parquet"))
    assert frame["a"].to_list() == [1, 2]
    out = workspace.download_artifacts(run.run_id, tmp_path / "out")
    assert (tmp_path / "out" / "model" / "sub" / "config.json").read_text() == "{}"
    assert len(out) == 7


@pytest.mark.parametrize("name", BAD_NAMES[:40])
def test_artifact_names_that_escape_are_refused(workspace: Workspace, name: str) -> None:
    with workspace.start_run() as run, pytest.raises(InvalidName):
        run.log_artifact(b"payload", name=name)
    assert workspace.list_artifacts(run.run_id) == []


def test_symlinks_in_logged_folders_are_refused(workspace: Workspace, tmp_path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "escape").symlink_to("/etc/passwd")
    with workspace.start_run() as run, pytest.raises(InvalidArgument, match="symlink"):
        run.log_artifact(folder)
    assert workspace.list_artifacts(run.run_id) == []


def test_unsupported_artifact_objects(workspace: Workspace, tmp_path) -> None:
    with workspace.start_run() as run:
        with pytest.raises(InvalidArgument, match="needs a name"):
            run.log_artifact(b"x")
        with pytest.raises(InvalidArgument, match="cannot log a dict"):
            run.log_artifact({"a": 1})
        with pytest.raises(InvalidArgument, match="does not exist"):
            run.log_artifact(tmp_path / "missing.txt")


def test_a_start_with_a_bad_param_or_tag_leaves_no_run_behind(workspace: Workspace) -> None:
    with pytest.raises(InvalidName):
        workspace.start_run(name="bad", params={"../x": 1})
    with pytest.raises(InvalidName):
        workspace.start_run(name="bad", tags={"a\x00b": "v"})
    assert workspace.search_runs("name = 'bad'") == []


def test_params_and_tags_given_at_start_are_stored_with_the_run(workspace: Workspace) -> None:
    with workspace.start_run(name="r", params={"lr": 0.1}, tags={"team": "risk"}) as run:
        child = run.child("c", params={"fold": 2}, tags={"kind": "fold"})
        child.end()
    stored = workspace.get_run(child.run_id)
    assert stored.params == {"fold": "2"}
    assert stored.tags == {"kind": "fold"}
    assert stored.parent_run_id == run.run_id
    assert workspace.get_run(run.run_id).params == {"lr": "0.1"}
