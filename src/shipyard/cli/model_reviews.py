"""``shipyard models request-promotion | approve | reject | reviews | review``: four eyes.

Under a ``reviews:`` rule of ``shipyard.yaml`` an alias moves only when someone other than the
requester approves (``shipyard.registry.reviews``). ``approve`` by the requester exits 2 with
one line; a stale request is closed and refused (exit 2) with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.models import _frame, _print_result, _registry, app
from shipyard.cli.render import JsonOption, jsonable, when, write_json
from shipyard.cli.tables import fit

if TYPE_CHECKING:
    from shipyard.registry.reviews import ReviewOutcome, ReviewService
    from shipyard.track.workspace import Workspace

RequestId = Annotated[str, typer.Argument(help="The request id (`shipyard models reviews`).")]
Comment = Annotated[str | None, typer.Option(help="Why; Markdown, kept with the decision.")]


def _reviews(workspace: Workspace) -> ReviewService:
    from shipyard.registry.reviews import ReviewService

    return ReviewService(_registry(workspace))


@app.command("request-promotion")
def request_promotion(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="The version to promote.")],
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "production",
    margin: Annotated[float, typer.Option(help="How much better than the holder.")] = 0.0,
    reason: Annotated[str | None, typer.Option(help="Why; shown to the reviewers.")] = None,
    test_dataset: Annotated[
        str | None, typer.Option(help="Dataset id to judge on (default: its test split).")
    ] = None,
) -> None:
    """Ask for a reviewed promotion: the gate runs now, reviewers see its evidence.

    Exits 1 when the gate refuses the candidate (no request is made).
    """
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        result = _reviews(workspace).request_promotion(
            name,
            version,
            actor=acting_identity(ctx),
            alias=alias,
            reason=reason,
            margin=margin,
            test_data=_frame(workspace, test_dataset),
        )
    _print_result(result)
    if result.request_id is None:
        raise typer.Exit(1)
    console.print(f"request id: {result.request_id}")


@app.command()
def approve(
    ctx: typer.Context,
    request_id: RequestId,
    comment: Comment = None,
    test_dataset: Annotated[
        str | None, typer.Option(help="Dataset id the gate judges on (default: test split).")
    ] = None,
) -> None:
    """Approve a promotion request (not your own); the last approval needed moves the alias.

    Exits 1 if the gate now refuses the candidate (the request closes as refused).
    """
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        outcome = _reviews(workspace).approve(
            request_id,
            actor=acting_identity(ctx),
            comment=comment,
            test_data=_frame(workspace, test_dataset),
        )
    _print_outcome(outcome)
    if outcome.request.state == "refused":
        raise typer.Exit(1)


@app.command()
def reject(
    ctx: typer.Context,
    request_id: RequestId,
    comment: Annotated[str, typer.Option(help="Why it is rejected (required).")],
) -> None:
    """Reject a promotion request (not your own), saying why; the alias stays."""
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        outcome = _reviews(workspace).reject(
            request_id, actor=acting_identity(ctx), comment=comment
        )
    _print_outcome(outcome)


@app.command("reviews")
def list_reviews(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    state: Annotated[
        str | None, typer.Option(help="open, approved, rejected, stale or refused.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
    as_json: JsonOption = False,
) -> None:
    """Promotion requests, newest first: who asked, for what, where they stand."""
    with open_workspace(ctx) as workspace:
        requests = _reviews(workspace).list(model=model, state=state, limit=limit)
    if as_json:
        write_json(requests)
        return
    if not requests:
        console.print("no promotion requests; `shipyard models request-promotion` makes one")
        return
    table = Table(title="Promotion requests")
    for column in ("id", "model", "alias", "from", "to", "state", "by", "when", "note"):
        table.add_column(column)
    styles = {"open": "yellow", "approved": "green", "rejected": "red", "refused": "red"}
    for r in requests:
        style = styles.get(r.state, "dim")
        table.add_row(
            r.request_id,
            escape(r.name),
            escape(r.alias),
            str(r.from_version or "-"),
            str(r.version),
            f"[{style}]{r.state}[/]",
            escape(r.requested_by),
            when(r.created_ms),
            escape(r.closed_note or r.reason or ""),
        )
    console.print(fit(table, console, keys=("id", "state"), optional=("note", "when", "from")))


@app.command("review")
def show_review(ctx: typer.Context, request_id: RequestId, as_json: JsonOption = False) -> None:
    """One promotion request: its evidence, decisions and whether it went stale."""
    with open_workspace(ctx) as workspace:
        detail = _reviews(workspace).detail(request_id)
    if as_json:
        write_json(jsonable(detail))
        return
    r = detail.request
    console.print(
        f"[bold]{r.request_id}[/] {escape(r.target)}: {r.from_version or '-'} -> {r.version}, "
        f"{r.state}; {detail.approvals}/{r.approvals_needed} approval(s) from "
        f"{', '.join(r.approver_roles)}"
    )
    if detail.stale_reason:
        console.print(f"[red]stale:[/] {escape(detail.stale_reason)}")
    gate: dict[str, Any] = detail.evidence.body.get("gate") or {}
    console.print(
        f"gate on {gate.get('rows', '?')} rows ({escape(str(gate.get('metric')))}): candidate "
        f"{gate.get('candidate_score')}, holder {gate.get('champion_score')}"
    )
    cost = detail.evidence.body.get("cost") or {}
    if "per_thousand_usd" in cost:
        console.print(f"cost per 1,000 predictions: {cost['per_thousand_usd']} USD")
    console.print(f"evidence sha256 {detail.evidence.sha256}")
    for d in detail.decisions:
        note = f": {escape(d.comment)}" if d.comment else ""
        console.print(f"  {when(d.at_ms)} {d.decision} by {escape(d.actor)}{note}")


def _print_outcome(outcome: ReviewOutcome) -> None:
    if outcome.promotion is not None:
        _print_result(outcome.promotion)
    r = outcome.request
    colour = {"approved": "green", "open": "yellow"}.get(r.state, "red")
    console.print(f"[{colour}]request {r.request_id} is {r.state}[/] ({escape(r.target)})")
