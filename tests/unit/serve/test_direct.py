"""The direct ASGI path answers exactly as the full app does, and declines what it must not take.

``serve.direct`` answers ``POST /models/{name}/predict`` before FastAPI's stack (issue 17). It is
a shortcut, not a second implementation: every body of the bad-input corpus must get the same
status and the same bytes as through the full app, the prediction log must get the same rows,
and auth (401 without a token, 403 for a role that may not predict) must hold on it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient

from shipyard.registry.bundle import Bundle, read_bundle
from shipyard.registry.packaging import write_training_bundle
from shipyard.security.roles import Role
from shipyard.serve.app import ServingApp, create_app
from shipyard.serve.prediction_log import PredictionLog, read_prediction_log
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train
from tests.corpus import BAD_NAMES
from tests.unit.serve.conftest import MemorySource
from tests.unit.serve.tokens import ServerTokens

SPEC = DeploySpec(models={"num": {"model": "num"}}, poll_interval_s=3600)
JSON = {"content-type": "application/json"}

# Raw bodies: well formed, shapes the full contract must judge, and bodies refused before it.
BODIES: list[bytes] = [
    b'[{"x": 1.5, "n": 3}]',
    b'[{"n": -2, "x": 0}, {"x": 1e300, "n": 9007199254740992}]',
    b'{"columns": {"x": [1.0, 2.0], "n": [1, 2]}}',
    b'{"records": [{"x": 1.0, "n": 1}]}',
    b'[{"x": 1.0}]',
    b'[{"x": 1.0, "n": 1, "extra": 2}]',
    b'[{"x": null, "n": 1}]',
    b'[{"x": "1.0", "n": 1}]',
    b'[{"x": true, "n": 1}]',
    b'[{"x": [1.0], "n": 1}]',
    b'[{"x": 1' + b"0" * 400 + b', "n": 1}]',
    b'[{"x": 1.0, "n": 1}, "not an object"]',
    b"[]",
    b"{}",
    b'"text"',
    b'[{"x": NaN, "n": 1}]',
    b"[{",
    b"",
    b"\xff\xfe",
    b"[" * 10_000 + b"]" * 10_000,
    b'[{"x": 1.0, "n": 1}]' + b" " * 200_000,  # over the body limit
]


def _numeric_bundle(tmp: Path) -> Bundle:
    rng = np.random.default_rng(0)
    x, n = rng.normal(size=300), rng.integers(0, 10, 300)
    y = (x + 0.2 * n + rng.normal(size=300) > 1).astype(int)
    spec = TrainSpec(
        target="y",
        estimators=[EstimatorSpec(name="logistic")],
        tuning={"trials": 1},
        cv={"folds": 2},
        bootstrap_resamples=10,
        explain=False,
    )
    result = train(spec, pl.DataFrame({"x": x, "n": n, "y": y}))
    path = tmp / "num.shipyard"
    sha = write_training_bundle(
        result,
        path,
        name="num",
        created_at=dt.datetime.now(dt.UTC),
        run_id=None,
        dataset_ids={},
        code_version=None,
    )
    return read_bundle(path, expected_sha256=sha)


@pytest.fixture(scope="module")
def numeric(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return _numeric_bundle(tmp_path_factory.mktemp("numeric"))


class _Counting:
    """Wraps the app's direct path to count the requests it answered itself."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.answered = inner, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> bool:
        taken = bool(await self.inner(scope, receive, send))
        self.answered += taken
        return taken


def _app(numeric: Bundle, tokens: ServerTokens, log: Path | None) -> tuple[ServingApp, _Counting]:
    source = MemorySource()
    source.bundles[("num", 1)] = numeric
    source.aliases[("num", "production")] = 1
    prediction_log = None if log is None else PredictionLog(log)
    app = create_app(
        Runtime(SPEC, source),
        auth=tokens.auth,
        prediction_log=prediction_log,
        max_body_bytes=100_000,
    )
    assert isinstance(app, ServingApp)
    counting = _Counting(app.direct)
    app.direct = counting  # type: ignore[assignment]
    return app, counting


def _both(client: TestClient, app: ServingApp, path: str, body: bytes, headers: dict[str, str]):
    """The response of the direct path and of the full app, for the same request."""
    direct = client.post(path, content=body, headers=headers)
    app._direct_on = False
    try:
        full = client.post(path, content=body, headers=headers)
    finally:
        app._direct_on = True
    return direct, full


def test_direct_answers_are_the_full_apps_byte_for_byte(numeric, tmp_path):
    tokens = ServerTokens(tmp_path / "security")
    app, counting = _app(numeric, tokens, None)
    auth = tokens.headers(Role.VIEWER)
    with TestClient(app) as client:
        assert client.post(
            "/models/num/predict", json=[{"x": 1.0, "n": 1}], headers=auth
        ).is_success
        for i, body in enumerate(BODIES):
            headers = {**auth, **JSON, "x-request-id": f"r{i}"}
            direct, full = _both(client, app, "/models/num/predict", body, headers)
            assert (direct.status_code, direct.content) == (full.status_code, full.content), body[
                :60
            ]
            assert direct.headers.get("content-type") == full.headers.get("content-type")
    assert counting.answered >= len(BODIES) - 1  # all but the declared-too-long body


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer not-a-token"}, 401),
        ({"authorization": "Basic dXNlcjpwYXNz"}, 401),
    ],
)
def test_no_valid_token_is_refused_on_the_direct_path(numeric, tmp_path, headers, status):
    app, _ = _app(numeric, ServerTokens(tmp_path / "security"), None)
    with TestClient(app) as client:
        answer = client.post("/models/num/predict", content=BODIES[0], headers={**headers, **JSON})
    assert answer.status_code == status
    assert answer.headers["www-authenticate"] == 'Bearer realm="shipyard"'


def test_a_role_that_may_not_predict_is_refused_even_when_cached(numeric, tmp_path):
    tokens = ServerTokens(tmp_path / "security")
    app, counting = _app(numeric, tokens, None)
    allowed, denied = tokens.headers(Role.VIEWER), tokens.headers(None)
    with TestClient(app) as client:
        for _ in range(3):  # the first request caches each identity; later ones hit the cache
            assert (
                client.post(
                    "/models/num/predict", content=BODIES[0], headers={**denied, **JSON}
                ).status_code
                == 403
            )
            assert (
                client.post(
                    "/models/num/predict", content=BODIES[0], headers={**allowed, **JSON}
                ).status_code
                == 200
            )
    assert counting.answered == 2  # the allowed token's cached requests, nothing of the denied one


@pytest.mark.parametrize("name", BAD_NAMES[:12])
def test_odd_model_names_get_the_full_apps_answer(numeric, tmp_path, name):
    tokens = ServerTokens(tmp_path / "security")
    app, _ = _app(numeric, tokens, None)
    headers = {**tokens.headers(Role.VIEWER), **JSON}
    path = f"/models/{name}/predict"
    with TestClient(app) as client:
        client.post("/models/num/predict", content=BODIES[0], headers=headers)  # cache the token
        direct, full = _both(client, app, path, BODIES[0], headers)
    assert (direct.status_code, direct.content) == (full.status_code, full.content)


def test_the_prediction_log_gets_the_same_rows_either_way(numeric, tmp_path):
    tokens = ServerTokens(tmp_path / "security")
    logs = {}
    for side in ("direct", "full"):
        app, counting = _app(numeric, tokens, tmp_path / side)
        headers = {**tokens.headers(Role.VIEWER), **JSON}
        with TestClient(app) as client:
            client.post("/models/num/predict", content=BODIES[0], headers=headers)  # cache
            app._direct_on = side == "direct"
            for i, body in enumerate(BODIES[:4]):
                answer = client.post(
                    "/models/num/predict",
                    content=body,
                    headers={**headers, "x-request-id": f"r{i}"},
                )
                assert answer.status_code == 200
        assert (counting.answered >= 4) == (side == "direct")
        frame = read_prediction_log(tmp_path / side).collect().sort("request_id")
        logs[side] = frame.filter(pl.col("request_id").str.starts_with("r")).drop(
            "ts_ms", "latency_ms"
        )
    assert logs["direct"].height == 4
    assert logs["direct"].to_dicts() == logs["full"].to_dicts()
    first = logs["direct"].row(0, named=True)
    assert orjson.loads(first["inputs_json"]) == {"x": [1.5], "n": [3]}
    assert first["anomaly_score"] is not None


RECORDS: list[list[dict[str, Any]]] = [
    [{"x": 1.5, "n": 3}],
    [{"n": -2, "x": 0}],
    [{"x": 1e300, "n": 2**53}],
    [{"x": -0.0, "n": 7}],
    [{"x": 1.5, "n": 3}, {"x": 2.0, "n": 1}],
]


def test_decoded_rows_are_logged_as_their_columns_would_be(numeric):
    from shipyard.monitor.anomaly import scorer_for
    from shipyard.serve.contract import RequestContract, records_to_columns
    from shipyard.serve.logging_hooks import _Answered

    contract = RequestContract(numeric.contract)
    decoded = [contract.plain_records(records) for records in RECORDS]
    for records, inputs in zip(RECORDS, decoded, strict=True):
        assert inputs is not None
        answered = _Answered("num", None, "p", None, None, "r", 1.0, 0, records, inputs)  # type: ignore[arg-type]
        assert answered.inputs_json() == orjson.dumps(records_to_columns(records)).decode()
    scorer = scorer_for(numeric)
    assert scorer is not None
    order = decoded[0].number_names
    by_numbers = scorer.score_numbers([inputs.numbers for inputs in decoded], order)
    assert by_numbers == scorer.score_requests([records_to_columns(r) for r in RECORDS])


def test_feature_names_json_would_escape_take_the_general_path():
    from shipyard.registry.input_contract import ModelInput
    from shipyard.serve.logging_hooks import _Answered

    for names in (("a:b", "c"), ('a"b', "c"), ("a,b", "c"), ("a\\b", "c"), ("a\nb", "c")):
        records = [{names[0]: 1.0, names[1]: 2}]
        inputs = ModelInput(np.array([[1.0, 2.0]]), np.empty((1, 0), dtype=object), names, ())
        answered = _Answered("m", None, "p", None, None, "r", 1.0, 0, records, inputs)  # type: ignore[arg-type]
        assert answered.inputs_json() == orjson.dumps({names[0]: [1.0], names[1]: [2]}).decode()


def test_metrics_count_every_answer_when_scraped(numeric, tmp_path):
    tokens = ServerTokens(tmp_path / "security")
    app, counting = _app(numeric, tokens, None)
    headers = {**tokens.headers(Role.ADMIN), **JSON}
    with TestClient(app) as client:
        for _ in range(5):
            assert client.post("/models/num/predict", content=BODIES[1], headers=headers).is_success
        text = client.get("/metrics", headers=headers).text
        more = client.post("/models/num/predict", content=BODIES[0], headers=headers)
        assert more.is_success
        again = client.get("/metrics", headers=headers).text
    assert counting.answered >= 5
    assert 'shipyard_requests_total{model="num",status="ok",variant="production"} 5.0' in text
    assert 'shipyard_rows_total{model="num",variant="production"} 10.0' in text
    assert 'shipyard_request_seconds_count{model="num",variant="production"} 5.0' in text
    assert (
        'shipyard_version_requests_total{model="num",variant="production",version="1"} 6.0' in again
    )
