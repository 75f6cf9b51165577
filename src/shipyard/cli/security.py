"""``shipyard users|tokens|roles|audit``: identities, API tokens, roles and the audit log.

Every command here needs ``admin`` in the project (see ``shipyard.cli.access`` for who the CLI
acts as). ``tokens create`` prints the token once; only its hash is stored. ``audit verify``
checks the keyed chain against the anchor file and exits 1 naming the first bad entry when the
chain is broken or shorter than the anchor; ``audit anchor`` moves the anchor to the head.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.access import accounts_of, authorize, project_name
from shipyard.cli.context import console, open_workspace
from shipyard.cli.render import JsonOption, when, write_json
from shipyard.cli.tables import fit
from shipyard.core.errors import InvalidArgument
from shipyard.security.permissions import Action

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.security.audit import Verification
    from shipyard.security.audit_chain import AuditChain
    from shipyard.store.security import SecurityStore

users_app = typer.Typer(help="Users and service accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (shown once, stored as hashes).", no_args_is_help=True)
roles_app = typer.Typer(
    help="Roles per project: viewer, data-scientist, ml-engineer, admin.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The audit log: list entries, verify and anchor the keyed chain.", no_args_is_help=True
)

ProjectOption = Annotated[
    str | None, typer.Option("--project", help="Project (default: name: in shipyard.yaml).")
]


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User or service-account name.")],
    service: Annotated[bool, typer.Option("--service", help="A service account.")] = False,
) -> None:
    """Create a user (or a service account with --service)."""
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.USERS_MANAGE, f"user:{name}")
        accounts_of(workspace).create_user(me, name, service=service)
    console.print(f"created {'service account' if service else 'user'} {escape(name)}")


@users_app.command("disable")
def users_disable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="User name.")]
) -> None:
    """Disable a user: its tokens stop working (servers notice within seconds)."""
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.USERS_MANAGE, f"user:{name}")
        accounts_of(workspace).disable_user(me, name)
    console.print(f"disabled {escape(name)}")


@users_app.command("list")
def users_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every user and service account."""
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.USERS_MANAGE, "users")
        users = accounts_of(workspace).users(me)
    if as_json:
        write_json(users)
        return
    table = Table(title="Users")
    for column in ("name", "kind", "created", "by", "disabled"):
        table.add_column(column)
    for u in users:
        disabled = when(u.disabled_ms) if u.disabled_ms else "-"
        table.add_row(escape(u.name), u.kind, when(u.created_ms), escape(u.created_by), disabled)
    console.print(fit(table, console, keys=("name",), optional=("by",)))


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="The user the token acts as.")],
    role: Annotated[
        str | None,
        typer.Option("--role", help="Also grant this role in the project (creates the user)."),
    ] = None,
    service: Annotated[
        bool, typer.Option("--service", help="Create the user as a service account.")
    ] = False,
    days: Annotated[float, typer.Option("--days", help="Lifetime in days.")] = 90,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expires.")] = False,
    description: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    project: ProjectOption = None,
) -> None:
    """Create an API token and print it once (bootstrap: --user admin --role admin)."""
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.TOKENS_MANAGE, f"user:{user}")
        accounts = accounts_of(workspace)
        if role is not None:
            accounts.ensure_user(me, user, service=service)
            accounts.grant(me, user, role, project or project_name(ctx))
        token = accounts.create_token(
            me, user, expires_in_days=None if no_expiry else days, description=description
        )
    console.print(f"token {token.token_id} for {escape(user)}; shown once, keep it secret:")
    print(token.text)  # plain stdout, no markup: scripts capture it


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens by id (never the secret): owner, dates, state."""
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.TOKENS_MANAGE, "tokens")
        tokens = accounts_of(workspace).tokens(me, user)
        now = workspace.clock.now_ms()
    if as_json:  # named fields only: a record may carry the secret's hash, never printed
        write_json(
            [
                {
                    "token_id": t.token_id,
                    "user": t.user_name,
                    "created_ms": t.created_ms,
                    "expires_ms": t.expires_ms,
                    "revoked_ms": t.revoked_ms,
                    "description": t.description,
                }
                for t in tokens
            ]
        )
        return
    table = Table(title="Tokens")
    for column in ("id", "user", "created", "expires", "state", "description"):
        table.add_column(column)
    for t in tokens:
        state = (
            "revoked"
            if t.revoked_ms
            else "expired"
            if t.expires_ms is not None and t.expires_ms <= now
            else "active"
        )
        table.add_row(
            t.token_id,
            escape(t.user_name),
            when(t.created_ms),
            when(t.expires_ms) if t.expires_ms else "never",
            state,
            escape(t.description or ""),
        )
    console.print(fit(table, console, keys=("id", "user"), optional=("created", "description")))


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a token by id (servers stop accepting it within seconds)."""
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.TOKENS_MANAGE, f"token:{token_id}")
        accounts_of(workspace).revoke_token(me, token_id)
    console.print(f"revoked {escape(token_id)}")


@roles_app.command("grant")
def roles_grant(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Argument(help="viewer, data-scientist, ml-engineer or admin.")],
    project: ProjectOption = None,
) -> None:
    """Give a user a role in the project (replacing the one it held)."""
    with open_workspace(ctx) as workspace:
        where = project or project_name(ctx)
        me = authorize(ctx, workspace, Action.ROLES_MANAGE, f"role:{user}@{where}")
        accounts_of(workspace).grant(me, user, role, where)
    console.print(f"{escape(user)} is {escape(role)} in {escape(where)}")


@roles_app.command("revoke")
def roles_revoke(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User name.")],
    project: ProjectOption = None,
) -> None:
    """Take a user's role in the project away."""
    with open_workspace(ctx) as workspace:
        where = project or project_name(ctx)
        me = authorize(ctx, workspace, Action.ROLES_MANAGE, f"role:{user}@{where}")
        accounts_of(workspace).revoke_role(me, user, where)
    console.print(f"{escape(user)} holds no role in {escape(where)} now")


@roles_app.command("list")
def roles_list(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Who holds which role where."""
    with open_workspace(ctx) as workspace:
        me = authorize(ctx, workspace, Action.ROLES_MANAGE, "roles")
        bindings = accounts_of(workspace).roles(me, project)
    if as_json:
        write_json(bindings)
        return
    table = Table(title="Roles")
    for column in ("project", "user", "role", "granted", "by"):
        table.add_column(column)
    for b in bindings:
        table.add_row(
            escape(b.project), escape(b.user_name), b.role, when(b.granted_ms), escape(b.granted_by)
        )
    console.print(fit(table, console, keys=("project", "user", "role"), optional=("by",)))


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH kept by hand: check against it instead of the anchor file."),
    ] = None,
) -> None:
    """Check the keyed chain against its anchor; exit 1 naming the first bad entry."""
    from shipyard.security.audit import verify
    from shipyard.security.audit_anchor import Anchor

    pinned = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise InvalidArgument("--anchor is SEQ:HASH, as printed by `shipyard audit verify`")
        pinned = Anchor(int(seq), digest)
    with open_workspace(ctx) as workspace:
        authorize(ctx, workspace, Action.AUDIT_READ, "audit")
        store = accounts_of(workspace).store
        chain = _chain(store)
        if pinned is None and chain.anchors is not None:
            pinned = chain.anchors.read()
        result = verify(store, anchor=pinned)
    _report(result, None if anchor is not None or chain.anchors is None else chain.anchors.path)


@audit_app.command("anchor")
def audit_anchor(ctx: typer.Context) -> None:
    """Verify the chain, then anchor its head in the anchor file (outside the database)."""
    from shipyard.security.audit import verify

    with open_workspace(ctx) as workspace:
        authorize(ctx, workspace, Action.AUDIT_READ, "audit")
        store = accounts_of(workspace).store
        chain = _chain(store)
        if chain.anchors is None:
            raise InvalidArgument("this workspace keeps no audit anchor")
        result = verify(store, anchor=chain.anchors.read())
        if result.ok:
            chain.write_anchor(store.get_audit(result.head_seq))
    _report(result, chain.anchors.path)
    if result.head_seq:
        console.print(f"anchored in {escape(str(chain.anchors.path))}")


def _chain(store: SecurityStore) -> AuditChain:
    from shipyard.security.audit_chain import AuditChain

    assert isinstance(store.sealer, AuditChain)
    return store.sealer


def _report(result: Verification, anchor_path: Path | None) -> None:
    if not result.ok:
        console.print(f"[red]audit log broken at entry {result.first_bad}[/]: {result.problem}")
        raise typer.Exit(1)
    against = (
        "" if result.anchor_seq is None else f", up to the anchor at entry {result.anchor_seq}"
    )
    console.print(f"[green]ok[/]: {result.entries} entries verified{against}")
    if result.warning is not None:
        where = "" if anchor_path is None else f" (looked for {anchor_path})"
        console.print(f"[yellow]warning[/]: {escape(result.warning)}{escape(where)}")
    console.print(f"head {result.head_seq}:{result.head_hash}")


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. models.promote.")
    ] = None,
    obj: Annotated[
        str | None, typer.Option("--object", help="Only objects starting with this.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this ISO time (UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this ISO time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Newest N entries.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Audit entries, oldest first: who, what, on what, when, from where, outcome."""
    with open_workspace(ctx) as workspace:
        authorize(ctx, workspace, Action.AUDIT_READ, "audit")
        entries = accounts_of(workspace).store.list_audit(
            actor=actor,
            action=action,
            object_prefix=obj,
            since_ms=_epoch_ms(since, "--since"),
            until_ms=_epoch_ms(until, "--until"),
            limit=limit,
        )
    if as_json:
        for e in entries:
            row = {k: getattr(e, k) for k in e.__dataclass_fields__ if k != "detail_json"}
            print(json.dumps({**row, "detail": json.loads(e.detail_json)}))
        return
    table = Table(title="Audit log")
    for column in ("#", "when", "actor", "action", "object", "outcome", "from", "detail"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            str(e.seq),
            when(e.at_ms),
            escape(e.actor),
            escape(e.action),
            escape(e.object),
            e.outcome if e.outcome == "ok" else f"[red]{escape(e.outcome)}[/]",
            escape(e.source),
            escape(e.detail_json if e.detail_json != "{}" else ""),
        )
    keys = ("#", "action")
    console.print(fit(table, console, keys=keys, optional=("detail", "from")))


def _epoch_ms(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidArgument(f"{option} {text!r} is not an ISO time like 2026-01-31T12:00") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)
