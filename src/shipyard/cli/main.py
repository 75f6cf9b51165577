"""The ``shipyard`` command: one Typer app, one module per command group.

User errors (any ``ShipyardError``) print one line and exit 2; ``--debug`` shows the traceback
instead. Nothing is built at import time: each command opens the workspace it needs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from shipyard.cli import demo, experiments, runs, workspace
from shipyard.cli.context import CliState, err_console
from shipyard.core.errors import ShipyardError

app = typer.Typer(
    name="shipyard",
    help="Shipyard: data, training, registry, serving, monitoring and cost in one tool.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(workspace.app, name="workspace")
app.add_typer(runs.app, name="runs")
app.add_typer(experiments.app, name="experiments")
app.command(name="demo")(demo.demo)


@app.callback()
def main(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir", "-C", help="Project folder (default: $SHIPYARD_PROJECT_DIR or cwd)."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Shipyard: data, training, registry, serving, monitoring and cost in one tool."""
    ctx.obj = CliState(project_dir=project_dir, debug=debug)


def run(argv: list[str] | None = None) -> None:
    """Entry point of the console script; exits with 2 on user errors."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args=args, prog_name="shipyard", standalone_mode=False)
    except ShipyardError as e:
        if "--debug" in args:
            raise
        err_console.print(f"[bold red]error:[/] {e.message}", highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
