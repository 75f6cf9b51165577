"""The HTTP layer: every endpoint, every bad input and its status, no 500s."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from shipyard.serve.app import create_app
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import ServerTokens

RECORD = {"tenure": 12.0, "charges": 70.5, "plan": "basic"}


@pytest.fixture
def client(source, tmp_path):
    spec = DeploySpec(
        models={"churn": {"model": "churn"}}, max_body_bytes=5_000, poll_interval_s=60
    )
    tokens = ServerTokens(tmp_path / "security")
    app = create_app(Runtime(spec, source), auth=tokens.auth)
    with TestClient(app, raise_server_exceptions=False, headers=tokens.headers()) as c:
        yield c


def test_health_and_metadata(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/churn").json()
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == ["tenure", "charges", "plan"]
    assert sorted(next(i for i in meta["inputs"] if i["name"] == "plan")["categories"]) == [
        "basic",
        "plus",
        "pro",
    ]
    assert client.get("/v2/models/nope").status_code == 404


def test_plain_predict_records_and_columns_agree_with_the_bundle(client, bundles):
    import polars as pl

    by_records = client.post("/models/churn/predict", json=[RECORD, {**RECORD, "plan": "pro"}])
    assert by_records.status_code == 200, by_records.text
    body = by_records.json()
    assert body["version"] == 1
    assert body["variant"] == "production"
    assert len(body["request_id"]) >= 16
    expected = bundles[1].predict(pl.DataFrame([RECORD, {**RECORD, "plan": "pro"}]))
    assert body["predictions"] == expected.labels.tolist()
    assert body["probabilities"][0]["1"] == pytest.approx(expected.proba[0][1])
    columns = {k: [v] for k, v in RECORD.items()}
    assert (
        client.post("/models/churn/predict", json={"columns": columns}).json()["predictions"]
        == body["predictions"][:1]
    )


def test_v2_infer(client):
    body = {
        "id": "req-1",
        "inputs": [
            {"name": "tenure", "shape": [2], "datatype": "FP64", "data": [1.0, 50.0]},
            {"name": "charges", "shape": [2], "datatype": "FP64", "data": [80.0, 20.0]},
            {"name": "plan", "shape": [2, 1], "datatype": "BYTES", "data": ["basic", "pro"]},
        ],
    }
    answer = client.post("/v2/models/churn/infer", json=body)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["id"] == "req-1"
    assert out["model_version"] == "1"
    predict, proba = out["outputs"]
    assert predict["shape"] == [2]
    assert proba["shape"] == [2, 2]
    assert sum(proba["data"][:2]) == pytest.approx(1.0)
    # The same answers, of the same types, as the JSON endpoint (integer classes stay integers).
    records = [
        {"tenure": 1.0, "charges": 80.0, "plan": "basic"},
        {"tenure": 50.0, "charges": 20.0, "plan": "pro"},
    ]
    plain = client.post("/models/churn/predict", json=records).json()["predictions"]
    assert predict["data"] == plain
    assert predict["datatype"] == "INT64"
    assert all(type(v) is int for v in predict["data"])


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ([{"tenure": 1.0, "charges": 2.0}], 422, "plan"),  # missing column
        ([{**RECORD, "extra": 1}], 422, "extra"),  # unknown column
        ([{**RECORD, "tenure": "ten"}], 422, "tenure"),  # wrong type
        ([{**RECORD, "tenure": True}], 422, "tenure"),  # a bool is not a number
        ([{**RECORD, "plan": "platinum"}], 422, "plan"),  # unseen category
        ([{**RECORD, "plan": 3}], 422, "plan"),
        ({"columns": {"tenure": [1.0], "charges": [1.0, 2.0], "plan": ["basic"]}}, 422, "inputs"),
        ({"columns": {"tenure": 1.0, "charges": [1.0], "plan": ["basic"]}}, 422, "inputs"),
        ([], 422, "inputs"),
        ([1, 2], 422, "inputs"),
        ("text", 422, "body"),
        ({"records": "nope"}, 422, "records"),
    ],
)
def test_bad_inputs_get_422_naming_the_field(client, body, status, field):
    answer = client.post("/models/churn/predict", json=body)
    assert answer.status_code == status, answer.text
    assert field in {d["field"] for d in answer.json()["detail"]}


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"columns": ', {"content-type": "application/json"}, 400),
        (
            b'[{"tenure": NaN, "charges": 1, "plan": "basic"}]',
            {"content-type": "application/json"},
            400,
        ),
        (
            b'[{"tenure": Infinity, "charges": 1, "plan": "basic"}]',
            {"content-type": "application/json"},
            400,
        ),
        (orjson.dumps([RECORD]), {"content-type": "text/plain"}, 415),
        (b"\x80\x04\x95", {"content-type": "application/python-pickle"}, 415),
        (b"[" + b"1," * 4000 + b"1]", {"content-type": "application/json"}, 413),
        (b"[" * 10_000 + b"]" * 10_000, {"content-type": "application/json"}, 413),
    ],
)
def test_malformed_oversized_and_foreign_bodies(client, content, headers, status):
    answer = client.post("/models/churn/predict", content=content, headers=headers)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()


def test_deep_nesting_within_the_size_limit_is_a_clean_error(client):
    answer = client.post(
        "/models/churn/predict",
        content=b"[" * 1000 + b"]" * 1000,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code in (400, 422)


def test_v2_shape_mismatch_and_missing_inputs(client):
    bad = {"inputs": [{"name": "tenure", "shape": [3], "datatype": "FP64", "data": [1.0]}]}
    assert client.post("/v2/models/churn/infer", json=bad).status_code == 422
    assert client.post("/v2/models/churn/infer", json={"inputs": []}).status_code == 422
    assert client.post("/v2/models/nope/infer", json=bad).status_code == 404


def test_metrics_count_answered_requests(client):
    client.post("/models/churn/predict", json=[RECORD])
    text = client.get("/metrics").text
    assert 'shipyard_requests_total{model="churn",status="ok",variant="production"}' in text
    assert "shipyard_request_seconds_bucket" in text


def test_admin_needs_a_token(client):
    assert client.get("/admin/models", headers={"authorization": ""}).status_code == 401
    assert client.get("/admin/models", headers={"authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/admin/models")  # the client's admin token
    assert ok.json()["churn"]["versions"] == {"production": 1}


def test_openapi_lists_the_real_routes(client):
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/infer",
        "/models/{name}/predict",
        "/metrics",
    } <= paths


def test_a_serving_app_collects_garbage_less_often_and_restores_the_thresholds(source, tmp_path):
    """While serving, the young generation is collected at the server's threshold (issue 17)."""
    import gc

    from shipyard.serve.app import SERVER_GC_THRESHOLD

    before = gc.get_threshold()
    assert before[0] != SERVER_GC_THRESHOLD  # the test could fail
    spec = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)
    tokens = ServerTokens(tmp_path / "security")
    app = create_app(Runtime(spec, source), auth=tokens.auth)
    with TestClient(app, headers=tokens.headers()) as c:
        assert c.get("/v2/health/ready").status_code == 200
        assert gc.get_threshold() == (SERVER_GC_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before
