"""Every path that can move an alias, walked with each role (issue 14, item 1).

The CLI (a token's user), a pipeline's ``promote_to`` (the identity running it), a retrain
(``svc-retrain``) and a canary verdict (``svc-canary``) all end in ``ModelRegistry.promote``,
which checks the acting identity and writes the alias event and its audit entry together.
Each path is exercised for real, on the embedded workspace of tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shipyard.core.error_status import status_of
from shipyard.core.errors import PermissionDenied
from shipyard.pipeline.training import _register
from shipyard.registry.registry import ModelRegistry
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role
from shipyard.security.services import CANARY, RETRAIN, service_identity
from shipyard.serve.server import RegistrySource
from shipyard.track.workspace import Workspace
from shipyard.train.spec import TrainSpec
from tests.identities import OPERATOR
from tests.unit.cli.running import cli
from tests.unit.registry.trained import cached_bundle_file as bundle_file

if TYPE_CHECKING:
    from collections.abc import Iterator

PROJECT = "project"  # no shipyard.yaml in tmp_path: the CLI's default project
ROLES = [None, Role.VIEWER, Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN]


def may_promote(role: Role | None) -> bool:
    return role is not None and role.rank >= Role.ML_ENGINEER.rank


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Workspace, Path]]:
    """Version 1 holds production; the bundle file of version 2 is at hand."""
    with Workspace.open(tmp_path) as workspace:
        path = bundle_file(workspace, tmp_path, name="good")
        registry = ModelRegistry.for_workspace(workspace)
        registry.register("churn", path, actor=OPERATOR)
        registry.register("churn", path, actor=OPERATOR, idempotency_key="second")
        registry.promote("churn", 1, actor=OPERATOR, force=True, reason="start")
        yield workspace, path


def _bind(workspace: Workspace, user: str, role: Role | None, *, service: bool) -> Accounts:
    accounts = Accounts(security_store(workspace.settings, workspace.store))
    accounts.ensure_user(OPERATOR, user, service=service)
    if role is not None:
        accounts.grant(OPERATOR, user, role, PROJECT)
    return accounts


def _last_audit(workspace: Workspace) -> tuple[str, str, str, str]:
    entry = security_store(workspace.settings, workspace.store).list_audit(limit=1)[-1]
    return entry.actor, entry.action, entry.object, entry.outcome


def _assert_outcome(
    workspace: Workspace, who: str, role: Role | None, denied_object: str = "churn@production"
) -> None:
    registry = ModelRegistry.for_workspace(workspace)
    allowed = may_promote(role)
    assert registry.aliases("churn") == {"production": 2 if allowed else 1}
    actor, action, obj, outcome = _last_audit(workspace)
    expected_object = "churn@production" if allowed else denied_object
    assert (actor, action, obj) == (who, "models.promote", expected_object)
    assert outcome == ("ok" if allowed else "denied")
    last = registry.history("churn", "production")[-1]
    assert (last.actor, last.to_version) == ((who, 2) if allowed else (OPERATOR.name, 1))


@pytest.mark.parametrize("role", ROLES)
def test_cli_promotion_acts_as_the_tokens_user(setup, role, capsys, monkeypatch) -> None:
    workspace, _ = setup
    accounts = _bind(workspace, "carol", role, service=False)
    token = accounts.create_token(OPERATOR, "carol").text
    monkeypatch.setenv("SHIPYARD_TOKEN", token)
    code, _, err = cli(capsys, "models", "promote", "churn", "2", "--force", "--reason", "r")
    assert code == (0 if may_promote(role) else status_of(PermissionDenied).exit), err
    # refused by the CLI's entry check (which names the command) before the registry's own
    _assert_outcome(workspace, "carol", role, denied_object="cli:models promote")


@pytest.mark.parametrize("role", ROLES)
def test_a_pipelines_promote_to_acts_as_who_runs_it(setup, role) -> None:
    workspace, path = setup
    spec = TrainSpec.model_validate(
        {
            "target": "churned",
            "estimators": [{"name": "logistic"}],
            "register": {"model": "churn", "promote_to": "production"},
        }
    )
    who = Identity(name="dora", kind=Kind.USER, project=PROJECT, role=role, source="test")
    if role is None or role.rank < Role.DATA_SCIENTIST.rank:
        with pytest.raises(PermissionDenied, match="permission denied"):
            _register(workspace, spec, path, "run-x", who)
        assert _last_audit(workspace)[1:] == ("models.register", "model:churn", "denied")
        return
    version, promotion, denied = _register(workspace, spec, path, "run-x", who)
    assert version is not None
    assert version.created_by == "dora"
    if may_promote(role):
        assert promotion is not None
        assert denied is None
    else:  # registered, the promotion refused with a message and audited
        assert promotion is None
        assert denied is not None
        assert "needs ml-engineer" in denied
    actor, action, obj, outcome = _last_audit(workspace)
    assert (actor, action, obj) == ("dora", "models.promote", "churn@production")
    assert outcome in (("ok", "refused") if may_promote(role) else ("denied",))


@pytest.mark.parametrize("role", ROLES)
def test_a_canary_verdict_acts_as_svc_canary(setup, role) -> None:
    workspace, _ = setup
    _bind(workspace, CANARY, role, service=True)
    source = RegistrySource(ModelRegistry.for_workspace(workspace), project=PROJECT)
    if may_promote(role):
        source.promote("churn", "production", 2, reason="canary: fine")
    else:
        with pytest.raises(PermissionDenied):
            source.promote("churn", "production", 2, reason="canary: fine")
    _assert_outcome(workspace, CANARY, role)
    source.record_rollback("churn", "production", 2, reason="canary: errors")
    actor, action, _, outcome = _last_audit(workspace)
    assert (actor, action, outcome) == (CANARY, "serve.policy", "ok")


@pytest.mark.parametrize("role", ROLES)
def test_a_retrain_acts_as_svc_retrain_with_its_own_role(setup, role) -> None:
    workspace, _ = setup
    _bind(workspace, RETRAIN, role, service=True)
    security = security_store(workspace.settings, workspace.store)
    started_by = Identity(
        name="erin", kind=Kind.USER, project=PROJECT, role=Role.ADMIN, source="test"
    )
    # an admin's token lends nothing: the account's own binding decides
    service = service_identity(security, RETRAIN, PROJECT, started_by=started_by)
    assert service.role == role
    registry = ModelRegistry.for_workspace(workspace)
    if may_promote(role):
        registry.promote("churn", 2, actor=service, force=True, reason="retrain")
    else:
        with pytest.raises(PermissionDenied):
            registry.promote("churn", 2, actor=service, force=True, reason="retrain")
    _assert_outcome(workspace, RETRAIN, role)


def test_a_local_operator_lends_its_role_only_to_unbound_accounts(setup) -> None:
    workspace, _ = setup
    security = security_store(workspace.settings, workspace.store)
    assert service_identity(security, CANARY, PROJECT, started_by=OPERATOR).role == Role.ADMIN
    _bind(workspace, CANARY, Role.VIEWER, service=True)
    assert service_identity(security, CANARY, PROJECT, started_by=OPERATOR).role == Role.VIEWER
    assert service_identity(security, RETRAIN, PROJECT).role is None


def test_a_move_and_its_audit_entry_are_one_transaction(setup, monkeypatch) -> None:
    """If the audit entry cannot be written, the alias does not move either."""
    workspace, _ = setup
    import shipyard.store.security as store_security

    def broken(*_: object) -> None:
        raise RuntimeError("audit append failed")

    monkeypatch.setattr(store_security, "append_audit", broken)  # the append in the move's tx
    registry = ModelRegistry.for_workspace(workspace)
    with pytest.raises(RuntimeError, match="audit append failed"):
        registry.promote("churn", 2, actor=OPERATOR, force=True, reason="r")
    assert registry.aliases("churn") == {"production": 1}
    assert [e.to_version for e in registry.history("churn")] == [1]


def test_a_lost_race_is_audited(setup, monkeypatch) -> None:
    workspace, _ = setup
    registry = ModelRegistry.for_workspace(workspace)
    real = registry.store.resolve_alias
    monkeypatch.setattr(registry.store, "resolve_alias", lambda n, a: None)  # a stale read
    with pytest.raises(Exception, match="moved"):
        registry.promote("churn", 2, actor=OPERATOR, force=True, reason="r")
    monkeypatch.setattr(registry.store, "resolve_alias", real)
    actor, action, obj, outcome = _last_audit(workspace)
    assert (actor, action, obj, outcome) == (
        OPERATOR.name,
        "models.promote",
        "churn@production",
        "conflict",
    )
    entry = security_store(workspace.settings, workspace.store).list_audit(limit=1)[-1]
    assert json.loads(entry.detail_json)["to"] == 2
