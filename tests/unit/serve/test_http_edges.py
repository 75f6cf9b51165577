"""The server's smaller promises (issue 14, item 7) and its one error table (issue 15).

A route's ``ShipyardError`` answers the status ``shipyard.core.error_status`` gives its
category; a body without a Content-Type is refused; the health probes answer HEAD; an optional
Host allow-list turns forged hosts away. All against the real app and a real token store.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shipyard.core.error_status import status_of
from shipyard.core.errors import Conflict, InvalidArgument, Unavailable
from shipyard.security.roles import Role
from shipyard.serve.app import create_app
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import ServerTokens

RECORD = {"tenure": 12.0, "charges": 70.5, "plan": "basic"}
SPEC = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)


@pytest.fixture
def tokens(tmp_path):
    return ServerTokens(tmp_path / "security")


@pytest.fixture
def client(source, tokens):
    app = create_app(Runtime(SPEC, source), auth=tokens.auth)
    with TestClient(app, raise_server_exceptions=False, headers=tokens.headers(Role.ADMIN)) as c:
        yield c


def test_errors_raised_in_routes_answer_the_tables_status(client) -> None:
    # Before issue 15 these three became 500s or were answered by hand-written codes.
    off = client.post("/models/churn/feedback", json={"request_id": "a", "label": 1})
    assert off.status_code == status_of(Unavailable).http == 503, off.text
    assert off.json() == {
        "error": "feedback is off: this server keeps no prediction log",
        "detail": {"code": "unavailable"},
    }
    canary = {"type": "canary", "challenger": "challenger", "percent": 10}
    unloaded = client.put("/admin/models/churn/policy", json=canary)
    assert unloaded.status_code == status_of(Conflict).http == 409, unloaded.text
    assert unloaded.json()["detail"] == {"code": "conflict"}
    invalid = client.put("/admin/models/churn/policy", json={"type": "canary", "percent": 400})
    assert invalid.status_code == status_of(InvalidArgument).http == 422, invalid.text
    missing = client.get("/v2/models/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"] == {"code": "not_found"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/models/churn/predict"),
        ("POST", "/v2/models/churn/infer"),
        ("PUT", "/admin/models/churn/policy"),
    ],
)
def test_a_body_without_content_type_is_415(client, method, path) -> None:
    answer = client.request(method, path, content=b'[{"tenure": 1}]')
    assert answer.status_code == 415, answer.text
    assert "without a Content-Type" in answer.json()["error"]


def test_health_probes_answer_head_without_a_token(source, tokens) -> None:
    app = create_app(Runtime(SPEC, source), auth=tokens.auth)
    with TestClient(app) as bare:
        for path in ("/v2/health/live", "/v2/health/ready"):
            answer = bare.head(path)
            assert answer.status_code == 200, path
            assert answer.content == b""
        assert bare.head("/v2/models/churn").status_code == 401  # HEAD opens nothing else


def test_the_host_allow_list_refuses_other_hosts(source, tokens) -> None:
    app = create_app(
        Runtime(SPEC, source), auth=tokens.auth, allowed_hosts=["models.example.com", "*.internal"]
    )
    headers = tokens.headers(Role.VIEWER)
    with TestClient(app, base_url="http://models.example.com", headers=headers) as c:
        assert c.get("/v2/models/churn").status_code == 200
        assert c.get("/v2/health/live", headers={"host": "a.internal"}).status_code == 200
        forged = c.get("/v2/models/churn", headers={"host": "evil.example.net"})
        assert forged.status_code == 400
        assert c.get("/v2/health/live", headers={"host": "127.0.0.1:8000"}).status_code == 400


def test_without_an_allow_list_any_host_is_served(client) -> None:
    assert client.get("/v2/health/live", headers={"host": "anything.example"}).status_code == 200
