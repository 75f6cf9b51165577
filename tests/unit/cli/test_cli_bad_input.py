"""Bad input to the commands added for monitoring, cost, retention, keys, access and privacy.

Each case is a regression test from a sweep of those commands in a scratch project: what used
to end in a traceback, a silent success or a file written somewhere unexpected now ends in one
``error: ...`` line and exit 2 (a usage error where Click checks the option itself), and leaves
nothing half-written. The commands run in this process through ``main.run``, as a user's shell
would run them, on the embedded workspace of ``tmp_path`` (tests/conftest.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shipyard.cli import main
from shipyard.cli.monitor_alerts import parse_time
from shipyard.core.errors import InvalidArgument
from shipyard.registry.registry import ModelRegistry, check_name
from shipyard.track.workspace import Workspace
from tests.corpus import BAD_NAMES
from tests.identities import OPERATOR
from tests.unit.registry.trained import cached_bundle_file

if TYPE_CHECKING:
    from collections.abc import Iterator

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
NOW_MS = 1_800_000_000_000


@pytest.fixture(autouse=True)
def _wide_plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """One error line whatever the width; no colour codes in the captured text."""
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``shipyard *args`` in this process; return exit code, stdout and stderr."""
    capsys.readouterr()
    code: Any = 0
    try:
        main.run(list(args))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return 0 if code is None else int(code), _ANSI.sub("", out), _ANSI.sub("", err)


def one_error_line(result: tuple[int, str, str], *fragments: str) -> str:
    """Assert exit 2 with exactly one ``error:`` line on stderr; return that line."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def usage_error(result: tuple[int, str, str], option: str) -> None:
    """Assert Click's usage error (exit 2) naming ``option``, without a traceback."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    assert "Usage:" in err
    assert option in err


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose registry holds model ``churn`` (version 1) and nothing else."""
    root = tmp_path_factory.mktemp("registered")
    with Workspace.open(root) as workspace:
        bundle = cached_bundle_file(workspace, root, name="churn")
        ModelRegistry.for_workspace(workspace).register("churn", bundle, actor=OPERATOR)
    return root


# -- monitor report -------------------------------------------------------------------------


# The "Names and keys" shapes of RELIABILITY.md (the corpus opens with them); each CLI call
# builds the whole command tree, so the rest of the corpus is left to the registry's tests.
REPORT_NAMES = BAD_NAMES[: BAD_NAMES.index("../root_evil/x") + 1]


@pytest.mark.parametrize("name", REPORT_NAMES, ids=range(len(REPORT_NAMES)))
def test_monitor_report_refuses_a_model_name_that_is_not_a_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    """The name becomes reports/<name>.html: ``a/../../b`` once wrote outside the project."""
    project = tmp_path / "project"
    project.mkdir()
    one_error_line(cli(capsys, "-C", str(project), "monitor", "report", name))
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".html")]
    assert not (project / "reports").exists()
    assert not Path("/etc/passwd.html").exists()


@pytest.mark.parametrize("name", BAD_NAMES, ids=range(len(BAD_NAMES)))
def test_a_name_the_report_accepts_names_a_file_inside_reports(name: str, tmp_path: Path) -> None:
    """The whole corpus against the check ``monitor report`` makes before naming its file."""
    try:
        check_name(name)
    except InvalidArgument:
        return
    reports = tmp_path / "reports"
    assert (reports / f"{name}.html").resolve().parent == reports.resolve()


def test_monitor_report_of_an_unregistered_model_is_not_an_empty_report(
    capsys: pytest.CaptureFixture[str], registered: Path
) -> None:
    line = one_error_line(cli(capsys, "-C", str(registered), "monitor", "report", "nomodel"))
    assert "no model named 'nomodel'" in line
    assert "shipyard models list" in line
    assert not (registered / "reports" / "nomodel.html").exists()


def test_monitor_report_to_an_unwritable_path_names_it_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str], registered: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "report.html"
    line = one_error_line(
        cli(capsys, "-C", str(registered), "monitor", "report", "churn", "--out", str(target))
    )
    assert f"cannot write the report to {target}" in line
    assert "--out" in line
    assert files_under(tmp_path) == {Path("a-file")}


def test_monitor_report_to_a_folder_says_to_name_a_file(
    capsys: pytest.CaptureFixture[str], registered: Path, tmp_path: Path
) -> None:
    line = one_error_line(
        cli(capsys, "-C", str(registered), "monitor", "report", "churn", "--out", str(tmp_path))
    )
    assert "is a folder" in line
    assert files_under(tmp_path) == set()


def test_monitor_report_writes_the_file_whole(
    capsys: pytest.CaptureFixture[str], registered: Path, tmp_path: Path
) -> None:
    target = tmp_path / "new" / "churn.html"
    code, out, err = cli(
        capsys, "-C", str(registered), "monitor", "report", "churn", "-o", str(target)
    )
    assert code == 0, err
    assert target.read_text(encoding="utf-8").rstrip().endswith("</html>")
    assert files_under(tmp_path) == {Path("new"), Path("new/churn.html")}  # no temporary left
    assert "wrote" in out
    # Before any serving and monitoring pass, the report says what would fill it.
    assert "no monitoring pass has looked at churn yet" in out
    assert "shipyard serve churn@production" in out


# -- monitor feedback -----------------------------------------------------------------------


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\nr1,1\n")
    return path


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ("nomodel", "no model named 'nomodel'"),
        ("../x", "model name '../x' must be"),
        ("churn:1", "model name 'churn:1' must be"),
        ("", "model name '' must be"),
    ],
)
def test_monitor_feedback_for_a_model_the_registry_lacks_stores_nothing(
    capsys: pytest.CaptureFixture[str], registered: Path, labels: Path, model: str, fragment: str
) -> None:
    """The labels once went into the feedback store under any name, never to be scored."""
    result = cli(
        capsys, "-C", str(registered), "monitor", "feedback", str(labels), "--model", model
    )
    one_error_line(result, fragment)
    assert not (registered / ".shipyard" / "feedback").exists()


def test_monitor_feedback_with_a_missing_log_dir_writes_nothing_beside_it(
    capsys: pytest.CaptureFixture[str], registered: Path, labels: Path, tmp_path: Path
) -> None:
    """``--log-dir /x/predictions`` used to create /x/feedback and store the labels there."""
    missing = tmp_path / "elsewhere" / "predictions"
    result = cli(
        capsys,
        "-C",
        str(registered),
        "monitor",
        "feedback",
        str(labels),
        "--model",
        "churn",
        "--log-dir",
        str(missing),
    )
    usage_error(result, "--log-dir")
    assert not (tmp_path / "elsewhere").exists()
    assert not (registered / ".shipyard" / "feedback").exists()


@pytest.mark.parametrize("command", ["run", "report"])
def test_monitor_run_and_report_refuse_a_missing_predictions_folder(
    capsys: pytest.CaptureFixture[str], registered: Path, tmp_path: Path, command: str
) -> None:
    model = ["churn"] if command == "report" else ["--once"]
    result = cli(
        capsys,
        "-C",
        str(registered),
        "monitor",
        command,
        *model,
        "--predictions",
        str(tmp_path / "nowhere"),
    )
    usage_error(result, "--predictions")


# -- time options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("monitor", "alerts", "--since", "0001-01-01"),
        ("monitor", "alerts", "--since", "99999999999999999999d"),
        ("monitor", "history", "--model", "m", "--since", "0001-01-01"),
        ("monitor", "history", "--model", "m", "--until", "99999999999999999999d"),
        ("monitor", "history", "--model", "m", "--since", "9999-12-31T23:59-05:00"),
    ],
)
def test_far_times_mean_from_the_start_instead_of_overflowing(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    """Year 1 raised ValueError; a span of 1e20 days overflowed the store's integer type."""
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert "no alerts match" in out or "no observations of m match" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW_MS - 3_600_000),
        ("99999999999999999999d", 0),
        ("0001-01-01", 0),
        ("1969-12-31T00:00+00:00", 0),
        ("9999-12-31T23:59:59.999+00:00", _LAST_MS),
        ("9999-12-31T23:59-05:00", _LAST_MS),
    ],
)
def test_parse_time_stays_within_what_the_stores_hold(text: str, expected: int) -> None:
    assert parse_time(text, NOW_MS, "--since") == expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("monitor", "alerts", "--since", "yesterdayish"), "--since 'yesterdayish': give a span"),
        (("monitor", "alerts", "--since", "-1h"), "--since '-1h'"),
        (("monitor", "history", "--model", "m", "--until", "2026-13-45"), "--until '2026-13-45'"),
        (("monitor", "run", "--once", "--interval", "yesterdayish"), "--interval: 'yesterdayish'"),
        (("monitor", "run", "--interval", "1ms"), "--interval '1ms' must be between 1s and 366d"),
        (("monitor", "run", "--interval", "400d"), "--interval '400d' must be between"),
        (("audit", "list", "--since", "yesterdayish"), "--since 'yesterdayish' is not an ISO"),
        (("monitor", "history", "--model", "m", "--kind", "drfit"), "--kind must be one of drift"),
    ],
)
def test_malformed_times_intervals_and_kinds_are_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    one_error_line(cli(capsys, *args), fragment)


# -- cost plots, gc, settings, erase, NUL ---------------------------------------------------


@pytest.mark.parametrize("where", ["under-a-file", "a-folder"])
def test_cost_report_plot_path_that_cannot_be_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    """An OSError from matplotlib's save used to escape, leaving ``<plot>.png.tmp`` behind."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    blocker = out_dir / "a-file"
    blocker.write_text("x")
    plot = blocker / "cost.png" if where == "under-a-file" else out_dir
    line = one_error_line(cli(capsys, "cost", "report", "--plot", str(plot)))
    assert str(plot) in line
    assert files_under(out_dir) == {Path("a-file")}


@pytest.mark.parametrize("hours", ["inf", "nan", "-1", "1e9"])
def test_gc_grace_hours_must_be_a_finite_span(
    capsys: pytest.CaptureFixture[str], hours: str
) -> None:
    """``--grace-hours inf`` passed Click's min=0 and overflowed into OverflowError."""
    usage_error(cli(capsys, "gc", "--grace-hours", hours), "--grace-hours")


@pytest.mark.parametrize("command", [("gc",), ("budget", "status"), ("keys", "status")])
def test_a_project_file_that_is_not_utf8_is_a_settings_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    (tmp_path / "shipyard.yaml").write_bytes(b"name: p\n\xff\xfe\x00garbage\n")
    one_error_line(cli(capsys, *command), "shipyard.yaml", "not UTF-8")
    assert not (tmp_path / ".shipyard").exists()


def test_erase_with_an_empty_subject_column_says_so_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """It printed the key note, opened the workspace, then failed: two lines, a new store."""
    result = cli(capsys, "erase", "--subject-column", " ", "--value", "ann@example.com", "--yes")
    line = one_error_line(result, "--subject-column is empty")
    assert "ann@example.com" not in line
    assert not (tmp_path / ".shipyard").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("monitor", "alerts", "--model", "a\x00b"),
        ("monitor", "history", "--model", "a\x00b"),
        ("audit", "list", "--actor", "a\x00b"),
        ("users", "disable", "a\x00b"),
        ("roles", "list", "--project", "a\x00b"),
        ("cost", "advise", "a\x00b"),
        ("erase", "--subject-column", "email", "--value", "secret\x00value", "--yes"),
    ],
)
def test_a_nul_in_any_argument_is_refused_before_it_reaches_a_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    """PostgreSQL raises DataError on NUL in text; the message names the position only."""
    line = one_error_line(cli(capsys, *args), "contains a NUL character")
    assert "secret" not in line
    assert not (tmp_path / ".shipyard").exists()
