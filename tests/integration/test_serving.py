"""Real servers (`shipyard serve`, uvicorn, a subprocess) on a real registry, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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

pytestmark = pytest.mark.slow

SHIPYARD = Path(sys.executable).with_name("shipyard")
TOKEN = ""  # an admin token of the served workspace, minted by the server fixture
ROW = {"tenure": 12.0, "charges": 70.0, "plan": "basic"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    with Workspace.open(tmp_path) as workspace:
        registry = ModelRegistry(workspace)
        for name, features in (
            ("v1", None),
            ("v2", ["tenure", "plan"]),
            ("v3", ["tenure", "charges", "plan", "region"]),
            ("v4", ["tenure", "charges", "plan"]),  # v1's contract, retrained: the hot swap
        ):
            path = bundle_file(
                workspace,
                tmp_path,
                features=features,
                name=name,
                extra_column="region" if name == "v3" else None,
            )
            registry.register("churn", path, actor=OPERATOR)
        registry.promote("churn", 1, force=True, reason="start", actor=OPERATOR)
        registry.promote("churn", 2, alias="challenger", force=True, reason="start", actor=OPERATOR)
    (tmp_path / "shipyard.yaml").write_text(
        """
deploy:
  poll_interval_s: 0.2
  models:
    churn:
      model: churn
      policy: {type: ab, weights: {production: 0.7, challenger: 0.3}, sticky_header: x-user}
"""
    )
    return tmp_path


@pytest.fixture
def server(project: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    global TOKEN  # read by the helpers below
    port = _port()
    with Workspace.open(project) as workspace:
        accounts = Accounts(security_store(workspace.settings, workspace.store.engine))
        me = local_identity("project")
        accounts.ensure_user(me, "ci")
        accounts.grant(me, "ci", "admin", "project")
        TOKEN = accounts.create_token(me, "ci").text
    env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(project)}
    process = subprocess.Popen(
        [str(SHIPYARD), "serve", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"server did not get ready: {process.stdout.read() if process.stdout else ''}")
    yield url, process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


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


def test_ab_split_sticky_canary_shadow_hot_swap_and_graceful_stop(project: Path, server) -> None:
    url, process = server
    with httpx.Client(base_url=url, timeout=10) as client:
        # A/B: 2,000 users split 70/30 within ±5%; a user always sees one variant.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _predict(client, f"user-{i}"), range(2000)))
        assert {a.status_code for a in answers} == {200}
        variants = [a.json()["variant"] for a in answers]
        assert abs(variants.count("challenger") / 2000 - 0.3) <= 0.05
        for i in range(100):
            again = _predict(client, f"user-{i}").json()["variant"]
            assert again == variants[i]

        # Canary whose challenger fails (it needs a column the requests lack): rolls back by itself.
        moved = httpx.Client(base_url=url)
        with Workspace.open(project) as workspace:
            ModelRegistry(workspace).promote(
                "churn",
                3,
                alias="challenger",
                force=True,
                reason="broken on purpose",
                actor=OPERATOR,
            )
        time.sleep(1.0)  # the watcher swaps the challenger in
        _policy(url, {"type": "canary", "percent": 50, "min_requests": 5, "max_error_rate": 0.2})
        statuses = [_predict(client, f"canary-{i}").status_code for i in range(200)]
        state = client.get("/admin/models", headers={"authorization": f"Bearer {TOKEN}"}).json()[
            "churn"
        ]["canary"]
        assert state["status"] == "rolled_back"
        assert statuses[-100:] == [200] * 100  # after the rollback, only the champion answers
        moved.close()

        # Shadow: the champion answers, both outputs are logged side by side.
        with Workspace.open(project) as workspace:
            ModelRegistry(workspace).promote(
                "churn", 2, alias="challenger", force=True, reason="back", actor=OPERATOR
            )
        time.sleep(1.0)
        _policy(url, {"type": "shadow"})
        shadow_ids = []
        for i in range(20):
            body = _predict(client, f"s-{i}").json()
            assert body["variant"] == "production"
            shadow_ids.append(body["request_id"])

        # Hot swap: move production to version 2 under a steady stream; nothing fails.
        _policy(url, None)
        results: list[tuple[int, int]] = []
        stop = threading.Event()

        def stream() -> None:
            with httpx.Client(base_url=url, timeout=10, headers=_bearer()) as c:
                while not stop.is_set():
                    r = _predict(c, "steady")
                    results.append(
                        (r.status_code, r.json().get("version", -1) if r.status_code == 200 else -1)
                    )

        threads = [threading.Thread(target=stream) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        with Workspace.open(project) as workspace:
            ModelRegistry(workspace).promote(
                "churn", 4, force=True, reason="swap under load", actor=OPERATOR
            )
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        assert {s for s, _ in results} == {200}
        assert results[0][1] == 1
        assert results[-1][1] == 4

    # SIGTERM under load: every accepted request is answered, every answer is in the log.
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
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    # uvicorn re-raises the signal after its graceful shutdown, as process managers expect
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert not failures
    log = read_prediction_log(project / ".shipyard" / "predictions").collect()
    logged = set(log["request_id"].to_list())
    assert set(answered) <= logged
    shadow = log.filter(pl.col("request_id").is_in(shadow_ids))
    assert set(shadow["variant"].to_list()) == {"production", "shadow:challenger"}
    assert shadow.height == 2 * len(shadow_ids)
