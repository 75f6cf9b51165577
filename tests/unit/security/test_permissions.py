"""The RBAC matrix: every role against every action, as the issue states the roles."""

from __future__ import annotations

import pytest

from shipyard.core.errors import PermissionDenied
from shipyard.security.permissions import (
    CLI_COMMANDS,
    HTTP_ROUTES,
    PERMISSIONS,
    PUBLIC,
    Action,
    check,
    command_action,
    require,
    route_action,
)
from shipyard.security.roles import Role, parse_role
from tests.unit.security.conftest import identity

V, DS, ML, AD = Role.VIEWER, Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN

# The weakest role the issue allows for each action, written out independently of the table:
# viewer reads runs, models and reports; data-scientist logs runs, registers models, reads
# pseudonymized data; ml-engineer promotes, deploys, changes traffic; admin manages users,
# roles, keys, erasure and raw PII.
WEAKEST = {
    Action.WORKSPACE_READ: V,
    Action.WORKSPACE_INIT: AD,
    Action.RUNS_READ: V,
    Action.RUNS_WRITE: DS,
    Action.RUNS_DELETE: ML,
    Action.DATA_METADATA: V,
    Action.DATA_READ: DS,
    Action.DATA_READ_PII: AD,
    Action.MODELS_READ: V,
    Action.MODELS_REGISTER: DS,
    Action.MODELS_PROMOTE: ML,
    Action.MODELS_ROLLBACK: ML,
    Action.MODELS_REQUEST_PROMOTION: DS,
    Action.MODELS_APPROVE: ML,
    Action.MODELS_REJECT: ML,
    Action.COMMENTS_READ: V,
    Action.COMMENTS_WRITE: DS,
    Action.REPORTS_READ: V,
    Action.MONITOR_WRITE: DS,
    Action.MONITOR_RUN: ML,
    Action.COST_READ: V,
    Action.SCORE_BATCH: DS,
    Action.SERVE_READ: V,
    Action.SERVE_PREDICT: V,
    Action.SERVE_FEEDBACK: V,
    Action.SERVE_METRICS: V,
    Action.SERVE_ADMIN_READ: ML,
    Action.SERVE_DEPLOY: ML,
    Action.SERVE_POLICY: ML,
    Action.LOADTEST: ML,
    Action.PRIVACY_ERASE: AD,
    Action.USERS_MANAGE: AD,
    Action.ROLES_MANAGE: AD,
    Action.TOKENS_MANAGE: AD,
    Action.KEYS_MANAGE: AD,
    Action.BACKUP_MANAGE: AD,
    Action.AUDIT_READ: AD,
}


def test_every_action_has_an_entry_and_an_expectation() -> None:
    assert set(PERMISSIONS) == set(Action)
    assert set(WEAKEST) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", [*Role, None])
def test_matrix(role: Role | None, action: Action) -> None:
    who = identity(role)
    expected = role is not None and role.rank >= WEAKEST[action].rank
    assert check(who, action).allowed is expected
    if expected:
        require(who, action)
    else:
        with pytest.raises(PermissionDenied, match="permission denied"):
            require(who, action)


def test_denial_says_which_role_is_needed() -> None:
    with pytest.raises(PermissionDenied, match=r"viewer in project .*needs ml-engineer"):
        require(identity(V), Action.MODELS_PROMOTE)
    with pytest.raises(PermissionDenied, match="holds no role"):
        require(identity(None), Action.RUNS_READ)


def test_anything_outside_the_table_is_denied() -> None:
    assert not check(identity(AD), "models.delete_everything").allowed
    assert route_action("GET", "/not/mapped") is None
    assert route_action("HEAD", "/metrics") == Action.SERVE_METRICS


def test_only_the_health_probes_are_public() -> None:
    public = sorted(route for route, action in HTTP_ROUTES.items() if action == PUBLIC)
    assert public == [
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("HEAD", "/v2/health/live"),
        ("HEAD", "/v2/health/ready"),
    ]


def test_cli_lookup_falls_back_to_the_group() -> None:
    assert command_action("models promote") == Action.MODELS_PROMOTE
    assert command_action("monitor drift") == CLI_COMMANDS["monitor"]
    assert command_action("nonexistent thing") is None


def test_parse_role() -> None:
    assert parse_role(" ML-Engineer ") == Role.ML_ENGINEER
    with pytest.raises(ValueError, match="unknown role 'root'"):
        parse_role("root")
