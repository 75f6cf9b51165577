"""Token checks during a store outage (issue 20): a recently checked token still works.

The accounts service is wrapped so that it can be switched to what an unreachable store makes
it do (raise ``StoreUnavailable``); the server's auth layer, the thing under test, is real.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from shipyard.core.clock import ManualClock
from shipyard.core.errors import StoreUnavailable
from shipyard.security.roles import Role
from shipyard.serve.app import create_app
from shipyard.serve.auth import ServerAuth
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.unit.serve.tokens import PROJECT, ServerTokens


class Outage:
    """Accounts that fail as an unreachable store does while ``down`` is set."""

    def __init__(self, accounts: Any) -> None:
        self.accounts = accounts
        self.down = False

    def authenticate(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreUnavailable("cannot open the metadata store; check that it is running")
        return self.accounts.authenticate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.accounts, name)


def test_known_tokens_work_through_an_outage_new_ones_get_503_and_metrics_say_so(source, tmp_path):
    clock = ManualClock()
    tokens = ServerTokens(tmp_path / "s")
    tokens.accounts.clock = clock
    outage = Outage(tokens.accounts)
    auth = ServerAuth(outage, project=PROJECT, cache_ttl_s=5, clock=clock, stale_s=60)  # type: ignore[arg-type]
    runtime = Runtime(DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60), source)
    runtime.health = auth.health
    known = {"authorization": f"Bearer {tokens.token(Role.ADMIN)}"}
    unseen = {"authorization": f"Bearer {tokens.token(Role.ADMIN)}"}
    with TestClient(create_app(runtime, auth=auth)) as client:
        assert client.get("/v2/models/churn", headers=known).status_code == 200
        outage.down = True
        clock.advance(seconds=10)  # past the cache time: the store is asked, and fails
        assert client.get("/v2/models/churn", headers=known).status_code == 200
        assert auth.health.degraded
        assert client.get("/v2/models/churn", headers=unseen).status_code == 503
        assert client.get("/v2/health/ready").status_code == 200
        metrics = client.get("/metrics", headers=known).text
        assert "shipyard_store_degraded 1.0" in metrics
        clock.advance(seconds=60)  # past the stale limit: no longer let in
        assert client.get("/v2/models/churn", headers=known).status_code == 503
        outage.down = False
        assert client.get("/v2/models/churn", headers=unseen).status_code == 200
        assert not auth.health.degraded
        assert "shipyard_store_degraded 0.0" in client.get("/metrics", headers=known).text
