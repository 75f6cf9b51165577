"""``shipyard init`` and ``shipyard run``: the project file and its pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import CliState, console, open_workspace
from shipyard.core.errors import AlreadyExists
from shipyard.core.settings import PROJECT_FILE


def _project_dir(ctx: typer.Context) -> Path:
    state: CliState = ctx.obj
    if state is not None and state.project_dir is not None:
        return state.project_dir
    from shipyard.core.settings import load_settings

    return load_settings().project_dir


def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter shipyard.yaml in the project folder."""
    from shipyard.pipeline.starter import STARTER

    path = _project_dir(ctx) / PROJECT_FILE
    if path.exists() and not force:
        raise AlreadyExists(f"{path} exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER, encoding="utf-8")
    console.print(f"wrote {escape(str(path))}: edit its sources, then run [bold]shipyard run[/]")


def run(ctx: typer.Context) -> None:
    """Run the pipeline of shipyard.yaml: ingest, validate, clean, features, datasets."""
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    from shipyard.pipeline.project import load_project
    from shipyard.pipeline.runner import run_pipeline

    project = load_project(_project_dir(ctx))
    with (
        open_workspace(ctx) as workspace,
        Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as progress,
    ):
        tasks: dict[str, TaskID] = {}

        def on_stage(name: str, state: str) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=1)
            label = {"start": name, "cached": f"{name} (cached)", "done": name}[state]
            progress.update(tasks[name], description=label, completed=0 if state == "start" else 1)

        report = run_pipeline(workspace, project, on_stage=on_stage)
    table = Table(title=f"Pipeline run {report.run_id[:8]}")
    numeric = ("rows in", "rows out", "quarantined", "deduplicated", "rows/s")
    for column in ("stage", *numeric, "time", "dataset"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for stage in report.stages:
        speed = f"{stage.rows_in / stage.seconds:,.0f}" if stage.seconds and stage.rows_in else "-"
        table.add_row(
            stage.name,
            f"{stage.rows_in:,}",
            f"{stage.rows_out:,}",
            f"{stage.rows_quarantined:,}",
            f"{stage.rows_deduplicated:,}",
            speed,
            "cached" if stage.cached else f"{stage.seconds:.2f}s",
            (stage.dataset_id or "-")[:12],
        )
    console.print(table)
    for stage in report.stages:
        for warning in stage.warnings:
            console.print(f"[yellow]warning[/] {escape(stage.name)}: {escape(warning)}")
    verdict = "[green]rows conserved[/]" if report.conserved else "[red]ROWS NOT CONSERVED[/]"
    console.print(
        f"{verdict}; final dataset {report.final_dataset}; {len(report.executed)} stage(s) executed"
    )
