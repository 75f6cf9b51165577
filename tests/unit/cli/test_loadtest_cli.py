"""``shipyard loadtest`` against a real local server: table, histogram, the stored run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.cli import main
from shipyard.track.workspace import Workspace
from tests.unit.serve.http_target import http_target


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main.run(list(args))
        code = 0
    except SystemExit as e:
        code = 0 if e.code is None else int(e.code)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_loadtest_prints_the_report_and_saves_it_as_a_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with http_target(fail_every=4) as target:
        code, out, err = _cli(
            capsys,
            "loadtest",
            target.url,
            "--concurrency",
            "2",
            "--duration",
            "0.5",
            "--body",
            '{"columns": {"x": [1]}}',
            "--header",
            "X-Api-Key: k1",
        )
    assert code == 0, err
    assert target.bodies[0] == b'{"columns": {"x": [1]}}'
    assert target.headers[0]["content-type"] == "application/json"
    assert target.headers[0]["x-api-key"] == "k1"
    assert "throughput" in out
    assert "latency p99" in out
    assert "status 500" in out
    assert "│█" in out  # the histogram
    run_id = out.split("saved as run ")[1].split()[0]
    with Workspace.open(tmp_path) as ws:
        run = ws.get_run(run_id)
        stored = json.loads(ws.read_artifact(run_id, "report.json"))
    assert run.experiment == "loadtests"
    assert run.params["method"] == "POST"
    assert run.params["header_names"] == '["content-type", "x-api-key"]'
    assert "k1" not in json.dumps(stored)  # header values (keys, tokens) are never stored
    assert stored["requests"] == target.requests
    assert stored["errors_by_kind"] == {"status 500": target.failures}
    assert run.metrics["requests"] == target.requests


def test_rate_mode_with_a_body_file_and_no_save(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = tmp_path / "request.json"
    body.write_text('{"records": []}')
    with http_target() as target:
        code, out, err = _cli(
            capsys,
            "loadtest",
            target.url,
            "--rate",
            "40",
            "--arrival",
            "uniform",
            "--duration",
            "0.5",
            "--body-file",
            str(body),
            "--no-save",
        )
    assert code == 0, err
    assert "missed sends" in out
    assert "saved as run" not in out
    assert target.headers[0]["content-type"] == "application/json"
    assert 18 <= target.requests <= 21  # a fixed schedule: 40/s for 0.5 s


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--concurrency", "2", "--rate", "5"], "not both"),
        (["--body", "{not json"], "not valid JSON"),
        (["--header", "no-colon"], "Name:value"),
    ],
)
def test_bad_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    code, _, err = _cli(capsys, "loadtest", "http://127.0.0.1:9/", "--duration", "0.1", *args)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err
