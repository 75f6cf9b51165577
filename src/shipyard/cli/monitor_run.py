"""``shipyard monitor run`` (one pass, or a loop) and ``shipyard monitor report`` (HTML)."""

from __future__ import annotations

import contextlib
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
    from shipyard.store.leases import Leadership
    from shipyard.store.monitoring import AlertRecord

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
    lease_ttl: Annotated[
        str,
        typer.Option(
            help="How long the lease of a loop lasts: one loop per model leads, the others "
            "stand by and take over at most this long (plus a quarter) after it dies."
        ),
    ] = "60s",
) -> None:
    """Evaluate the project's monitors: drift, performance, anomalies, budgets, alerts.

    Each pass stores what it measured, raises and notifies alerts by the rules in the
    monitor: section of shipyard.yaml, and for rules with `action: retrain` re-runs the
    pipeline; the new model takes the alias only if it beats the current one. Loops on
    several replicas are safe: only the holder of the model's lease runs passes.
    """
    from shipyard.cli.access import acting_identity
    from shipyard.pipeline.monitoring import (
        RetrainOutcome,
        monitor_pass,
        monitored_model,
        retrain_project,
    )
    from shipyard.pipeline.project import load_project
    from shipyard.pipeline.singleton import guarded, lead_forever, monitor_lease_name
    from shipyard.store.leases import Leadership, LeaseStore

    every_ms = _interval_ms(interval) if interval else None
    ttl_ms = _interval_ms(lease_ttl, option="--lease-ttl")
    project = load_project(project_dir(ctx))
    config = project.spec.monitor
    if every_ms is None:
        every_ms = config.schedule.interval if config is not None else 900_000
    model, alias = monitored_model(project)
    actor = acting_identity(ctx)

    def skipped(alert: AlertRecord, why: str) -> RetrainOutcome:
        return RetrainOutcome(
            alert.alert_id, False, f"retrain requested; skipped ({why})", {}, None
        )

    with open_workspace(ctx) as lease_workspace:
        leadership = Leadership(
            LeaseStore(lease_workspace.store, lease_workspace.clock),
            monitor_lease_name(model, alias),
            ttl_ms=ttl_ms,
        )

        def step() -> MonitorPass:
            with open_workspace(ctx) as workspace:

                def retrain(alert: AlertRecord) -> RetrainOutcome:
                    if no_retrain:
                        return skipped(alert, "--no-retrain")
                    return guarded(
                        leadership,
                        lambda: retrain_project(workspace, project, alert, started_by=actor),
                        lambda: skipped(alert, "this loop lost its lease"),
                    )

                result = monitor_pass(
                    workspace, project, actor=actor, predictions=predictions, retrain=retrain
                )
            print_pass(result)
            return result

        with leadership:
            if once:
                if not leadership.held:
                    _standby(leadership)
                    return
                step()
                return
            shown = escape(interval or f"{every_ms // 1000}s")
            console.print(f"monitoring every {shown}; Ctrl-C stops")

            def changed(leading: bool) -> None:
                if leading:
                    token = leadership.lease.token if leadership.lease else "?"
                    console.print(f"leading (lease {leadership.name}, token {token})")
                else:
                    _standby(leadership)

            try:
                lead_forever(step, leadership, every_ms / 1000, on_change=changed)
            except KeyboardInterrupt:
                console.print("stopped")


def _standby(leadership: Leadership) -> None:
    """Say who leads instead of this process."""
    holder = leadership.lease.holder if leadership.lease else "another process"
    console.print(
        f"standing by: {escape(holder)} holds the lease {escape(leadership.name)} "
        "(it runs the passes)"
    )


def _interval_ms(text: str, *, option: str = "--interval") -> int:
    """``--interval`` (or ``option``) in milliseconds, between a second and a year.

    Raises:
        InvalidArgument: Not a duration, or outside those bounds.
    """
    from shipyard.monitor.config import parse_duration_ms

    try:
        every_ms = parse_duration_ms(text)
    except InvalidArgument as e:
        raise InvalidArgument(f"{option}: {e.message}") from None
    if not _MIN_INTERVAL_MS <= every_ms <= _MAX_INTERVAL_MS:
        raise InvalidArgument(f"{option} {text!r} must be between 1s and 366d")
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
