"""The MLflow API's edges over real HTTP: tokens and roles, unknown routes, malformed bodies.

Whatever a client sends, the answer is MLflow's error shape ``{"error_code", "message"}``
with a 4xx, never a 500 (issue 22); every route is in the one permission table, and a role
that lacks a route's action is refused before the handler runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import APIRoute

from shipyard.security.permissions import MLFLOW_HTTP_ROUTES, MLFLOW_ROUTES, PUBLIC, route_action
from shipyard.security.roles import Role
from tests.corpus import BAD_BODIES, BAD_NAMES
from tests.mlflow_server import TrackingServer, tracking_server

if TYPE_CHECKING:
    from collections.abc import Iterator

API = "/api/2.0/mlflow"
_NO_REQUIRED_FIELDS = {
    "/experiments/search",
    "/runs/search",
    "/logged-models/search",
    "/runs/create",  # in MLflow's default experiment, as MLflow does
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    with tracking_server(tmp_path_factory.mktemp("mlflow-edges")) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: TrackingServer) -> Iterator[httpx.Client]:
    token = server.token(Role.ADMIN, name="edge-admin")
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def run_id(http: httpx.Client) -> str:
    answer = http.post(f"{API}/runs/create", json={"experiment_id": "0"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["run"]["info"]["run_id"])


def _mlflow_error(answer: httpx.Response, *statuses: int) -> str:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["message"]
    return str(body["error_code"])


def test_every_route_is_in_the_permission_table(server: TrackingServer) -> None:
    from shipyard.serve.mlflow.app import create_tracking_app

    app = create_tracking_app(server.workspace, auth=None)  # type: ignore[arg-type]
    routes = [(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in sorted(r.methods)]
    assert [r for r in routes if route_action(*r) is None] == []
    public = {r for r in routes if route_action(*r) == PUBLIC}
    assert set(routes) - public == set(MLFLOW_HTTP_ROUTES)
    assert {p for _, p in public} == {"/v2/health/live", "/v2/health/ready"}


def test_tokens_and_roles_are_enforced_in_mlflow_shape(server: TrackingServer, run_id: str) -> None:
    body = {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        answer = anonymous.post(f"{API}/runs/log-metric", json=body)
        assert _mlflow_error(answer, 401) == "UNAUTHENTICATED"
        assert anonymous.get("/v2/health/ready").status_code == 200
    viewer = {"authorization": f"Bearer {server.token(Role.VIEWER)}"}
    scientist = {"authorization": f"Bearer {server.token(Role.DATA_SCIENTIST)}"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        answer = client.get(f"{API}/runs/get", params={"run_id": run_id}, headers=viewer)
        assert answer.status_code == 200
        answer = client.post(f"{API}/runs/log-metric", json=body, headers=viewer)
        assert _mlflow_error(answer, 403) == "PERMISSION_DENIED"
        assert client.post(f"{API}/runs/log-metric", json=body, headers=scientist).is_success
        alias = {"name": "m", "alias": "champion", "version": "1"}
        answer = client.post(f"{API}/registered-models/alias", json=alias, headers=scientist)
        assert _mlflow_error(answer, 403) == "PERMISSION_DENIED"


def test_reads_see_the_writes_before_them(http: httpx.Client, run_id: str) -> None:
    for step in range(3):
        metric = {"run_id": run_id, "key": "ryw", "value": step, "timestamp": "5", "step": step}
        assert http.post(f"{API}/runs/log-metric", json=metric).is_success
        history = http.get(
            f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "ryw"}
        )
        assert [m["step"] for m in history.json()["metrics"]] == list(range(step + 1))
    run = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]
    assert {"key": "ryw", "value": 2.0, "timestamp": 5, "step": 2} in run["data"]["metrics"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{API}/nothing/here"),
        ("POST", f"{API}/runs/no-such-verb"),
        ("GET", "/api/3.0/mlflow/traces/search"),
        ("POST", "/ajax-api/2.0/mlflow/gateway/endpoints/create"),
        ("DELETE", f"{API}/runs/get"),
        ("PATCH", f"{API}/registered-models/update"),
        ("POST", "/api/2.0/mlflow-artifacts/mpu/create/x"),
    ],
)
def test_unknown_routes_answer_endpoint_not_found(
    http: httpx.Client, method: str, path: str
) -> None:
    assert _mlflow_error(http.request(method, path), 404) == "ENDPOINT_NOT_FOUND"


def test_unsupported_routes_say_so(http: httpx.Client, run_id: str) -> None:
    answer = http.post(f"{API}/runs/delete", json={"run_id": run_id})
    assert _mlflow_error(answer, 400) == "NOT_IMPLEMENTED"
    answer = http.post(f"{API}/experiments/delete", json={"experiment_id": "0"})
    assert _mlflow_error(answer, 400) == "NOT_IMPLEMENTED"


@pytest.mark.parametrize(("kind", "raw"), BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_malformed_bodies_never_500(http: httpx.Client, kind: str, raw: bytes) -> None:
    headers = {"content-type": kind} if kind else {}
    for method, path in MLFLOW_ROUTES:
        if method == "GET":
            continue
        answer = http.request(method, f"{API}{path}", content=raw, headers=headers)
        if answer.is_success:  # unknown fields only: a search with no criteria, a bare run
            assert path in _NO_REQUIRED_FIELDS, (path, answer.text)
            assert raw.startswith(b"{"), (path, answer.text)
            continue
        _mlflow_error(answer, 400, 404, 409, 413, 415)


def test_malformed_query_parameters_never_500(http: httpx.Client) -> None:
    shapes = [
        {},
        {"run_id": "x" * 5000},
        {"run_id": ["a", "b"], "experiment_id": "../../x", "name": "\x00", "version": "one"},
        {"max_results": "-5", "page_token": "!!!", "filter": "name = ", "metric_key": ""},
        {"filter": "run_id = 'a' OR x", "alias": "../x", "experiment_name": "%00"},
    ]
    for method, path in MLFLOW_ROUTES:
        if method != "GET":
            continue
        for params in shapes:
            answer = http.get(f"{API}{path}", params=params)
            if answer.is_success:
                assert path.endswith("/search"), (path, params)
                assert "filter" not in params, (path, params)
                continue
            _mlflow_error(answer, 400, 404)


def test_bad_artifact_names_are_refused(http: httpx.Client, run_id: str) -> None:
    base = f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts"
    for name in BAD_NAMES:
        # Every character escaped ("." too, or the client would resolve "./" and "../"
        # itself), so the server's path is the name exactly as listed.
        sent = quote(name, safe="/").replace(".", "%2E")
        answer = http.put(f"{base}/{sent}", content=b"x")
        assert answer.status_code in (400, 404), (name, answer.status_code)
    assert http.put(f"{base}/ok/name.txt", content=b"fine").is_success
    assert http.get(f"{base}/ok/name.txt").content == b"fine"
    for path in ("", "x", "0/abc/artifacts", f"0/{run_id}/other/x", f"0/{run_id}/artifacts/../x"):
        answer = http.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": path})
        assert answer.status_code in (200, 400, 404), (path, answer.text)
        if answer.status_code != 200:
            _mlflow_error(answer, 400, 404)


def test_params_stay_write_once_as_in_mlflow(http: httpx.Client, run_id: str) -> None:
    param = {"run_id": run_id, "key": "lr", "value": "0.1"}
    assert http.post(f"{API}/runs/log-parameter", json=param).is_success
    assert http.post(f"{API}/runs/log-parameter", json=param).is_success  # same value: no-op
    answer = http.post(f"{API}/runs/log-parameter", json={**param, "value": "0.2"})
    assert _mlflow_error(answer, 400) == "INVALID_PARAMETER_VALUE"


def test_an_ended_run_takes_no_more_metrics(http: httpx.Client) -> None:
    run = http.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    ended = {"run_id": run["run_id"], "status": "FINISHED", "end_time": "7"}
    info = http.post(f"{API}/runs/update", json=ended).json()["run_info"]
    assert (info["status"], info["end_time"]) == ("FINISHED", 7)
    metric = {"run_id": run["run_id"], "key": "m", "value": 1, "timestamp": 1}
    answer = http.post(f"{API}/runs/log-metric", json=metric)
    assert _mlflow_error(answer, 409) == "INVALID_STATE"


def test_registry_text_limits_are_400s(http: httpx.Client) -> None:
    long = {"name": "limits", "description": "d" * 2001}
    answer = http.post(f"{API}/registered-models/create", json=long)
    assert _mlflow_error(answer, 400) == "INVALID_PARAMETER_VALUE"
    assert http.post(f"{API}/registered-models/create", json={"name": "limits"}).is_success
    answer = http.post(f"{API}/registered-models/create", json={"name": "limits"})
    assert _mlflow_error(answer, 400) == "RESOURCE_ALREADY_EXISTS"
    version = {"name": "limits", "source": "runs:/x/model", "run_id": "r" * 33}
    answer = http.post(f"{API}/model-versions/create", json=version)
    assert _mlflow_error(answer, 400) == "INVALID_PARAMETER_VALUE"
    alias = {"name": "limits", "alias": "champion", "version": "7"}
    answer = http.post(f"{API}/registered-models/alias", json=alias)
    assert _mlflow_error(answer, 404) == "RESOURCE_DOES_NOT_EXIST"
