"""Under a review rule, the automated paths that promote ask for review instead of moving.

A pipeline's ``promote_to`` and a retrain (``svc-retrain``) both end in
``ModelRegistry.promote``; with ``reviews:`` in the project file the alias stays and a request
waits, with its evidence, for a person. A canary's forced promotion is refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.pipeline.training import _register
from shipyard.registry.registry import ModelRegistry
from shipyard.registry.reviews import ReviewService
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role
from shipyard.security.services import RETRAIN, service_identity
from shipyard.track.workspace import Workspace
from shipyard.train.spec import TrainSpec
from tests.identities import OPERATOR
from tests.unit.registry.trained import cached_bundle_file

RULE = "reviews: {default: {production: {approvals: 1}}}\n"


def test_pipeline_and_retrain_open_requests_under_a_rule(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(RULE, encoding="utf-8")
    with Workspace.open(tmp_path) as workspace:
        path = cached_bundle_file(workspace, tmp_path, name="good")
        spec = TrainSpec.model_validate(
            {
                "target": "churned",
                "estimators": [{"name": "logistic"}],
                "register": {"model": "churn", "promote_to": "production"},
            }
        )
        dora = Identity(name="dora", kind=Kind.USER, project="project", role=Role.ML_ENGINEER)
        version, promotion, denied = _register(workspace, spec, path, "run-x", dora)
        assert version is not None
        assert denied is None
        assert promotion is not None
        assert (promotion.moved, promotion.action) == (False, "requested")
        registry = ModelRegistry.for_workspace(workspace)
        assert registry.aliases("churn") == {}
        [request] = ReviewService(registry).list(state="open")
        assert (request.requested_by, request.version) == ("dora", version.version)

        accounts = Accounts(security_store(workspace.settings, workspace.store))
        accounts.ensure_user(OPERATOR, RETRAIN, service=True)
        accounts.grant(OPERATOR, RETRAIN, Role.ML_ENGINEER, "project")
        service = service_identity(registry.security, RETRAIN, "project", started_by=OPERATOR)
        retrained = registry.register("churn", path, actor=OPERATOR, idempotency_key="second")
        outcome = registry.promote("churn", retrained.version, actor=service, reason="retrain")
        assert outcome.request_id is not None
        assert ReviewService(registry).get(outcome.request_id).requested_by == RETRAIN
        with pytest.raises(InvalidArgument, match="--force cannot skip"):
            registry.promote("churn", 1, actor=service, force=True, reason="canary: fine")
        assert registry.aliases("churn") == {}
