"""``shipyard experiments``: the groups runs belong to."""

from __future__ import annotations

import typer
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.render import JsonOption, when, write_json
from shipyard.cli.tables import fit

app = typer.Typer(help="List experiments.", no_args_is_help=True)


@app.command(name="list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List experiments with their number of runs."""
    with open_workspace(ctx) as workspace:
        experiments = workspace.list_experiments()
    if as_json:
        write_json(experiments)
        return
    if not experiments:
        console.print("no experiments yet: start a run with shipyard.start_run(...)")
        return
    table = Table(title="Experiments")
    table.add_column("name", style="bold")
    table.add_column("runs", justify="right")
    table.add_column("created")
    for experiment in experiments:
        table.add_row(experiment.name, str(experiment.run_count), when(experiment.created_ms))
    console.print(fit(table, console, keys=("name",)))
