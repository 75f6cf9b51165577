"""Who the CLI acts as, the one permission check before a command acts, and its audit entry.

With ``SHIPYARD_TOKEN`` set the CLI acts as that token's user, with the role the user holds
in this project (``name:`` in shipyard.yaml, ``project`` by default). Without a token:

- on the embedded workspace (SQLite in the project folder) the CLI acts as the local OS user
  with role ``admin`` -- whoever can write those files controls them anyway;
- on a shared store (PostgreSQL) it acts as the local OS user with role ``admin`` only while no
  usable token exists (to bootstrap the first admin token), and refuses otherwise.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import PermissionDenied

if TYPE_CHECKING:
    from collections.abc import Mapping

    import typer

    from shipyard.security.accounts import Accounts
    from shipyard.security.identities import Identity
    from shipyard.security.permissions import Action
    from shipyard.track.workspace import Workspace

TOKEN_ENV = "SHIPYARD_TOKEN"  # noqa: S105 - the variable's name, not a secret
DEFAULT_PROJECT = "project"


def project_name(ctx: typer.Context) -> str:
    """The project whose role bindings apply: ``name:`` in shipyard.yaml, else ``project``."""
    from shipyard.cli.project import project_dir
    from shipyard.pipeline.project import load_project

    folder = project_dir(ctx)
    if not (folder / "shipyard.yaml").is_file():
        return DEFAULT_PROJECT
    return load_project(folder).spec.name


def accounts_of(workspace: Workspace) -> Accounts:
    """The security service over ``workspace``'s store."""
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store

    store = security_store(workspace.settings, workspace.store.engine, clock=workspace.clock)
    return Accounts(store, clock=workspace.clock)


def acting_identity(ctx: typer.Context, workspace: Workspace) -> Identity:
    """Who this command runs as (see the module docstring).

    Raises:
        PermissionDenied: ``SHIPYARD_TOKEN`` was not accepted, or a shared store needs one.
    """
    from shipyard.security.identities import AuthenticationFailed, local_identity

    project = project_name(ctx)
    source = f"cli:{socket.gethostname()}"
    accounts = accounts_of(workspace)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        try:
            return accounts.authenticate(token, project=project, source=source)
        except AuthenticationFailed as e:
            raise PermissionDenied(
                f"${TOKEN_ENV} was not accepted ({e.reason}); ask an admin for a new token"
            ) from None
    if workspace.store.engine.dialect.name == "sqlite":
        return local_identity(project, source)
    if accounts.store.count_usable_tokens(workspace.clock.now_ms()) == 0:
        return local_identity(project, source)  # bootstrap: no one holds a token yet
    raise PermissionDenied(
        f"this workspace's store is shared: set ${TOKEN_ENV} to your API token "
        "(an admin creates one with `shipyard tokens create`)"
    )


def authorize(ctx: typer.Context, workspace: Workspace, action: Action, obj: str = "-") -> Identity:
    """Check the acting identity against the permission table; a denial is audited.

    Raises:
        PermissionDenied: The identity may not do ``action``.
    """
    from shipyard.security import audit
    from shipyard.security.permissions import check, require

    identity = acting_identity(ctx, workspace)
    if not check(identity, action).allowed:
        audit.record(
            accounts_of(workspace).store,
            identity,
            action,
            obj,
            outcome="denied",
            clock=workspace.clock,
        )
    require(identity, action)
    return identity


def record(
    workspace: Workspace,
    identity: Identity | str,
    action: Action | str,
    obj: str,
    *,
    outcome: str = "ok",
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append an audit entry for a change a command made."""
    from shipyard.security import audit

    audit.record(
        accounts_of(workspace).store,
        identity,
        action,
        obj,
        outcome=outcome,
        detail=detail,
        clock=workspace.clock,
    )
