"""``shipyard monitor run`` (one pass, or a loop) and ``shipyard monitor report`` (HTML)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.project import project_dir

if TYPE_CHECKING:
    from shipyard.pipeline.monitoring import MonitorPass


def run(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        str | None,
        typer.Option(help="Time between passes, e.g. 15m (default: monitor.schedule.interval)."),
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Prediction log folder (default .shipyard/predictions).")
    ] = None,
    no_retrain: Annotated[
        bool,
        typer.Option("--no-retrain", help="Record retrain requests but do not retrain."),
    ] = False,
) -> None:
    """Evaluate the project's monitors: drift, performance, anomalies, budgets, alerts.

    Each pass stores what it measured, raises and notifies alerts by the rules in the
    monitor: section of shipyard.yaml, and for rules with `action: retrain` re-runs the
    pipeline; the new model takes the alias only if it beats the current one.
    """
    from shipyard.monitor.config import parse_duration_ms
    from shipyard.pipeline.monitoring import RetrainOutcome, monitor_pass, run_forever
    from shipyard.pipeline.project import load_project

    project = load_project(project_dir(ctx))
    config = project.spec.monitor
    every_ms = parse_duration_ms(interval) if interval else None
    if every_ms is None:
        every_ms = config.schedule.interval if config is not None else 900_000

    def skip(alert: object) -> RetrainOutcome:
        alert_id = str(getattr(alert, "alert_id", ""))
        return RetrainOutcome(
            alert_id, False, "retrain requested; skipped (--no-retrain)", {}, None
        )

    def step() -> MonitorPass:
        with open_workspace(ctx) as workspace:
            result = monitor_pass(
                workspace, project, predictions=predictions, retrain=skip if no_retrain else None
            )
        print_pass(result)
        return result

    if once:
        step()
        return
    console.print(f"monitoring every {escape(interval or f'{every_ms // 1000}s')}; Ctrl-C stops")
    try:
        run_forever(step, every_ms / 1000, sleep=time.sleep)
    except KeyboardInterrupt:
        console.print("stopped")


def print_pass(result: MonitorPass) -> None:
    """A pass in a few lines: windows, drifted features, alerts, retrain outcomes."""
    console.print(
        f"[bold]{escape(result.model)}@{escape(result.alias)}[/] (version {result.version}): "
        f"{result.log_rows} logged rows, {result.windows} drift windows, "
        f"{len(result.observations)} new observations"
    )
    drifted = result.drifted_features
    if drifted:
        console.print(f"[red]drift:[/] {escape(', '.join(drifted))}")
    else:
        console.print("[green]no drift[/]")
    opened = result.evaluation.opened
    if opened:
        table = Table(title=f"new alerts ({len(opened)})")
        for column in ("severity", "rule", "what", "value", "threshold", "action", "notified"):
            table.add_column(column)
        for a in opened:
            threshold = "-" if a.threshold is None else f"{a.threshold:.4g}"
            table.add_row(
                a.severity,
                escape(a.rule),
                escape(f"{a.statistic} of {a.subject}"),
                f"{a.value:.4g}",
                threshold,
                a.action,
                a.notify_state,
            )
        console.print(table)
    for outcome in result.retrains:
        colour = "green" if outcome.promoted else "yellow"
        console.print(f"[{colour}]retrain:[/] {escape(outcome.text)}")


def report(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file (default reports/<model>.html).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only since this long ago (24h) or this ISO date.")
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Prediction log folder (default .shipyard/predictions).")
    ] = None,
) -> None:
    """Write a self-contained HTML report: drift over time, predictions, performance, alerts."""
    import polars as pl

    from shipyard.cli.monitor_alerts import parse_time
    from shipyard.monitor.logfiles import read_prediction_log
    from shipyard.monitor.report import build_report
    from shipyard.store.monitoring import MonitoringStore

    root = project_dir(ctx)
    target = out or root / "reports" / f"{model}.html"
    with open_workspace(ctx) as workspace:
        now = workspace.clock.now_ms()
        since_ms = parse_time(since, now, "--since")
        log = read_prediction_log(
            predictions or root / ".shipyard" / "predictions", since_ms=since_ms
        )
        probabilities = (
            log.filter(pl.col("model") == model, ~pl.col("variant").str.starts_with("shadow:"))
            .select("probability")
            .drop_nulls()
            .collect()
            .get_column("probability")
            .to_list()
        )
        result = build_report(
            MonitoringStore(workspace.store.engine),
            model,
            since_ms=since_ms,
            probabilities=probabilities,
            now_ms=now,
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(result.html, encoding="utf-8")
    drifted = ", ".join(result.drifted_features) or "none"
    console.print(
        f"wrote {escape(str(target))}: {result.observations} observations, "
        f"{result.alerts} alerts, drifted features: {escape(drifted)}"
    )
