"""``shipyard workspace``: create a workspace and show where it keeps things."""

from __future__ import annotations

import typer
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.render import JsonOption, size, write_json
from shipyard.store.artifacts.local import LocalBlobStore

app = typer.Typer(
    help="Create and inspect the workspace (metadata store + artifact root).", no_args_is_help=True
)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the workspace (store and artifact root) if it does not exist yet."""
    with open_workspace(ctx) as workspace:
        details = workspace.describe()
        if isinstance(workspace.blobs, LocalBlobStore):  # blob stores create folders lazily
            workspace.blobs.root.mkdir(parents=True, exist_ok=True)
    console.print(f"[green]workspace ready[/] at {details['project_dir']}")
    console.print(f"  store:     {details['store_url']}")
    console.print(f"  artifacts: {details['artifact_root']}")


@app.command()
def info(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the store, artifact root, schema version and how much is stored."""
    with open_workspace(ctx) as workspace:
        details = workspace.describe()
        experiments = workspace.list_experiments()
        run_count = sum(e.run_count for e in experiments)
        metric_count = workspace.store.count_metrics()
        digests = list(workspace.blobs.iter_digests())
        blob_bytes = sum(workspace.blobs.size(d) for d in digests)
        revision = workspace.store.schema_revision()
    if as_json:
        write_json(
            {
                **details,
                "schema_revision": revision,
                "experiments": len(experiments),
                "runs": run_count,
                "metric_values": metric_count,
                "blobs": len(digests),
                "blob_bytes": blob_bytes,
            }
        )
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in details.items():
        table.add_row(key.replace("_", " "), value)
    table.add_row("schema revision", revision or "-")
    table.add_row("experiments", str(len(experiments)))
    table.add_row("runs", str(run_count))
    table.add_row("metric values", str(metric_count))
    table.add_row("blobs", f"{len(digests)} ({size(blob_bytes)})")
    console.print(table)
