"""A failing canary over three replicas is judged on all its traffic and rolled back once.

Each replica sends every request to the challenger (``percent: 100``), which needs a column
the requests lack, so every one fails. ``min_requests: 30`` with 20 requests per replica: no
replica alone has seen enough to judge, the deployment (60) has. The shared counts
(``store.canaries``) must roll the canary back, every replica must stop routing to it, and the
audit log must hold exactly one rollback entry, written by the replica whose verdict was first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shipyard.registry.registry import ModelRegistry
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import local_identity
from shipyard.security.permissions import Action
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.integration.test_replicas import Replica, _port, _wait
from tests.unit.registry.trained import bundle_file, cached_bundle_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROW = {"tenure": 12.0, "charges": 70.0, "plan": "basic"}
CANARY = {"type": "canary", "percent": 100, "min_requests": 30, "max_error_rate": 0.2}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Path, str, list[Replica]]]:
    root = tmp_path / "project"
    root.mkdir()
    with Workspace.open(root) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        registry.register("churn", cached_bundle_file(workspace, root), actor=OPERATOR)
        needs_region = bundle_file(
            workspace,
            root,
            features=["tenure", "charges", "plan", "region"],
            name="v3",
            extra_column="region",
        )
        registry.register("churn", needs_region, actor=OPERATOR)
        registry.promote("churn", 1, force=True, reason="start", actor=OPERATOR)
        registry.promote("churn", 2, alias="challenger", force=True, reason="c", actor=OPERATOR)
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        me = local_identity("project")
        accounts.ensure_user(me, "ci")
        accounts.grant(me, "ci", "admin", "project")
        token = accounts.create_token(me, "ci").text
    (root / "shipyard.yaml").write_text(
        "deploy:\n  poll_interval_s: 0.2\n  models:\n    churn:\n      model: churn\n"
        f"      policy: {json.dumps(CANARY)}\n"
    )
    started = [Replica(root, _port(), token, args=()) for _ in range(3)]
    try:
        yield root, token, started
    finally:
        for replica in started:
            replica.stop()


def _canary(replica: Replica) -> dict[str, object]:
    headers = {"authorization": f"Bearer {replica.token}"}
    answer = httpx.get(f"{replica.url}/admin/models", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    canary: dict[str, object] = answer.json()["churn"]["canary"]
    return canary


def test_a_failing_canary_over_three_replicas_is_rolled_back_once_by_the_shared_counts(
    replicas: tuple[Path, str, list[Replica]],
) -> None:
    root, token, servers = replicas
    _wait("three replicas ready", lambda: all(r.ready() for r in servers), logs=root)
    headers = {"authorization": f"Bearer {token}"}
    clients = [httpx.Client(base_url=r.url, headers=headers, timeout=30) for r in servers]
    try:
        statuses = [
            clients[i % 3].post("/models/churn/predict", json=[ROW]).status_code for i in range(60)
        ]
        assert statuses.count(200) < 60  # the canary answered (and failed) some of them

        def everywhere() -> bool:
            return all(_canary(r)["status"] == "rolled_back" for r in servers)

        _wait("every replica seeing the rollback", everywhere, logs=root, deadline_s=60)
        reasons = {str(_canary(r)["reason"]) for r in servers}
        assert any("across replicas" in reason for reason in reasons), reasons
        after = [c.post("/models/churn/predict", json=[ROW]) for c in clients for _ in range(20)]
        assert {a.status_code for a in after} == {200}
        assert {a.json()["variant"] for a in after} == {"production"}
    finally:
        for client in clients:
            client.close()
    with Workspace.open(root) as workspace:
        entries = security_store(workspace.settings, workspace.store).list_audit(
            action=Action.SERVE_POLICY.value, object_prefix="churn@production"
        )
    rollbacks = [e for e in entries if json.loads(e.detail_json).get("op") == "canary-rollback"]
    assert len(rollbacks) == 1, entries
