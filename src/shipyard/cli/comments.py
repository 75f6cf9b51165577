"""``shipyard comments add | list`` and ``shipyard activity``: discussion and what changed.

Targets are named ``KIND ID``: ``run <run id>``, ``dataset <dataset version id>``, ``model
name:version`` or ``review <request id>``. Bodies are Markdown, stored as written; ``list``
prints them as text (the terminal escapes nothing it does not show). ``@user`` mentions go to
the notifiers of the ``monitor:`` section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.render import JsonOption, when, write_json
from shipyard.cli.tables import fit

if TYPE_CHECKING:
    from shipyard.track.comments import CommentService
    from shipyard.track.workspace import Workspace

app = typer.Typer(
    help="Comments on runs, datasets, model versions and reviews.", no_args_is_help=True
)

Kind = Annotated[str, typer.Argument(help="run, dataset, model or review.")]
Target = Annotated[str, typer.Argument(help="Its id (a model version is name:version).")]


def comment_service(workspace: Workspace, *, deliver: bool = True) -> CommentService:
    """The workspace's comments; with ``deliver``, mentions go to its project's notifiers."""
    if deliver:
        from shipyard.monitor.mentions import workspace_comments

        return workspace_comments(workspace)
    from shipyard.security.audit_chain import security_store
    from shipyard.track.comments import CommentService

    security = security_store(workspace.settings, workspace.store, clock=workspace.clock)
    return CommentService(workspace.store, security, clock=workspace.clock)


@app.command()
def add(
    ctx: typer.Context,
    kind: Kind,
    target: Target,
    body: Annotated[str, typer.Argument(help="The comment, in Markdown; @user mentions.")],
) -> None:
    """Comment on a run, dataset version, model version or promotion request."""
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        comment = comment_service(workspace).add(kind, target, body, actor=acting_identity(ctx))
    mentioned = f"; mentioned {', '.join(comment.mentions)}" if comment.mentions else ""
    console.print(f"comment {comment.comment_id} on {escape(kind)} {escape(target)}{mentioned}")


@app.command("list")
def list_comments(
    ctx: typer.Context, kind: Kind, target: Target, as_json: JsonOption = False
) -> None:
    """The comments on one target, oldest first."""
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        comments = comment_service(workspace, deliver=False).for_target(
            kind, target, actor=acting_identity(ctx)
        )
    if as_json:
        write_json(comments)
        return
    if not comments:
        console.print(f"no comments on {escape(kind)} {escape(target)}")
        return
    for c in comments:
        console.print(f"[bold]{escape(c.author)}[/] {when(c.created_ms)}")
        console.print(escape(c.body), markup=False, highlight=False)
        console.print()


def activity(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many items.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """What changed recently: runs, datasets, versions, alias moves, comments, reviews."""
    from shipyard.store.activity import recent_activity

    with open_workspace(ctx) as workspace:
        items = recent_activity(workspace.store, limit=limit)
    if as_json:
        write_json(items)
        return
    table = Table(title="Activity")
    for column in ("when", "kind", "who", "what"):
        table.add_column(column)
    for i in items:
        table.add_row(when(i.at_ms), i.kind, escape(i.actor or "-"), escape(i.summary))
    console.print(fit(table, console, keys=("when", "what")) if items else "nothing yet")
