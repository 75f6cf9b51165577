"""``shipyard loadtest`` against a real model server that wants bearer tokens.

The server is the real app (auth middleware, a trained bundle) on uvicorn in this process,
port 0; tokens come from a real security store. A token from ``$SHIPYARD_TOKEN`` or
``--token`` gets answers; without one the 401s are counted and explained, and the token
never shows in the output or in the saved run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipyard.cli import main
from shipyard.registry.bundle import Bundle
from shipyard.security.roles import Role
from shipyard.serve.app import create_app
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from shipyard.track.workspace import Workspace
from tests.servers import running
from tests.unit.serve.conftest import MemorySource, make_bundle
from tests.unit.serve.tokens import ServerTokens

BODY = '[{"tenure": 12.0, "charges": 70.5, "plan": "basic"}]'


@dataclass
class Server:
    url: str
    tokens: ServerTokens


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def server(bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    # The CLI checks $SHIPYARD_TOKEN against its own store before it acts: point it at the
    # server's, as one workspace would be (same database, same audit key and anchor).
    folder = tmp_path / "security"
    monkeypatch.setenv("SHIPYARD_STORE_URL", f"sqlite:///{folder / 'security.db'}")
    monkeypatch.setenv("SHIPYARD_AUDIT__KEY_FILE", str(folder / "audit.key"))
    monkeypatch.setenv("SHIPYARD_AUDIT__ANCHOR_FILE", str(folder / "audit-anchor.json"))
    monkeypatch.setenv("SHIPYARD_PROJECT_DIR", str(tmp_path))
    source = MemorySource()
    source.bundles[("churn", 1)] = bundle
    source.aliases[("churn", "production")] = 1
    tokens = ServerTokens(folder)
    spec = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)
    app = create_app(Runtime(spec, source), auth=tokens.auth)
    with running(app, lifespan="on") as port:
        yield Server(f"http://127.0.0.1:{port}/models/churn/predict", tokens)


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main.run(list(args))
        code = 0
    except SystemExit as e:
        code = 0 if e.code is None else int(e.code)
    out = capsys.readouterr()
    return code, out.out, out.err


def _load(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> tuple[int, str, str]:
    return _cli(
        capsys, "loadtest", url, "--concurrency", "2", "--duration", "0.4", "--body", BODY, *extra
    )


def _row(out: str, name: str) -> str:
    line = next(line for line in out.splitlines() if f" {name} " in line)
    return line.split("│")[2].strip()


def test_the_token_from_the_environment_gets_answers_and_is_never_printed(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = server.tokens.token(Role.ML_ENGINEER)  # loadtest.run; the server wants predict
    monkeypatch.setenv("SHIPYARD_TOKEN", token)
    code, out, err = _load(capsys, server.url, "--no-save")
    assert code == 0, err
    assert int(_row(out, "requests")) > 0
    assert _row(out, "errors") == "0 (0.0%)"
    assert "bearer token from $SHIPYARD_TOKEN" in out
    assert token not in out + err
    assert "refused" not in out


def test_a_token_option_is_sent_and_the_saved_run_keeps_no_trace_of_it(
    server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = server.tokens.token(Role.VIEWER)
    code, out, err = _load(capsys, server.url, "--token", token)
    assert code == 0, err
    assert _row(out, "errors") == "0 (0.0%)"
    assert "bearer token from --token" in out
    assert token not in out + err
    run_id = out.split("saved as run ")[1].split()[0]
    with Workspace.open(tmp_path) as ws:
        run = ws.get_run(run_id)
        stored = ws.read_artifact(run_id, "report.json").decode()
    assert json.loads(run.params["header_names"]) == ["authorization", "content-type"]
    assert token not in stored
    assert token not in json.dumps(run.params)


def test_without_a_token_the_401s_are_counted_and_explained(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _load(capsys, server.url, "--no-save")
    assert code == 0, err
    assert "Traceback" not in out + err
    requests = int(_row(out, "requests"))
    assert requests > 0
    assert _row(out, "errors") == f"{requests} (100.0%)"
    assert _row(out, "status 401") == str(requests)
    assert "none ($SHIPYARD_TOKEN is not set)" in out
    assert f"{requests} request(s) refused with 401" in out
    assert "set $SHIPYARD_TOKEN or pass --token" in out


def test_anonymous_ignores_the_environment_and_a_bad_token_is_called_not_accepted(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", server.tokens.token(Role.ML_ENGINEER))
    code, out, _ = _load(capsys, server.url, "--no-save", "--anonymous")
    assert code == 0
    assert "none (--anonymous)" in out
    assert _row(out, "status 401") == _row(out, "requests")
    code, out, _ = _cli(
        capsys, "loadtest", server.url, "--duration", "1", "--body", BODY,
        "--no-save", "--token", "sy_notatoken_x",
    )  # fmt: skip
    assert code == 0
    assert "sy_notatoken_x" not in out
    # One request at a time: the first ten bad tokens are 401, then the address is refused.
    requests = int(_row(out, "requests"))
    assert requests > 10
    assert _row(out, "status 401") == "10"
    assert _row(out, "status 429") == str(requests - 10)
    assert "10 request(s) refused with 401: the token was not accepted" in out
    assert "refused with 429: after repeated bad tokens" in out


def test_an_empty_token_variable_counts_as_no_token(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", "  ")
    code, out, err = _load(capsys, server.url, "--no-save")
    assert code == 0, err
    assert "none ($SHIPYARD_TOKEN is not set)" in out
    assert _row(out, "status 401") == _row(out, "requests")


def test_a_role_without_predict_is_refused_with_403_and_said_so(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    token = server.tokens.token(None)  # a user without a role in the project
    code, out, _ = _load(capsys, server.url, "--no-save", "--token", token)
    assert code == 0
    assert _row(out, "status 403") == _row(out, "requests")
    assert "refused with 403: the token's role may not call this route" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--token", "sy_a_b", "--anonymous"],
        ["--token", "sy_a_b", "--header", "Authorization: Bearer sy_c_d"],
        ["--token", "two words"],
        ["--token", " "],
    ],
)
def test_conflicting_or_malformed_token_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = _cli(capsys, "loadtest", "http://127.0.0.1:9/", "--duration", "0.1", *args)
    assert code == 2
    assert "token" in err.lower()
    assert "sy_a_b" not in out + err  # the token is not echoed, not even in an error
    assert "Traceback" not in err
