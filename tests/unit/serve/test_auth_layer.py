"""The bearer-token guard as a plain ASGI layer, alone in front of a bare Starlette app.

``AuthMiddleware`` is exercised here without FastAPI or a model: routes from the permission
table, real tokens in a real SQLite security store, and the server's cache, whose remembered
routes and identities must never let a request through that the table or the store refuse.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from shipyard.core.clock import ManualClock
from shipyard.security.roles import Role
from shipyard.serve.auth import AuthMiddleware, ServerAuth
from tests.unit.serve.tokens import BOOTSTRAP, PROJECT, ServerTokens


def _reached(request):  # what the guarded app answers once the guard lets a request in
    return PlainTextResponse(request.scope["state"]["identity"].name)


def _guarded(auth: ServerAuth) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v2/health/live", lambda _: PlainTextResponse("live")),
            Route("/models/{name}/predict", _reached, methods=["POST"]),
            Route("/admin/models", _reached),
            Route("/unlisted", _reached),
        ]
    )
    app.add_middleware(AuthMiddleware, auth=auth, router=app.router)
    return app


def test_no_token_is_401_a_role_without_the_action_is_403_and_probes_stay_open(tmp_path):
    tokens = ServerTokens(tmp_path)
    viewer = {"authorization": f"Bearer {tokens.token(Role.VIEWER, name='vic')}"}
    with TestClient(_guarded(tokens.auth)) as client:
        assert client.get("/v2/health/live").text == "live"
        refused = client.post("/models/m/predict")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="shipyard"'
        bad = {"authorization": "Bearer not-a-token"}
        assert client.post("/models/m/predict", headers=bad).status_code == 401
        for _ in range(3):  # the second and third come from the caches: same answers
            assert client.post("/models/m/predict", headers=viewer).text == "vic"
            assert client.get("/admin/models", headers=viewer).status_code == 403
            assert client.get("/unlisted", headers=viewer).status_code == 403  # not in the table
            # Same path, another method: its own lookup, so the router answers 405.
            assert client.get("/models/m/predict", headers=viewer).status_code == 405


def test_a_revoked_token_is_refused_once_the_cache_time_has_passed(tmp_path):
    clock = ManualClock()
    tokens = ServerTokens(tmp_path)
    tokens.accounts.clock = clock
    auth = ServerAuth(tokens.accounts, project=PROJECT, cache_ttl_s=5, clock=clock)
    text = tokens.token(Role.VIEWER, name="vic")
    headers = {"authorization": f"Bearer {text}"}
    with TestClient(_guarded(auth)) as client:
        assert client.post("/models/m/predict", headers=headers).status_code == 200
        tokens.accounts.revoke_token(BOOTSTRAP, text.split("_")[1])
        clock.advance(seconds=4.9)
        assert client.post("/models/m/predict", headers=headers).status_code == 200  # cached
        clock.advance(seconds=0.1)
        assert client.post("/models/m/predict", headers=headers).status_code == 401


def test_a_role_taken_away_is_denied_after_the_cache_time(tmp_path):
    clock = ManualClock()
    tokens = ServerTokens(tmp_path)
    tokens.accounts.clock = clock
    auth = ServerAuth(tokens.accounts, project=PROJECT, cache_ttl_s=5, clock=clock)
    headers = {"authorization": f"Bearer {tokens.token(Role.ADMIN, name='ada')}"}
    with TestClient(_guarded(auth)) as client:
        assert client.get("/admin/models", headers=headers).status_code == 200
        tokens.accounts.grant(BOOTSTRAP, "ada", Role.VIEWER, PROJECT)
        clock.advance(seconds=5)
        assert client.get("/admin/models", headers=headers).status_code == 403
