"""Route modules mounted alone, without create_app's guard or fast lane (issue 15).

Each module of ``serve.routes`` takes what it needs from the ``ServerContext`` on app state, so
a bare FastAPI app with one router, a context and the error handlers serves it. The inference
routes answered here through FastAPI must give what the full app answers through its fast
lane: the lane is a shortcut, not a second implementation.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.testclient import TestClient

from shipyard.serve.app import create_app
from shipyard.serve.context import ServerContext
from shipyard.serve.errors import install_error_handlers
from shipyard.serve.metrics import Metrics
from shipyard.serve.routes import health, inference
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import ServerTokens

RECORDS = [
    {"tenure": 12.0, "charges": 70.5, "plan": "basic"},
    {"tenure": 50, "charges": 20.0, "plan": "pro"},
]
SPEC = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=3600)


def _alone(runtime: Runtime, tokens: ServerTokens, *routers) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await runtime.start()
        yield
        await runtime.stop()

    app = FastAPI(lifespan=lifespan)
    for router in routers:
        app.router.routes.extend(router.routes)
    app.state.shipyard = ServerContext(
        runtime=runtime, auth=tokens.auth, metrics=Metrics(), max_body_bytes=100_000
    )
    install_error_handlers(app)
    return app


def test_the_health_router_alone_follows_the_runtime(source, tmp_path):
    runtime = Runtime(SPEC, source)
    app = _alone(runtime, ServerTokens(tmp_path), health.router)
    with TestClient(app) as client:
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.head("/v2/health/live").status_code == 200
    assert runtime.ready is False  # stopped with the app


def test_inference_routes_alone_answer_as_the_full_app_does(source, tmp_path):
    tokens = ServerTokens(tmp_path)
    alone = _alone(Runtime(SPEC, source), tokens, inference.router, inference.predict_router)
    full = create_app(Runtime(SPEC, source), auth=tokens.auth)
    headers = tokens.headers()
    with TestClient(alone) as a, TestClient(full, headers=headers) as f:
        for path, body in (
            ("/models/churn/predict", RECORDS),
            ("/models/churn/predict", {"columns": {"tenure": [1.0]}}),  # 422: missing columns
            ("/models/nope/predict", RECORDS),  # 404
        ):
            through_fastapi, through_the_lane = a.post(path, json=body), f.post(path, json=body)
            assert through_fastapi.status_code == through_the_lane.status_code
            left, right = through_fastapi.json(), through_the_lane.json()
            left.pop("request_id", None)
            right.pop("request_id", None)
            assert left == right
        assert a.get("/v2/models/churn").json() == f.get("/v2/models/churn").json()
