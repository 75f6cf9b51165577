"""Real Redis for the stream tests (skipped with the reason when absent, failed in CI), and a
workspace with a registered model for a consumer to follow. Conftests import the fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.registry.registry import ModelRegistry
from shipyard.stream.config import StreamConfig
from shipyard.track.workspace import Workspace
from tests.conftest import _unavailable
from tests.identities import OPERATOR
from tests.unit.registry.trained import cached_bundle_file

REDIS_URL = os.environ.get("SHIPYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A client of the test Redis; keys the test made (under its prefix) are deleted after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        client.close()
        _unavailable(f"Redis not reachable at {REDIS_URL}: {type(e).__name__}")
    yield client
    client.close()


@pytest.fixture
def stream_config(redis_client: Any) -> Iterator[StreamConfig]:
    """A stream section on fresh, uniquely named streams (deleted after the test)."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield StreamConfig(
        url=REDIS_URL,
        input=f"{prefix}:events",
        group="scorers",
        consumer="c1",
        model="churn@production",
        output=f"{prefix}:predictions",
        dead_letters=f"{prefix}:dead",
        batch_size=50,
        block_ms=100,
        claim_idle_ms=500,
        poll_interval_s=0.2,
    )
    keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=10_000))
    for start in range(0, len(keys), 1000):
        redis_client.delete(*keys[start : start + 1000])


@pytest.fixture
def churn_project(tmp_path: Path) -> Path:
    """A project whose registry has churn v1 at production."""
    with Workspace.open(tmp_path) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        registry.register("churn", cached_bundle_file(workspace, tmp_path), actor=OPERATOR)
        registry.promote("churn", 1, force=True, reason="test", actor=OPERATOR)
    return tmp_path


def event(ident: int | str, **overrides: Any) -> dict[str, Any]:
    """A valid churn event."""
    base: dict[str, Any] = {
        "event_id": ident,
        "tenure": float(int(str(ident)[-2:] or 0) % 50 + 1) if str(ident).isdigit() else 3.0,
        "charges": 55.5,
        "plan": "basic",
    }
    base.update(overrides)
    return base
