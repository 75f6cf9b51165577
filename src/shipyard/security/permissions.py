"""THE permission table: every action Shipyard guards, and the roles allowed to do it.

One table, read by the model server's HTTP guard (``HTTP_ROUTES`` names each route's action),
by the CLI (``CLI_COMMANDS``), and by the tests, which check every role against every action and
fail when a server route or CLI command has no entry. Anything not in the table is denied
(MLflow's route check was fail-open for unmapped routes; ours is not). One function decides:
``check`` returns a decision with its reason, ``require`` raises on a denial.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from shipyard.core.errors import PermissionDenied
from shipyard.security.roles import Role, at_least

if TYPE_CHECKING:
    from shipyard.security.identities import Identity


class Action(StrEnum):
    """Something a caller may or may not do."""

    WORKSPACE_READ = "workspace.read"
    WORKSPACE_INIT = "workspace.init"
    RUNS_READ = "runs.read"
    RUNS_WRITE = "runs.write"
    RUNS_DELETE = "runs.delete"
    DATA_METADATA = "data.metadata"
    DATA_READ = "data.read"
    DATA_READ_PII = "data.read_pii"
    MODELS_READ = "models.read"
    MODELS_REGISTER = "models.register"
    MODELS_PROMOTE = "models.promote"
    MODELS_ROLLBACK = "models.rollback"
    MODELS_REQUEST_PROMOTION = "models.request_promotion"
    MODELS_APPROVE = "models.approve"
    MODELS_REJECT = "models.reject"
    COMMENTS_READ = "comments.read"
    COMMENTS_WRITE = "comments.write"
    REPORTS_READ = "reports.read"
    MONITOR_WRITE = "monitor.write"
    MONITOR_RUN = "monitor.run"
    COST_READ = "cost.read"
    SCORE_BATCH = "score.batch"
    SERVE_READ = "serve.read"
    SERVE_PREDICT = "serve.predict"
    SERVE_FEEDBACK = "serve.feedback"
    SERVE_METRICS = "serve.metrics"
    SERVE_ADMIN_READ = "serve.admin_read"
    SERVE_DEPLOY = "serve.deploy"
    SERVE_POLICY = "serve.policy"
    LOADTEST = "loadtest.run"
    PRIVACY_ERASE = "privacy.erase"
    USERS_MANAGE = "users.manage"
    ROLES_MANAGE = "roles.manage"
    TOKENS_MANAGE = "tokens.manage"
    KEYS_MANAGE = "keys.manage"
    BACKUP_MANAGE = "backup.manage"
    AUDIT_READ = "audit.read"


_VIEWER = at_least(Role.VIEWER)
_DATA_SCIENTIST = at_least(Role.DATA_SCIENTIST)
_ML_ENGINEER = at_least(Role.ML_ENGINEER)
_ADMIN = at_least(Role.ADMIN)

#: Action -> the roles allowed to do it. Every ``Action`` has an entry (a test checks it).
PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.WORKSPACE_READ: _VIEWER,
    Action.WORKSPACE_INIT: _ADMIN,
    Action.RUNS_READ: _VIEWER,
    Action.RUNS_WRITE: _DATA_SCIENTIST,
    Action.RUNS_DELETE: _ML_ENGINEER,
    Action.DATA_METADATA: _VIEWER,
    Action.DATA_READ: _DATA_SCIENTIST,  # pseudonymized content, profiles, diffs
    # Raw values of columns tagged as personal data; without it they are shown masked
    # (shipyard.privacy.exposure), and every read with it is audited.
    Action.DATA_READ_PII: _ADMIN,
    Action.MODELS_READ: _VIEWER,
    Action.MODELS_REGISTER: _DATA_SCIENTIST,
    Action.MODELS_PROMOTE: _ML_ENGINEER,
    Action.MODELS_ROLLBACK: _ML_ENGINEER,
    # Four-eyes promotion (registry.reviews): anyone who registers may ask; deciding moves an
    # alias, so it needs what promoting needs, and the review rule may name fewer roles still.
    Action.MODELS_REQUEST_PROMOTION: _DATA_SCIENTIST,
    Action.MODELS_APPROVE: _ML_ENGINEER,
    Action.MODELS_REJECT: _ML_ENGINEER,
    Action.COMMENTS_READ: _VIEWER,
    Action.COMMENTS_WRITE: _DATA_SCIENTIST,  # viewers read only (issue 18)
    Action.REPORTS_READ: _VIEWER,
    # Storing feedback labels changes what the monitors measure.
    Action.MONITOR_WRITE: _DATA_SCIENTIST,
    # A monitor pass stores observations and alerts and may retrain (as svc-retrain) and so
    # move an alias: not for readers.
    Action.MONITOR_RUN: _ML_ENGINEER,
    Action.COST_READ: _VIEWER,
    Action.SCORE_BATCH: _DATA_SCIENTIST,
    Action.SERVE_READ: _VIEWER,
    Action.SERVE_PREDICT: _VIEWER,
    Action.SERVE_FEEDBACK: _VIEWER,  # the callers of predict send the labels back
    Action.SERVE_METRICS: _VIEWER,
    Action.SERVE_ADMIN_READ: _ML_ENGINEER,
    Action.SERVE_DEPLOY: _ML_ENGINEER,
    Action.SERVE_POLICY: _ML_ENGINEER,
    Action.LOADTEST: _ML_ENGINEER,
    Action.PRIVACY_ERASE: _ADMIN,
    Action.USERS_MANAGE: _ADMIN,
    Action.ROLES_MANAGE: _ADMIN,
    Action.TOKENS_MANAGE: _ADMIN,
    Action.KEYS_MANAGE: _ADMIN,
    Action.BACKUP_MANAGE: _ADMIN,
    Action.AUDIT_READ: _ADMIN,
}

#: Routes anyone may call: the health probes, and nothing else.
PUBLIC = "public"

#: (method, route template) of the model server and the tracking server -> its action, or
#: ``PUBLIC``. The tracking server's MLflow routes are added below (``MLFLOW_HTTP_ROUTES``).
HTTP_ROUTES: dict[tuple[str, str], Action | str] = {
    ("GET", "/v2/health/live"): PUBLIC,
    ("HEAD", "/v2/health/live"): PUBLIC,
    ("GET", "/v2/health/ready"): PUBLIC,
    ("HEAD", "/v2/health/ready"): PUBLIC,
    ("GET", "/v2/models/{name}"): Action.SERVE_READ,
    ("GET", "/v2/models/{name}/ready"): Action.SERVE_READ,
    ("POST", "/v2/models/{name}/infer"): Action.SERVE_PREDICT,
    ("POST", "/models/{name}/predict"): Action.SERVE_PREDICT,
    ("POST", "/models/{name}/feedback"): Action.SERVE_FEEDBACK,
    ("GET", "/metrics"): Action.SERVE_METRICS,
    ("GET", "/admin/models"): Action.SERVE_ADMIN_READ,
    ("PUT", "/admin/models/{name}/policy"): Action.SERVE_POLICY,
    ("GET", "/openapi.json"): Action.SERVE_READ,
    ("GET", "/docs"): Action.SERVE_READ,
    ("GET", "/docs/oauth2-redirect"): Action.SERVE_READ,
    ("GET", "/redoc"): Action.SERVE_READ,
    ("GET", "/reviews"): Action.MODELS_READ,
    ("POST", "/reviews"): Action.MODELS_REQUEST_PROMOTION,
    ("GET", "/reviews/{request_id}"): Action.MODELS_READ,
    ("POST", "/reviews/{request_id}/approve"): Action.MODELS_APPROVE,
    ("POST", "/reviews/{request_id}/reject"): Action.MODELS_REJECT,
    ("GET", "/comments"): Action.COMMENTS_READ,
    ("POST", "/comments"): Action.COMMENTS_WRITE,
    ("GET", "/activity"): Action.WORKSPACE_READ,
}

#: (method, route template) of the web UI (``shipyard ui``) -> its action, or ``PUBLIC`` (the
#: sign-in page, static files and the health probe). The UI's guard denies a route missing
#: here, and a test fails on any UI route without an entry. A page's write controls are only
#: rendered for identities the write's own action allows.
UI_ROUTES: dict[tuple[str, str], Action | str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/static/{path:path}"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,  # CSRF-checked like every POST
    ("POST", "/logout"): Action.WORKSPACE_READ,
    ("GET", "/"): Action.WORKSPACE_READ,
    ("GET", "/experiments"): Action.RUNS_READ,
    ("GET", "/runs"): Action.RUNS_READ,
    ("GET", "/runs/table"): Action.RUNS_READ,
    ("GET", "/runs/{run_id}"): Action.RUNS_READ,
    ("GET", "/runs/{run_id}/metric"): Action.RUNS_READ,
    ("GET", "/runs/{run_id}/artifacts/{name:path}"): Action.RUNS_READ,
    ("POST", "/runs/{run_id}/notes"): Action.RUNS_WRITE,
    ("GET", "/compare"): Action.RUNS_READ,
    ("GET", "/compare/metric"): Action.RUNS_READ,
    ("GET", "/datasets"): Action.DATA_METADATA,
    ("GET", "/datasets/{name}"): Action.DATA_METADATA,
    ("GET", "/models"): Action.MODELS_READ,
    ("GET", "/models/{name}"): Action.MODELS_READ,
    ("GET", "/models/{name}/compare"): Action.MODELS_READ,
    ("GET", "/models/{name}/{version:int}/card"): Action.REPORTS_READ,
    ("GET", "/monitoring"): Action.REPORTS_READ,
    ("GET", "/cost"): Action.COST_READ,
    ("GET", "/reviews"): Action.MODELS_READ,
    ("GET", "/reviews/{request_id}"): Action.MODELS_READ,
    ("POST", "/reviews"): Action.MODELS_REQUEST_PROMOTION,
    ("POST", "/reviews/{request_id}/approve"): Action.MODELS_APPROVE,
    ("POST", "/reviews/{request_id}/reject"): Action.MODELS_REJECT,
    ("POST", "/comments"): Action.COMMENTS_WRITE,
    ("GET", "/activity"): Action.WORKSPACE_READ,
    ("GET", "/audit"): Action.AUDIT_READ,
}

#: The MLflow tracking API (``serve.mlflow``): (method, path after ``/api/2.0/mlflow``) ->
#: its action. Each is served under ``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``.
MLFLOW_ROUTES: dict[tuple[str, str], Action] = {
    ("POST", "/experiments/create"): Action.RUNS_WRITE,
    ("GET", "/experiments/get"): Action.RUNS_READ,
    ("GET", "/experiments/get-by-name"): Action.RUNS_READ,
    ("POST", "/experiments/search"): Action.RUNS_READ,
    ("GET", "/experiments/search"): Action.RUNS_READ,
    ("POST", "/experiments/update"): Action.RUNS_WRITE,
    ("POST", "/experiments/delete"): Action.RUNS_DELETE,
    ("POST", "/experiments/restore"): Action.RUNS_DELETE,
    ("POST", "/runs/create"): Action.RUNS_WRITE,
    ("POST", "/runs/update"): Action.RUNS_WRITE,
    ("POST", "/runs/delete"): Action.RUNS_DELETE,
    ("POST", "/runs/restore"): Action.RUNS_DELETE,
    ("GET", "/runs/get"): Action.RUNS_READ,
    ("POST", "/runs/search"): Action.RUNS_READ,
    ("POST", "/runs/log-metric"): Action.RUNS_WRITE,
    ("POST", "/runs/log-parameter"): Action.RUNS_WRITE,
    ("POST", "/runs/set-tag"): Action.RUNS_WRITE,
    ("POST", "/runs/delete-tag"): Action.RUNS_WRITE,
    ("POST", "/runs/log-batch"): Action.RUNS_WRITE,
    ("POST", "/runs/log-inputs"): Action.RUNS_WRITE,
    ("GET", "/metrics/get-history"): Action.RUNS_READ,
    ("POST", "/logged-models/search"): Action.RUNS_READ,
    ("POST", "/registered-models/create"): Action.MODELS_REGISTER,
    ("GET", "/registered-models/get"): Action.MODELS_READ,
    ("GET", "/registered-models/search"): Action.MODELS_READ,
    ("POST", "/model-versions/create"): Action.MODELS_REGISTER,
    ("GET", "/model-versions/get"): Action.MODELS_READ,
    ("GET", "/model-versions/search"): Action.MODELS_READ,
    ("POST", "/registered-models/alias"): Action.MODELS_PROMOTE,
    ("GET", "/registered-models/alias"): Action.MODELS_READ,
    ("DELETE", "/registered-models/alias"): Action.MODELS_PROMOTE,
}
MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
#: The artifact proxy and the catch-all answering every other MLflow path with
#: ``ENDPOINT_NOT_FOUND`` (a viewer may learn that a route does not exist).
MLFLOW_ARTIFACT_ROUTES: dict[tuple[str, str], Action] = {
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{artifact_path:path}"): Action.RUNS_WRITE,
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/{artifact_path:path}"): Action.RUNS_READ,
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"): Action.RUNS_READ,
}
MLFLOW_CATCH_ALL = (
    "/api/{version}/mlflow/{rest:path}",
    "/ajax-api/{version}/mlflow/{rest:path}",
    "/api/{version}/mlflow-artifacts/{rest:path}",
)
MLFLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Every route of the tracking server (``shipyard tracking-server``) but its health probes.
MLFLOW_HTTP_ROUTES: dict[tuple[str, str], Action] = {
    **{(m, f"{pre}{p}"): a for (m, p), a in MLFLOW_ROUTES.items() for pre in MLFLOW_PREFIXES},
    **MLFLOW_ARTIFACT_ROUTES,
    **{(m, p): Action.RUNS_READ for p in MLFLOW_CATCH_ALL for m in MLFLOW_METHODS},
}
HTTP_ROUTES.update(MLFLOW_HTTP_ROUTES)

#: ``shipyard`` command path -> its action. A group's entry covers commands of the group
#: that have none of their own (``monitor`` covers ``monitor drift``).
CLI_COMMANDS: dict[str, Action] = {
    "workspace init": Action.WORKSPACE_INIT,
    "workspace info": Action.WORKSPACE_READ,
    "runs list": Action.RUNS_READ,
    "runs show": Action.RUNS_READ,
    "runs compare": Action.RUNS_READ,
    "runs note": Action.RUNS_WRITE,
    "runs gc": Action.RUNS_DELETE,
    "experiments list": Action.RUNS_READ,
    "demo": Action.RUNS_WRITE,
    "init": Action.RUNS_WRITE,
    "run": Action.RUNS_WRITE,
    "data list": Action.DATA_METADATA,
    "data show": Action.DATA_METADATA,
    "data profile": Action.DATA_READ,
    "data diff": Action.DATA_READ,
    "data quarantine": Action.DATA_READ,  # raw PII columns masked without data.read_pii
    "lineage": Action.DATA_METADATA,
    "models register": Action.MODELS_REGISTER,
    "models list": Action.MODELS_READ,
    "models show": Action.MODELS_READ,
    "models promote": Action.MODELS_PROMOTE,
    "models rollback": Action.MODELS_ROLLBACK,
    "models history": Action.MODELS_READ,
    "models compare": Action.MODELS_READ,
    "models card": Action.REPORTS_READ,
    "models request-promotion": Action.MODELS_REQUEST_PROMOTION,
    "models approve": Action.MODELS_APPROVE,
    "models reject": Action.MODELS_REJECT,
    "models reviews": Action.MODELS_READ,
    "models review": Action.MODELS_READ,
    "comments add": Action.COMMENTS_WRITE,
    "comments list": Action.COMMENTS_READ,
    "activity": Action.WORKSPACE_READ,
    "serve": Action.SERVE_DEPLOY,
    "tracking-server": Action.SERVE_DEPLOY,
    "predict": Action.SCORE_BATCH,
    "export": Action.SERVE_DEPLOY,
    "deploy policy": Action.SERVE_POLICY,
    "loadtest": Action.LOADTEST,
    "privacy detect": Action.DATA_READ,
    "privacy kanon": Action.DATA_READ,
    "erase": Action.PRIVACY_ERASE,
    "monitor": Action.REPORTS_READ,  # alerts, history, report: reading only
    "monitor feedback": Action.MONITOR_WRITE,
    "monitor run": Action.MONITOR_RUN,
    "gc": Action.RUNS_DELETE,
    "budget": Action.COST_READ,
    "cost": Action.COST_READ,
    "keys": Action.KEYS_MANAGE,
    "backup": Action.BACKUP_MANAGE,  # a backup holds every row of the workspace
    "dr drill": Action.BACKUP_MANAGE,
    "users create": Action.USERS_MANAGE,
    "users list": Action.USERS_MANAGE,
    "users disable": Action.USERS_MANAGE,
    "tokens create": Action.TOKENS_MANAGE,
    "tokens list": Action.TOKENS_MANAGE,
    "tokens revoke": Action.TOKENS_MANAGE,
    "roles grant": Action.ROLES_MANAGE,
    "roles revoke": Action.ROLES_MANAGE,
    "roles list": Action.ROLES_MANAGE,
    "audit verify": Action.AUDIT_READ,
    "audit list": Action.AUDIT_READ,
    "audit anchor": Action.AUDIT_READ,
    "stream run": Action.SERVE_DEPLOY,  # a consumer publishes predictions, like a server
    "stream status": Action.SERVE_READ,
    "stream dead-letters": Action.DATA_READ,  # raw event payloads
    "stream replay": Action.SERVE_DEPLOY,
    "ui": Action.WORKSPACE_READ,  # each page then checks its own reader (UI_ROUTES)
}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an identity may do an action, and why (for messages and the audit log)."""

    allowed: bool
    reason: str


def allowed_roles(action: Action | str) -> frozenset[Role]:
    """The roles allowed to do ``action``; empty (deny) for anything not in the table."""
    try:
        return PERMISSIONS.get(Action(action), frozenset())
    except ValueError:
        return frozenset()


def check(identity: Identity, action: Action | str) -> Decision:
    """Decide whether ``identity`` may do ``action`` in its project."""
    roles = allowed_roles(action)
    if not roles:
        return Decision(False, f"{action!s} is not in the permission table, so it is denied")
    if identity.role is None:
        return Decision(False, f"{identity.name} holds no role in project {identity.project}")
    if identity.role in roles:
        return Decision(True, f"{identity.name} is {identity.role} in {identity.project}")
    weakest = min(roles, key=lambda r: r.rank)
    return Decision(
        False,
        f"{identity.name} is {identity.role} in project {identity.project}; "
        f"{action!s} needs {weakest} or above",
    )


def require(identity: Identity, action: Action | str) -> None:
    """Raise unless ``identity`` may do ``action``: the one check every caller uses.

    Raises:
        PermissionDenied: The identity's role (or lack of one) does not allow it.
    """
    decision = check(identity, action)
    if not decision.allowed:
        raise PermissionDenied(
            f"permission denied: {decision.reason}; an admin can grant it with "
            "`shipyard roles grant`"
        )


def route_action(method: str, path: str) -> Action | str | None:
    """The action of a server route (``HEAD`` counts as ``GET``), or None when unmapped."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    return HTTP_ROUTES.get((method, path))


def ui_route_action(method: str, path: str) -> Action | str | None:
    """The action of a web UI route (``HEAD`` counts as ``GET``), or None when unmapped."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    return UI_ROUTES.get((method, path))


def command_action(command: str) -> Action | None:
    """The action of a CLI command path, falling back to its group's entry; None if neither."""
    parts = command.split()
    while parts:
        found = CLI_COMMANDS.get(" ".join(parts))
        if found is not None:
            return found
        parts.pop()
    return None
