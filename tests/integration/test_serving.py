"""Real servers (`shipyard serve`, uvicorn, a subprocess) on a real registry, on 127.0.0.1.

One server per module serves the A/B, canary, shadow and hot-swap tests; each test first puts
the aliases and the policy back into the same known state and waits until the server has loaded
them (``GET /admin/models``), so the tests do not depend on their order or on the 0.2 s alias
poller's timing. The graceful-stop test stops a server of its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest

from shipyard.registry.registry import ModelRegistry
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import local_identity
from shipyard.serve.prediction_log import read_prediction_log
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.registry.trained import bundle_file

# Server start-up and model loading take tens of seconds on a busy two-core machine; the
# module's server is started inside the first test's timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SHIPYARD = Path(sys.executable).with_name("shipyard")
READY_DEADLINE_S = 180.0
LOADED_DEADLINE_S = 120.0
TOKEN = ""  # an admin token of the served workspace, minted by the project fixture
ROW = {"tenure": 12.0, "charges": 70.0, "plan": "basic"}
AB = {"type": "ab", "weights": {"production": 0.7, "challenger": 0.3}, "sticky_header": "x-user"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    global TOKEN  # read by the helpers below
    root = tmp_path_factory.mktemp("serving")
    with Workspace.open(root) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        for name, features in (
            ("v1", None),
            ("v2", ["tenure", "plan"]),
            ("v3", ["tenure", "charges", "plan", "region"]),
            ("v4", ["tenure", "charges", "plan"]),  # v1's contract, retrained: the hot swap
        ):
            path = bundle_file(
                workspace,
                root,
                features=features,
                name=name,
                extra_column="region" if name == "v3" else None,
            )
            registry.register("churn", path, actor=OPERATOR)
        registry.promote("churn", 1, force=True, reason="start", actor=OPERATOR)
        registry.promote("churn", 2, alias="challenger", force=True, reason="start", actor=OPERATOR)
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        me = local_identity("project")
        accounts.ensure_user(me, "ci")
        accounts.grant(me, "ci", "admin", "project")
        TOKEN = accounts.create_token(me, "ci").text
    (root / "shipyard.yaml").write_text(
        f"""
deploy:
  poll_interval_s: 0.2
  models:
    churn:
      model: churn
      policy: {json.dumps(AB)}
"""
    )
    return root


def _start(project: Path) -> tuple[str, subprocess.Popen[str]]:
    port = _port()
    env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(project)}
    # Output goes to a file, not a pipe: nobody reads a pipe while the tests run, and a server
    # that filled one would block on its next log line; the file is shown when a wait fails.
    output = project / f"server-{port}.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [str(SHIPYARD), "serve", "--port", str(port), "--workers", "1"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200:
                return url, process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"server did not get ready in {READY_DEADLINE_S:.0f} s: {output.read_text()}")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[str]:
    url, process = _start(project)
    yield url
    _stop(process)


def _bearer() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


def _predict(client: httpx.Client, user: str) -> httpx.Response:
    headers = {"x-user": user, "authorization": f"Bearer {TOKEN}"}
    return client.post("/models/churn/predict", json=[ROW], headers=headers)


def _policy(url: str, policy: object) -> None:
    answer = httpx.put(
        f"{url}/admin/models/churn/policy",
        content=json.dumps(policy),  # json=None would send no body at all
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    assert answer.status_code == 200, answer.text


def _served(url: str) -> dict[str, object]:
    answer = httpx.get(f"{url}/admin/models", headers=_bearer(), timeout=10)
    assert answer.status_code == 200, answer.text
    churn: dict[str, object] = answer.json()["churn"]
    return churn


def _wait_until(
    what: str | Callable[[], str],
    done: Callable[[], bool],
    *,
    deadline_s: float = LOADED_DEADLINE_S,
    project: Path | None = None,
) -> None:
    """Poll ``done`` until it holds; fail naming ``what`` (and the servers' output) after it."""
    deadline = time.monotonic() + deadline_s
    while not done():
        if time.monotonic() > deadline:
            logs = sorted(project.glob("server-*.log")) if project is not None else []
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in logs)
            text = what() if callable(what) else what
            pytest.fail(f"{text} did not happen within {deadline_s:.0f} s\n{tails}")
        time.sleep(0.05)


def _move(project: Path, url: str, **versions: int) -> None:
    """Point aliases at versions in the registry and wait until the server has loaded them."""
    with Workspace.open(project) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        current = registry.aliases("churn")
        for alias, version in versions.items():
            if current.get(alias) != version:
                moved = registry.promote(
                    "churn", version, alias=alias, force=True, reason="test", actor=OPERATOR
                )
                assert moved.moved, moved
        held = registry.aliases("churn")

    served: dict[str, object] = {}

    def loaded() -> bool:
        served.update(_served(url))
        versions_now = served["versions"]
        assert isinstance(versions_now, dict)
        return all(versions_now.get(alias) == v for alias, v in versions.items())

    _wait_until(
        lambda: f"the server loading {versions} (registry: {held}; served: {served})",
        loaded,
        project=project,
    )


@pytest.fixture
def ab_server(project: Path, server: str) -> str:
    """The module's server with production=1, challenger=2 loaded and the A/B policy on."""
    # The policy first: /admin/models lists only the aliases the current policy routes to (a
    # test that left no policy would hide the challenger's version from _move).
    _policy(server, AB)
    _move(project, server, production=1, challenger=2)
    return server


def test_ab_split_is_70_30_and_sticky_per_user(ab_server: str) -> None:
    with httpx.Client(base_url=ab_server, timeout=10) as client:
        # 2,000 users split 70/30 within ±5%; a user always sees one variant.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _predict(client, f"user-{i}"), range(2000)))
        assert {a.status_code for a in answers} == {200}
        variants = [a.json()["variant"] for a in answers]
        assert abs(variants.count("challenger") / 2000 - 0.3) <= 0.05
        for i in range(100):
            again = _predict(client, f"user-{i}").json()["variant"]
            assert again == variants[i]


def test_a_failing_canary_rolls_back_by_itself(project: Path, ab_server: str) -> None:
    # The challenger needs a column the requests lack, so every request it gets fails.
    _move(project, ab_server, challenger=3)
    _policy(ab_server, {"type": "canary", "percent": 50, "min_requests": 5, "max_error_rate": 0.2})
    with httpx.Client(base_url=ab_server, timeout=10) as client:
        statuses = [_predict(client, f"canary-{i}").status_code for i in range(200)]
    canary = _served(ab_server)["canary"]
    assert isinstance(canary, dict)
    assert canary["status"] == "rolled_back"
    assert statuses[-100:] == [200] * 100  # after the rollback, only the champion answers


def test_shadow_answers_with_the_champion(ab_server: str) -> None:
    _policy(ab_server, {"type": "shadow"})
    with httpx.Client(base_url=ab_server, timeout=10) as client:
        for i in range(20):
            answer = _predict(client, f"s-{i}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["variant"] == "production"
    # That both outputs are logged is checked where the log is complete: after a stop, below.


def test_hot_swap_under_a_steady_stream_fails_nothing(project: Path, ab_server: str) -> None:
    _policy(ab_server, None)
    results: list[tuple[int, int]] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=ab_server, timeout=10, headers=_bearer()) as c:
            while not stop.is_set():
                r = _predict(c, "steady")
                results.append(
                    (r.status_code, r.json().get("version", -1) if r.status_code == 200 else -1)
                )

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        _wait_until("20 answers from version 1", lambda: len(results) >= 20)
        _move(project, ab_server, production=4)
        _wait_until("20 answers from version 4", lambda: sum(v == 4 for _, v in results[:]) >= 20)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {s for s, _ in results} == {200}
    assert results[0][1] == 1
    assert results[-1][1] == 4


def test_sigterm_under_load_answers_and_logs_every_accepted_request(project: Path) -> None:
    # A server of its own, started on production=1, challenger=2, since this test stops it.
    with Workspace.open(project) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        for alias, version in (("production", 1), ("challenger", 2)):
            if registry.aliases("churn").get(alias) != version:
                registry.promote(
                    "churn", version, alias=alias, force=True, reason="test", actor=OPERATOR
                )
    url, process = _start(project)
    try:
        _wait_until(
            "the new server loading production=1, challenger=2",
            lambda: _served(url)["versions"] == {"production": 1, "challenger": 2},
        )
        _policy(url, {"type": "shadow"})
        shadow_ids = []
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(20):
                shadow_ids.append(_predict(client, f"s-{i}").json()["request_id"])
        _policy(url, None)

        answered: list[str] = []
        failures: list[str] = []

        def load(k: int) -> None:
            with httpx.Client(base_url=url, timeout=10, headers=_bearer()) as c:
                for i in range(400):
                    try:
                        r = _predict(c, f"term-{k}-{i}")
                    except httpx.TransportError:
                        return  # not accepted: the server had stopped listening
                    if r.status_code == 200:
                        answered.append(r.json()["request_id"])
                    else:
                        failures.append(r.text)

        threads = [threading.Thread(target=load, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        _wait_until("50 answers under load", lambda: len(answered) >= 50)
        process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        # uvicorn re-raises the signal after its graceful shutdown, as process managers expect
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        _stop(process)
    assert not failures
    log = read_prediction_log(project / ".shipyard" / "predictions").collect()
    logged = set(log["request_id"].to_list())
    assert set(answered) <= logged
    shadow = log.filter(pl.col("request_id").is_in(shadow_ids))
    assert set(shadow["variant"].to_list()) == {"production", "shadow:challenger"}
    assert shadow.height == 2 * len(shadow_ids)
