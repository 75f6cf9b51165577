"""``shipyard monitor``: drift, feedback labels, alerts, reports, and the monitor loop."""

from __future__ import annotations

import typer

from shipyard.cli import monitor_alerts, monitor_feedback, monitor_run

app = typer.Typer(
    help="Watch served models: drift, performance on feedback labels, anomalies, alerts.",
    no_args_is_help=True,
)

app.command("alerts")(monitor_alerts.alerts)
app.command("history")(monitor_alerts.history)
app.command("feedback")(monitor_feedback.feedback)
app.command("run")(monitor_run.run)
app.command("report")(monitor_run.report)
