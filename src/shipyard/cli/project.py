"""``shipyard init`` and ``shipyard run``: the project file and its pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import CliState, console, open_workspace
from shipyard.cli.executors import ExecutorOption, RayAddressOption, choose_executor
from shipyard.cli.tables import fit
from shipyard.core.errors import AlreadyExists, ShipyardError
from shipyard.core.settings import PROJECT_FILE

if TYPE_CHECKING:
    from shipyard.pipeline.runner import PipelineReport
    from shipyard.pipeline.training import TrainingOutcome
    from shipyard.track.workspace import Workspace


def project_dir(ctx: typer.Context) -> Path:
    """The project folder: ``--project-dir``, else the settings' (env or cwd)."""
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

    path = project_dir(ctx) / PROJECT_FILE
    if path.exists() and not force:
        raise AlreadyExists(f"{path} exists; use --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER, encoding="utf-8")
    console.print(f"wrote {escape(str(path))}: edit its sources, then run [bold]shipyard run[/]")


def run(
    ctx: typer.Context,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Run the pipeline of shipyard.yaml: ingest, validate, clean, features, datasets, train."""
    choose_executor(executor, ray_address)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from shipyard.cli.access import acting_identity
    from shipyard.pipeline.project import load_project
    from shipyard.pipeline.runner import run_pipeline
    from shipyard.track.resources import claim_process_start

    if TYPE_CHECKING:
        from shipyard.train.tuning import TrialOutcome

    # The pipeline run records this whole command's CPU, imports included.
    claim_process_start()
    project = load_project(project_dir(ctx))
    train = project.spec.train
    trials = (train.tuning.trials if train.searches else 1) if train else 0
    with (
        open_workspace(ctx) as workspace,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        tasks: dict[str, TaskID] = {}

        def on_stage(name: str, state: str) -> None:
            if name not in tasks:
                total = trials if name == "train" else 1
                tasks[name] = progress.add_task(name, total=total)
            label = {"start": name, "cached": f"{name} (cached)", "done": name}[state]
            progress.update(tasks[name], description=label)
            if state != "start":
                progress.update(tasks[name], completed=progress.tasks[tasks[name]].total)

        def on_trial(trial: TrialOutcome) -> None:
            progress.update(
                tasks["train"],
                advance=1,
                description=f"train: trial {trial.number} {trial.estimator} {trial.state}",
            )

        report = run_pipeline(
            workspace,
            project,
            actor=acting_identity(ctx),
            on_stage=on_stage,
            on_trial=on_trial,
        )
        spend = spend_line(workspace, report.run_id)
    print_stages(report)
    if report.training is not None:
        print_training(report.training)
    console.print(spend)


def print_stages(report: PipelineReport) -> None:
    """One table row per stage: rows in and out, quarantined, cached or run, speed."""
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
    optional = ("rows/s", "deduplicated")
    console.print(fit(table, console, keys=("stage", "dataset"), optional=optional))
    for stage in report.stages:
        for warning in stage.warnings:
            console.print(f"[yellow]warning[/] {escape(stage.name)}: {escape(warning)}")
    verdict = "[green]rows conserved[/]" if report.conserved else "[red]ROWS NOT CONSERVED[/]"
    console.print(
        f"{verdict}; final dataset {report.final_dataset}; {len(report.executed)} stage(s) executed"
    )


def print_training(outcome: TrainingOutcome) -> None:
    """What training chose, its test score with interval, and what the registry did."""
    if outcome.result is None:
        console.print(
            f"train: unchanged data and spec; reused run {outcome.run_id[:8]} "
            f"(bundle {outcome.bundle_sha256[:12]})"
        )
        return
    result = outcome.result
    table = Table(title=f"Model: {result.tuning.best.estimator} ({result.task})")
    for column in ("metric", "value", "95% interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, value in result.evaluation.metrics.items():
        interval = "-" if value.low is None else f"{value.low:.4f} - {value.high:.4f}"
        shown = "-" if value.value is None else f"{value.value:.4f}"
        table.add_row(f"test {name}", shown, interval)
    console.print(table)
    s = result.scores
    cv = f", cv {_fmt(s['cv_mean'])} \u00b1 {_fmt(s.get('cv_std'))}" if "cv_mean" in s else ""
    console.print(
        f"{result.metric}: train+validation {_fmt(s['train'])}{cv}, "
        f"validation {_fmt(s['validation'])}, test {_fmt(s['test'])} "
        "(the shipped model was refitted on train + validation before the test score)"
    )
    if result.tuning.price is not None:
        console.print(escape(result.tuning.price))
    if result.tuning.stopped_reason is not None:
        console.print(f"search stopped: {escape(result.tuning.stopped_reason)}")
    for warning in result.warnings:
        console.print(f"[yellow]warning[/] train: {escape(warning)}")
    colour = "green" if result.generalization.verdict == "ok" else "yellow"
    console.print(
        f"[{colour}]generalization {result.generalization.verdict}[/]: "
        f"{escape(result.generalization.message)}"
    )
    if result.threshold is not None:
        console.print(
            f"decision threshold {result.threshold.threshold:.4f} ({escape(result.threshold.goal)})"
        )
    if outcome.version is not None:
        console.print(f"registered {outcome.version.name} version {outcome.version.version}")
    if outcome.promotion is not None:
        console.print(escape(outcome.promotion.describe()))
    if outcome.promotion_denied is not None:
        console.print(
            f"[yellow]not promoted[/]: {escape(outcome.promotion_denied)} "
            "(the version is registered; someone allowed to can `shipyard models promote` it)"
        )


def spend_line(workspace: Workspace, run_id: str) -> str:
    """The command's CPU-seconds (as recorded on the pipeline run) and what they cost."""
    from shipyard.cost.attribution import run_cost
    from shipyard.cost.catalog import active_instance
    from shipyard.track.resources import process_cpu_seconds

    resources = workspace.get_run(run_id).resources
    recorded = None if resources is None else resources.cpu_seconds
    used = process_cpu_seconds()
    shown = used if recorded is None else recorded
    line = f"spent {shown:.2f} CPU-s (this command: {used:.2f} CPU-s, imports included)"
    if resources is not None:
        try:
            instance = active_instance(workspace.settings)
            cost = run_cost(resources, instance)
            line += f", about ${cost.usd:.6f} at {instance.instance.name} ({cost.rule})"
        except ShipyardError as e:
            line += f"; not priced: {e}"
    return line


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
