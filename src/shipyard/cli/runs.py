"""``shipyard runs``: list, show, compare, annotate and garbage-collect runs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shipyard.cli.context import console, open_workspace
from shipyard.cli.render import (
    JsonOption,
    duration,
    jsonable,
    number,
    size,
    status,
    when,
    write_json,
)
from shipyard.cli.tables import fit
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.store.entities import Run

app = typer.Typer(help="List, inspect, compare and clean up runs.", no_args_is_help=True)

_MAX_METRIC_COLUMNS = 4


@app.command(name="list")
def list_(
    ctx: typer.Context,
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Only this experiment (repeat).")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.model = 'lgbm'\""),
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.auc desc' (repeat).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many runs.")
    ] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of a table.")
    ] = False,
) -> None:
    """List runs, newest first, with their main metrics."""
    with open_workspace(ctx) as workspace:
        runs = workspace.search_runs(
            where, experiments=experiment, order_by=order_by or (), limit=limit
        )
    if as_json:
        for run in runs:
            write_json(run)
        return
    if not runs:
        console.print("no runs match")
        return
    metric_keys = _common_keys([r.metrics for r in runs])[:_MAX_METRIC_COLUMNS]
    table = Table(title=f"Runs ({len(runs)})")
    for column in ("run", "name", "experiment", "status", "started", "duration"):
        table.add_column(column, no_wrap=column in ("run", "started"))
    for key in metric_keys:
        table.add_column(key, justify="right")
    for run in runs:
        table.add_row(
            run.run_id[:8],
            _indent(run) + run.name,
            run.experiment,
            status(run.status),
            when(run.start_ms),
            duration(run.start_ms, run.end_ms),
            *(number(run.metrics.get(k)) for k in metric_keys),
        )
    # Narrow terminals lose the least telling columns first: the 3rd and 4th metrics before
    # the start time, the 2nd metric last; the run id and name always stay whole.
    optional = ("duration", "experiment", *metric_keys[:1:-1], "started", *metric_keys[1:2])
    console.print(fit(table, console, keys=("run", "name"), optional=optional))


@app.command()
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix (6+ characters).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show one run: status, params, metrics, tags, artifacts, notes and resources."""
    with open_workspace(ctx) as workspace:
        run = workspace.get_run(run_id)
        artifacts = workspace.list_artifacts(run.run_id)
        notes = workspace.notes(run.run_id)
        children = workspace.search_runs(f"parent_run_id = '{run.run_id}'", limit=None)
    if as_json:
        document = jsonable(run) | {
            "artifacts": [dataclasses.asdict(a) for a in artifacts],
            "notes": [dataclasses.asdict(n) for n in notes],
            "children": [c.run_id for c in children],
        }
        write_json(document, indent=2)
        return
    resources = run.resources
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column()
    rows = [
        ("run id", run.run_id),
        ("experiment", run.experiment),
        ("status", status(run.status)),
        ("started", when(run.start_ms)),
        ("duration", duration(run.start_ms, run.end_ms)),
        ("parent", run.parent_run_id or "-"),
        ("host / pid", f"{run.host} / {run.pid}"),
        ("user", run.user),
        ("code", f"{run.git_commit or '-'}{' (dirty)' if run.git_dirty else ''}"),
        ("python", str(run.environment.get("python", "-"))),
        ("cpu", f"{number(resources.cpu_seconds)} s" if resources.cpu_seconds is not None else "-"),
        ("peak memory", size(resources.peak_rss_bytes)),
    ]
    for key, value in rows:
        summary.add_row(key, value)
    console.print(Panel(summary, title=f"[bold]{run.name}[/]", expand=False))
    if run.error:
        console.print(Panel(Text(run.error.strip()[-2000:]), title="error", style="red"))
    _print_mapping("Params", {k: escape(v) for k, v in run.params.items()})
    _print_mapping("Metrics (latest)", {k: number(v) for k, v in run.metrics.items()})
    _print_mapping("Tags", {k: escape(v) for k, v in run.tags.items()})
    if artifacts:
        table = Table(title="Artifacts")
        for column in ("name", "size", "type", "sha256"):
            table.add_column(column)
        for artifact in artifacts:
            table.add_row(
                escape(artifact.name),
                size(artifact.size_bytes),
                escape(artifact.media_type),
                artifact.digest[:12],
            )
        console.print(table)
    if children:
        console.print(
            f"[bold]Child runs[/] ({len(children)}): "
            + ", ".join(f"{c.name} ({c.run_id[:8]})" for c in children[:20])
        )
    for note in notes:
        title = f"note by {escape(note.author)}, {when(note.created_ms)}"
        console.print(Panel(Text(note.text), title=title, expand=False))


@app.command()
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids or prefixes.")],
    as_json: JsonOption = False,
) -> None:
    """Compare runs side by side; differing params highlighted, best metric values in bold.

    "Best" is the lowest value for losses, errors, latency and cost, the highest otherwise.
    """
    if len(run_ids) < 2:
        raise InvalidArgument("compare needs at least two run ids")
    with open_workspace(ctx) as workspace:
        runs = [workspace.get_run(r) for r in run_ids]
    if as_json:
        write_json(runs)
        return
    table = Table(title="Run comparison")
    table.add_column("", style="bold")
    for run in runs:
        table.add_column(f"{run.name}\n{run.run_id[:8]}", justify="right")
    table.add_row("status", *(status(r.status) for r in runs))
    table.add_row("duration", *(duration(r.start_ms, r.end_ms) for r in runs))
    for key in sorted({k for r in runs for k in r.params}):
        values = [r.params.get(key, "-") for r in runs]
        style = "yellow" if len(set(values)) > 1 else None
        table.add_row(f"params.{key}", *(escape(v) for v in values), style=style)
    for key in sorted({k for r in runs for k in r.metrics}):
        raw = [r.metrics.get(key) for r in runs]
        present = [v for v in raw if v is not None and v == v]
        pick = min if lower_is_better(key) else max
        best = pick(present) if present else None
        cells = [
            f"[bold]{number(v)}[/]"
            if v is not None and v == best and len(present) > 1
            else number(v)
            for v in raw
        ]
        table.add_row(f"metrics.{key}", *cells)
    console.print(table)


@app.command()
def note(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix.")],
    text: Annotated[str, typer.Argument(help="The note (Markdown welcome).")],
) -> None:
    """Add a note to a run, running or ended."""
    from shipyard.cli.access import acting_identity

    with open_workspace(ctx) as workspace:
        run = workspace.get_run(run_id)
        # The note names the acting identity (the token's user), not the OS account.
        workspace.add_note(run.run_id, text, author=acting_identity(ctx).name)
    console.print(f"note added to {run.name} ({run.run_id[:8]})")


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would change.")
    ] = False,
) -> None:
    """Mark runs whose process died (no live pid, or a stale heartbeat) as killed."""
    with open_workspace(ctx) as workspace:
        from shipyard.track.gc import find_dead_runs, mark_killed  # psutil: only `runs gc`

        dead = find_dead_runs(workspace)
        changed = 0 if dry_run else mark_killed(workspace, dead)
    if not dead:
        console.print("no dead runs found")
        return
    table = Table(title="Dead runs" + (" (dry run)" if dry_run else ""))
    for column in ("run", "name", "started", "last heartbeat", "why"):
        table.add_column(column)
    for item in dead:
        run = item.run
        table.add_row(
            run.run_id[:8], run.name, when(run.start_ms), when(run.heartbeat_ms), item.reason
        )
    console.print(table)
    if not dry_run:
        console.print(f"marked {changed} run(s) killed")


_LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "rmse", "mape", "brier", "latency", "cost")


def lower_is_better(key: str) -> bool:
    """Guess a metric's direction from its name: losses, errors, latency and cost go down."""
    name = key.lower()
    return any(word in name for word in _LOWER_IS_BETTER)


def _common_keys(mappings: list[dict[str, float]]) -> list[str]:
    counts: dict[str, int] = {}
    for mapping in mappings:
        for key in mapping:
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))


def _indent(run: Run) -> str:
    return "└ " if run.parent_run_id else ""


def _print_mapping(title: str, mapping: dict[str, str]) -> None:
    if not mapping:
        return
    table = Table(title=title)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in sorted(mapping):
        table.add_row(key, mapping[key])
    console.print(table)
