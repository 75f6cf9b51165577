"""Readiness: true only once models are loaded and warmed, off while draining (issue 20)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from fastapi.testclient import TestClient

from shipyard.serve.app import create_app
from shipyard.serve.lifecycle import Lifecycle
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import ServerTokens

SPEC = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=3600)
ROW = {"tenure": 12.0, "charges": 70.5, "plan": "basic"}


def test_models_are_warmed_before_ready_and_draining_turns_readiness_off(source, tmp_path):
    tokens = ServerTokens(tmp_path)
    lifecycle = Lifecycle(drain_s=5)
    runtime = Runtime(SPEC, source)
    app = create_app(runtime, auth=tokens.auth, lifecycle=lifecycle)
    with TestClient(app) as client:
        assert client.get("/v2/health/ready").json() == {"ready": True}
        lifecycle.draining = True
        answer = client.get("/v2/health/ready")
        assert answer.status_code == 503
        assert answer.json() == {"ready": False}
        assert client.get("/v2/health/live").status_code == 200
        # still answering while the balancer takes the replica out
        scored = client.post("/models/churn/predict", json=[ROW], headers=tokens.headers())
        assert scored.status_code == 200, scored.text


def test_a_warm_up_row_is_built_from_the_contract(source):
    model = Runtime(SPEC, source)._load("churn", "churn", "production")
    assert model.warm()


def test_the_first_sigterm_drains_and_the_second_goes_straight_to_the_old_handler():
    calls: list[int] = []

    def previous(sig: int, frame: Any) -> None:
        calls.append(sig)

    async def scenario() -> None:
        lifecycle = Lifecycle(drain_s=0.2)
        old = signal.signal(signal.SIGTERM, previous)
        try:
            lifecycle.install(asyncio.get_running_loop())
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler)
            handler(signal.SIGTERM, None)
            assert lifecycle.draining
            assert calls == []  # uvicorn's handler waits for the drain
            await asyncio.sleep(0.5)
            assert calls == [signal.SIGTERM]
            handler(signal.SIGTERM, None)  # a second one: at once
            assert calls == [signal.SIGTERM, signal.SIGTERM]
            lifecycle.uninstall()
            assert signal.getsignal(signal.SIGTERM) is previous
        finally:
            signal.signal(signal.SIGTERM, old)

    asyncio.run(scenario())


def test_without_a_drain_time_uvicorns_handler_is_left_alone():
    async def scenario() -> None:
        before = signal.getsignal(signal.SIGTERM)
        Lifecycle().install(asyncio.get_running_loop())
        assert signal.getsignal(signal.SIGTERM) is before

    asyncio.run(scenario())
