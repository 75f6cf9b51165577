"""``shipyard monitor run`` (one pass, or a loop) and ``shipyard monitor report`` (HTML)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.project import project_dir
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.pipeline.monitoring import MonitorPass

# A pass every millisecond would spin; time.sleep overflows on spans of millennia.
_MIN_INTERVAL_MS = 1_000
_MAX_INTERVAL_MS = 366 * 86_400_000

PredictionsOption = Annotated[
    Path | None,
    typer.Option(
        help="Prediction log folder (default .shipyard/predictions).",
        exists=True,
        file_okay=False,
    ),
]


def run(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    interval: Annotated[
        str | None,
        typer.Option(help="Time between passes, e.g. 15m (default: monitor.schedule.interval)."),
    ] = None,
    predictions: PredictionsOption = None,
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
    from shipyard.cli.access import acting_identity
    from shipyard.pipeline.monitoring import RetrainOutcome, monitor_pass, run_forever
    from shipyard.pipeline.project import load_project

    every_ms = _interval_ms(interval) if interval else None
    project = load_project(project_dir(ctx))
    config = project.spec.monitor
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
                workspace,
                project,
                actor=acting_identity(ctx),
                predictions=predictions,
                retrain=skip if no_retrain else None,
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


def _interval_ms(text: str) -> int:
    """``--interval`` in milliseconds, between a second and a year.

    Raises:
        InvalidArgument: Not a duration, or outside those bounds.
    """
    from shipyard.monitor.config import parse_duration_ms

    try:
        every_ms = parse_duration_ms(text)
    except InvalidArgument as e:
        raise InvalidArgument(f"--interval: {e.message}") from None
    if not _MIN_INTERVAL_MS <= every_ms <= _MAX_INTERVAL_MS:
        raise InvalidArgument(f"--interval {text!r} must be between 1s and 366d")
    return every_ms


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
    predictions: PredictionsOption = None,
) -> None:
    """Write a self-contained HTML report: drift over time, predictions, performance, alerts."""
    import polars as pl

    from shipyard.cli.monitor_alerts import parse_time
    from shipyard.monitor.logfiles import read_prediction_log
    from shipyard.monitor.report import build_report
    from shipyard.registry.registry import ModelRegistry, check_name
    from shipyard.store.monitoring import MonitoringStore

    check_name(model)  # it also names the default file: never a path
    root = project_dir(ctx)
    target = out or root / "reports" / f"{model}.html"
    if target.is_dir():
        raise InvalidArgument(f"--out {target} is a folder; give a file name such as report.html")
    with open_workspace(ctx) as workspace:
        ModelRegistry.for_workspace(workspace).get(model)  # NotFound, naming `shipyard models list`
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
            MonitoringStore(workspace.store),
            model,
            since_ms=since_ms,
            probabilities=probabilities,
            now_ms=now,
        )
    _write_report(target, result.html)
    drifted = ", ".join(result.drifted_features) or "none"
    console.print(
        f"wrote {escape(str(target))}: {result.observations} observations, "
        f"{result.alerts} alerts, drifted features: {escape(drifted)}"
    )
    if result.observations == 0:
        # A report before any monitoring pass is nearly empty; say what fills it.
        step = (
            "run `shipyard monitor run --once` to compute drift and performance from them"
            if probabilities
            else f"serve {model} (`shipyard serve {model}@production`), send it requests, then "
            "run `shipyard monitor run --once`"
        )
        console.print(f"no monitoring pass has looked at {escape(model)} yet: {escape(step)}")


def _write_report(target: Path, html: str) -> None:
    """Write through a temporary file and rename: a reader never sees half a report.

    Raises:
        InvalidArgument: The folder cannot be created or the file written (the message says
            which and why); no partial file is left behind.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InvalidArgument(
            f"cannot write the report to {target}: {e.strerror or e}; choose another --out"
        ) from e
