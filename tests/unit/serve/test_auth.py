"""The server's guard: every route is in the permission table, and only the probes are open."""

from __future__ import annotations

import logging

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from shipyard.core.clock import ManualClock
from shipyard.security.permissions import HTTP_ROUTES, MLFLOW_HTTP_ROUTES, PUBLIC, route_action
from shipyard.security.ratelimit import FailureLimiter
from shipyard.security.roles import Role
from shipyard.serve.app import create_app
from shipyard.serve.auth import ServerAuth
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import BOOTSTRAP, PROJECT, ServerTokens

RECORD = {"tenure": 12.0, "charges": 70.5, "plan": "basic"}
CANARY = {"type": "canary", "challenger": "challenger", "percent": 10}


@pytest.fixture
def tokens(tmp_path):
    return ServerTokens(tmp_path / "security")


@pytest.fixture
def app(source, tokens):
    spec = DeploySpec(
        models={"churn": {"model": "churn", "policy": {"type": "shadow"}}}, poll_interval_s=60
    )
    return create_app(Runtime(spec, source), auth=tokens.auth)


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _routes(app) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute | Route):
            # Starlette adds HEAD to its own GET routes; FastAPI's only have what they declare.
            methods = sorted(route.methods or ())
            found += [
                (m, route.path) for m in methods if m != "HEAD" or isinstance(route, APIRoute)
            ]
    return found


def test_every_route_of_the_server_is_in_the_permission_table(app):
    routes = _routes(app)
    missing = [r for r in routes if route_action(*r) is None]
    assert missing == [], f"routes without a permission-table entry: {missing}"
    assert ("PUT", "/admin/models/{name}/policy") in routes  # the walk sees the real routes
    # The tracking server's routes are checked against its own app (test_mlflow_api_edges).
    stale = set(HTTP_ROUTES) - set(routes) - set(MLFLOW_HTTP_ROUTES)
    assert stale == set(), f"permission-table entries for routes that do not exist: {stale}"


def test_without_a_token_every_protected_route_is_401_and_the_probes_answer(app, client):
    for method, path in _routes(app):
        answer = client.request(method, path.replace("{name}", "churn"), json=[RECORD])
        if HTTP_ROUTES[(method, path)] == PUBLIC:
            assert answer.status_code == 200, (method, path)
        else:
            assert answer.status_code == 401, (method, path)
            assert answer.headers["www-authenticate"].startswith("Bearer")
    for header in ("Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer sy_x_y", "Token abc"):
        answer = client.get("/v2/models/churn", headers={"authorization": header})
        assert answer.status_code == 401, header
    assert client.get("/nowhere").status_code == 401  # no probing for routes without a token


def test_a_viewer_may_predict_but_not_change_traffic(client, tokens):
    viewer = tokens.headers(Role.VIEWER)
    assert client.post("/models/churn/predict", json=[RECORD], headers=viewer).status_code == 200
    before = client.get("/admin/models", headers=tokens.headers(Role.ML_ENGINEER)).json()
    denied = client.put("/admin/models/churn/policy", json=CANARY, headers=viewer)
    assert denied.status_code == 403
    assert "needs ml-engineer" in denied.json()["error"]
    assert client.get("/admin/models", headers=viewer).status_code == 403
    after = client.get("/admin/models", headers=tokens.headers(Role.ML_ENGINEER)).json()
    assert after == before
    assert [e for e in tokens.store.iter_audit() if e.action == "serve.policy"] == []


def test_an_engineer_changes_traffic_and_it_is_audited(client, tokens):
    engineer = tokens.token(Role.ML_ENGINEER, name="erin")
    answer = client.put(
        "/admin/models/churn/policy", json=CANARY, headers={"authorization": f"Bearer {engineer}"}
    )
    assert answer.status_code == 200
    assert answer.json()["policy"]["type"] == "canary"
    (entry,) = [e for e in tokens.store.iter_audit() if e.action == "serve.policy"]
    assert (entry.actor, entry.object, entry.source) == ("erin", "churn", "http:testclient")
    assert '"percent":10' in entry.detail_json


def test_no_role_in_this_project_is_403(client, tokens):
    tokens.accounts.create_user(BOOTSTRAP, "outsider")
    tokens.accounts.grant(BOOTSTRAP, "outsider", Role.ADMIN, "another-project")
    text = tokens.accounts.create_token(BOOTSTRAP, "outsider").text
    answer = client.get("/v2/models/churn", headers={"authorization": f"Bearer {text}"})
    assert answer.status_code == 403
    assert PROJECT in answer.json()["error"]


def test_a_route_missing_from_the_table_is_denied(app, client, tokens):
    @app.get("/debug/secrets")
    async def debug() -> dict[str, str]:
        return {"leak": "yes"}

    answer = client.get("/debug/secrets", headers=tokens.headers(Role.ADMIN))
    assert answer.status_code == 403
    assert "not in the permission table" in answer.json()["error"]


def test_revocation_and_expiry_take_effect_within_the_cache_time(source, tmp_path):
    clock = ManualClock()
    tokens = ServerTokens(tmp_path / "s")
    tokens.accounts.clock = clock
    auth = ServerAuth(tokens.accounts, project=PROJECT, cache_ttl_s=5, clock=clock)
    spec = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)
    text = tokens.token(Role.VIEWER, name="vic")
    headers = {"authorization": f"Bearer {text}"}
    with TestClient(create_app(Runtime(spec, source), auth=auth)) as client:
        assert client.get("/v2/models/churn", headers=headers).status_code == 200
        tokens.accounts.revoke_token(BOOTSTRAP, text.split("_")[1])
        clock.advance(seconds=4)
        assert client.get("/v2/models/churn", headers=headers).status_code == 200  # cached
        clock.advance(seconds=1)
        assert client.get("/v2/models/churn", headers=headers).status_code == 401

        short = tokens.accounts.create_token(BOOTSTRAP, "vic", expires_in_days=1).text
        later = {"authorization": f"Bearer {short}"}
        assert client.get("/v2/models/churn", headers=later).status_code == 200
        clock.advance(seconds=86_400)
        assert client.get("/v2/models/churn", headers=later).status_code == 401


def test_failures_are_logged_without_the_token_and_rate_limited(source, tmp_path, caplog):
    clock = ManualClock()
    tokens = ServerTokens(tmp_path / "s")
    limiter = FailureLimiter(max_failures=3, window_s=60, clock=clock)
    auth = ServerAuth(tokens.accounts, project=PROJECT, limiter=limiter, clock=clock)
    spec = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)
    good = tokens.headers(Role.VIEWER)
    forged = good["authorization"][:-6] + "AAAAAA"
    with (
        TestClient(create_app(Runtime(spec, source), auth=auth)) as client,
        caplog.at_level(logging.WARNING, logger="shipyard.serve.auth"),
    ):
        for _ in range(3):
            answer = client.get("/v2/models/churn", headers={"authorization": forged})
            assert answer.status_code == 401
        # Only failures are throttled: a valid token from the same address still gets in.
        assert client.get("/v2/models/churn", headers=good).status_code == 200
        blocked = client.get("/v2/models/churn", headers={"authorization": forged})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) == 60
        assert client.get("/v2/models/churn").status_code == 429  # no token is a failure too
        assert client.get("/v2/models/churn", headers=good).status_code == 200
        assert client.get("/v2/health/live").status_code == 200  # probes stay open
        clock.advance(seconds=60)
        answer = client.get("/v2/models/churn", headers={"authorization": forged})
        assert answer.status_code == 401
    failures = [r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(failures) == 6
    assert all("testclient" in m for m in failures)
    assert sum("unknown token" in m for m in failures) == 5  # and one without a token
    secret = forged.split("_", 2)[2]
    assert not any(secret in r.getMessage() for r in caplog.records)
