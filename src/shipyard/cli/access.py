"""Who the CLI acts as, the one permission check before a command acts, and its audit entry.

With ``SHIPYARD_TOKEN`` set the CLI acts as that token's user, with the role the user holds
in this project (``name:`` in shipyard.yaml, ``project`` by default). Without a token:

- on the embedded workspace (SQLite in the project folder) the CLI acts as the local OS user
  with role ``admin`` -- whoever can write those files controls them anyway;
- on a shared store (PostgreSQL) it acts as the local OS user with role ``admin`` only while no
  usable token exists (to bootstrap the first admin token), and refuses otherwise.

``enforce`` runs once for every command, from the CLI's entry callback: it finds the command
the line names, looks its action up in the permission table (``CLI_COMMANDS``; a command not in
it is refused), works out who is acting and refuses (audited) what that identity may not do. A
token that is not accepted is an error for every command. Services then check again, on their
own, what they are asked to change (``security.guard``): the CLI's check is the first line, not
the only one.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import PermissionDenied, ShipyardError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import typer

    from shipyard.core.settings import Settings
    from shipyard.security.accounts import Accounts
    from shipyard.security.identities import Identity
    from shipyard.security.permissions import Action
    from shipyard.store.sql import SqlStore
    from shipyard.track.workspace import Workspace

TOKEN_ENV = "SHIPYARD_TOKEN"  # noqa: S105 - the variable's name, not a secret
DEFAULT_PROJECT = "project"


def project_name(ctx: typer.Context) -> str:
    """The project whose role bindings apply: ``name:`` in shipyard.yaml, else ``project``."""
    from shipyard.cli.project import project_dir
    from shipyard.core.project_file import read_project_name

    path = project_dir(ctx) / "shipyard.yaml"
    if not path.is_file():
        return DEFAULT_PROJECT
    return read_project_name(path)


def accounts_of(workspace: Workspace) -> Accounts:
    """The security service over ``workspace``'s store."""
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store

    store = security_store(workspace.settings, workspace.store, clock=workspace.clock)
    return Accounts(store, clock=workspace.clock)


def acting_identity(ctx: typer.Context, workspace: Workspace | None = None) -> Identity:
    """Who this command runs as (see the module docstring); worked out once per command line.

    Raises:
        PermissionDenied: ``SHIPYARD_TOKEN`` was not accepted, or a shared store needs one.
    """
    from shipyard.cli.context import CliState

    state = ctx.find_object(CliState)
    if state is not None and state.identity is not None:
        return state.identity
    identity = _identify(ctx)
    if state is not None:
        state.identity = identity
    return identity


def _identify(ctx: typer.Context) -> Identity:
    """Authenticate ``$SHIPYARD_TOKEN``, or fall back to the local operator where allowed.

    Opens the metadata store only when it must (a token, or a shared store): the embedded
    workspace without a token needs nothing, so ``workspace init`` and ``keys`` work before a
    workspace exists or while its master key is missing.
    """
    from shipyard.security.identities import AuthenticationFailed, local_identity

    source = f"cli:{socket.gethostname()}"
    token = os.environ.get(TOKEN_ENV, "").strip()
    store = _sql_store(ctx)
    embedded = store is None
    if embedded and not token:
        return local_identity(_project_or_default(ctx), source)
    project = project_name(ctx)  # with a token the project decides the role: no guessing
    opened = store or _open_store(ctx)
    try:
        accounts = _accounts(ctx, opened)
        if token:
            try:
                return accounts.authenticate(token, project=project, source=source)
            except AuthenticationFailed as e:
                raise PermissionDenied(
                    f"${TOKEN_ENV} was not accepted ({e.reason}); ask an admin for a new token"
                ) from None
        if accounts.store.count_usable_tokens(accounts.clock.now_ms()) == 0:
            return local_identity(project, source)  # bootstrap: no one holds a token yet
    finally:
        opened.close()
    raise PermissionDenied(
        f"this workspace's store is shared: set ${TOKEN_ENV} to your API token "
        "(an admin creates one with `shipyard tokens create`)"
    )


def enforce(ctx: typer.Context, command: str) -> Identity:
    """Check ``command`` (``models promote``) against the table as the acting identity.

    Called once per command line by the entry callback; a denial is audited (actor, the
    command's action, object ``cli:<command>``) and raised.

    Raises:
        PermissionDenied: The token was not accepted, the command is not in the permission
            table, or the acting identity's role does not allow its action.
    """
    from shipyard.security.permissions import check, command_action

    action = command_action(command)
    if action is None:
        raise PermissionDenied(
            f"`shipyard {command}` has no entry in the permission table, so it is denied"
        )
    identity = acting_identity(ctx)
    decision = check(identity, action)
    if decision.allowed:
        return identity
    from shipyard.security import audit  # only a denial writes: allowed commands skip it

    store = _open_store(ctx)
    try:
        accounts = _accounts(ctx, store)
        audit.record(
            accounts.store,
            identity,
            action,
            f"cli:{command}",
            outcome="denied",
            clock=accounts.clock,
        )
    finally:
        store.close()
    raise PermissionDenied(
        f"permission denied: {decision.reason}; an admin can grant it with `shipyard roles grant`"
    )


def _project_or_default(ctx: typer.Context) -> str:
    """The project name; for the local operator, the default when shipyard.yaml is unreadable.

    The local operator is admin whatever the project, and ``shipyard init --force`` must be
    able to repair a broken project file.
    """
    try:
        return project_name(ctx)
    except ShipyardError:
        return DEFAULT_PROJECT


def _sql_store(ctx: typer.Context) -> SqlStore | None:
    """The shared store, opened; None for the embedded SQLite store (opened only on demand)."""
    if _store_url(ctx).startswith("sqlite"):
        return None
    return _open_store(ctx)


def _settings(ctx: typer.Context) -> Settings:
    from shipyard.cli.context import CliState
    from shipyard.core.settings import load_settings

    state = ctx.find_object(CliState)
    overrides: dict[str, Any] = {}
    if state is not None and state.project_dir is not None:
        overrides["project_dir"] = state.project_dir
    return load_settings(**overrides)


def _store_url(ctx: typer.Context) -> str:
    return _settings(ctx).resolved_store_url


def _open_store(ctx: typer.Context) -> SqlStore:
    from shipyard.store.sql import SqlStore

    return SqlStore(_store_url(ctx))


def _accounts(ctx: typer.Context, store: SqlStore) -> Accounts:
    """The security service over ``store``, its audit entries sealed as the settings say."""
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store

    return Accounts(security_store(_settings(ctx), store))


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
