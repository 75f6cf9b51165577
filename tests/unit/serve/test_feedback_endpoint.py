"""POST /models/{name}/feedback, and the anomaly score every logged answer carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pytest
from fastapi.testclient import TestClient

from shipyard.core.clock import ManualClock
from shipyard.monitor.feedback import FeedbackStore
from shipyard.serve.app import create_app
from shipyard.serve.prediction_log import PredictionLog, read_prediction_log
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import ServerTokens

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RECORD = {"tenure": 12.0, "charges": 70.5, "plan": "basic"}


def _spec(max_body_bytes: int = 5_000) -> DeploySpec:
    return DeploySpec(
        models={"churn": {"model": "churn"}}, max_body_bytes=max_body_bytes, poll_interval_s=60
    )


@pytest.fixture
def log(tmp_path: Path) -> PredictionLog:
    return PredictionLog(tmp_path / "predictions", clock=ManualClock(), flush_interval_s=30)


@pytest.fixture
def client(source, log: PredictionLog, tmp_path: Path) -> Iterator[TestClient]:
    tokens = ServerTokens(tmp_path / "security")
    app = create_app(Runtime(_spec(), source), auth=tokens.auth, prediction_log=log)
    with TestClient(app, raise_server_exceptions=False, headers=tokens.headers()) as c:
        yield c


def _predict(client: TestClient, request_id: str, *records: dict[str, object]) -> None:
    answer = client.post(
        "/models/churn/predict",
        json=list(records) or [RECORD],
        headers={"x-request-id": request_id},
    )
    assert answer.status_code == 200, answer.text


def test_labels_join_answers_still_queued_and_unknown_ids_are_kept(
    client: TestClient, log: PredictionLog
) -> None:
    _predict(client, "r1")
    _predict(client, "r2")
    body = [
        {"request_id": "r1", "label": 1},
        {"request_id": "r2", "label": 0},
        {"request_id": "never-seen", "label": 1},
        {"request_id": "r1", "label": 0},  # sent twice: the later one wins
    ]
    answer = client.post("/models/churn/feedback", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "accepted": 3,
        "matched": 2,
        "unmatched": 1,
        "repeated": 1,
        "unmatched_ids": ["never-seen"],
    }
    single = client.post("/models/churn/feedback", json={"request_id": "r2", "label": 1})
    assert single.json()["matched"] == 1
    stored = FeedbackStore.beside(log.root).labels("churn").sort("request_id")
    assert dict(zip(stored["request_id"], stored["label"], strict=True)) == {
        "never-seen": "1",
        "r1": "0",
        "r2": "1",
    }


def test_every_logged_answer_has_an_anomaly_score(client: TestClient, log: PredictionLog) -> None:
    _predict(client, "usual")
    _predict(client, "odd", {**RECORD, "charges": 5_000.0})
    _predict(client, "one-odd-row", RECORD, {**RECORD, "charges": -4_000.0}, RECORD)
    assert log.flush()
    rows = read_prediction_log(log.root).collect()
    scores = dict(zip(rows["request_id"], rows["anomaly_score"], strict=True))
    assert scores["usual"] is not None
    assert scores["usual"] < 3  # an ordinary customer
    assert scores["odd"] > 100  # charges hundreds of robust deviations out
    assert scores["one-odd-row"] > 100  # a request scores as its most unusual row
    assert rows.height == 3


@pytest.mark.parametrize(
    ("content", "headers", "status", "needle"),
    [
        (b"{oops", {}, 400, "not valid JSON"),
        (b'{"request_id": "a", "label": NaN}', {}, 400, "not valid JSON"),
        (b'{"request_id": "a", "label": 1}', {"content-type": "text/plain"}, 415, "content type"),
        (b'{"request_id": "a"}', {}, 422, "missing label"),
        (b'[{"request_id": "a", "label": 1}, 3]', {}, 422, "item 1"),
        (b'{"request_id": "a", "label": 1, "extra": 2}', {}, 422, "unknown field"),
        (b'{"request_id": "a", "label": [1]}', {}, 422, "string, number or boolean"),
        (b"[]", {}, 422, "empty list"),
        (b'"label"', {}, 422, "object or a list"),
        (b"[" + b"[" * 10_000 + b"]" * 10_000 + b"]", {}, 413, "request body over"),
        (b'{"request_id": "' + b"x" * 6_000 + b'", "label": 1}', {}, 413, "request body over"),
    ],
)
def test_bad_bodies_get_a_precise_4xx_and_store_nothing(
    client: TestClient,
    log: PredictionLog,
    content: bytes,
    headers: dict[str, str],
    status: int,
    needle: str,
) -> None:
    answer = client.post(
        "/models/churn/feedback",
        content=content,
        headers={"content-type": "application/json", **headers},
    )
    assert answer.status_code == status, answer.text
    assert needle in answer.text
    assert not (log.root.parent / "feedback").exists()


def test_too_many_labels_and_unknown_models(source, tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions")
    tokens = ServerTokens(tmp_path / "security")
    app = create_app(
        Runtime(_spec(max_body_bytes=2_000_000), source), auth=tokens.auth, prediction_log=log
    )
    with TestClient(app, raise_server_exceptions=False, headers=tokens.headers()) as c:
        many = [{"request_id": str(i), "label": 1} for i in range(10_001)]
        answer = c.post(
            "/models/churn/feedback",
            content=orjson.dumps(many),
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 413
        assert "send them in batches" in answer.text
        missing = c.post("/models/nope/feedback", json={"request_id": "a", "label": 1})
        assert missing.status_code == 404


def test_without_a_prediction_log_feedback_is_off(source, tmp_path: Path) -> None:
    tokens = ServerTokens(tmp_path / "security")
    app = create_app(Runtime(_spec(), source), auth=tokens.auth)
    with TestClient(app, raise_server_exceptions=False, headers=tokens.headers()) as c:
        answer = c.post("/models/churn/feedback", json={"request_id": "a", "label": 1})
        assert answer.status_code == 503
        assert "no prediction log" in answer.text
