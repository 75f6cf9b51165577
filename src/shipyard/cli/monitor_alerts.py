"""``shipyard monitor alerts`` and ``shipyard monitor history``: what fired, and what was measured.

Both read the workspace's metadata store. ``--since``/``--until`` take a span back from now
(``24h``, ``7d``) or an ISO date/time (local time unless it names a zone). ``--json`` writes
strict JSON (NaN as null) to stdout for scripts. Registered on the ``monitor`` group in
``cli/monitor.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, get_args

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.render import number, when, write_json
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.store.monitoring import MonitoringStore
    from shipyard.track.workspace import Workspace

_SEVERITIES = ("info", "warning", "critical")
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}
_NOTIFY_STYLE = {"sent": "green", "partial": "yellow", "failed": "red", "pending": "yellow"}


def _store(workspace: Workspace) -> MonitoringStore:
    from shipyard.store.monitoring import MonitoringStore  # lazily: keeps `--help` fast

    return MonitoringStore(workspace.store)


def alerts(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's alerts.")] = None,
    severity: Annotated[
        str | None,
        typer.Option(help="Only this severity and above: info, warning or critical."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Seen since: a span back from now (24h, 7d) or an ISO date/time."),
    ] = None,
    status: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Alerts, most recently seen first: rule, value, repeats, notifications, outcome."""
    severities = _at_least(severity)
    if status is not None and status not in ("firing", "resolved"):
        raise InvalidArgument(f"--status must be firing or resolved, got {status!r}")
    with open_workspace(ctx) as workspace:
        since_ms = parse_time(since, workspace.clock.now_ms(), "--since")
        found = _store(workspace).alerts(
            model=model,
            rule=rule,
            severities=severities,
            status=status,
            since_ms=since_ms,
            limit=limit,
        )
    if as_json:
        write_json([a.to_dict() for a in found])
        return
    if not found:
        console.print("no alerts match; `shipyard monitor alerts` without filters shows all")
        return
    table = Table(title="Alerts")
    for column in (
        "last seen",
        "severity",
        "model",
        "rule",
        "subject",
        "value",
        "threshold",
        "window",
        "repeats",
        "status",
        "notified",
        "action",
        "id",
    ):
        table.add_column(column)
    for a in found:
        style = _NOTIFY_STYLE.get(a.notify_state)
        notified = f"[{style}]{a.notify_state}[/]" if style else a.notify_state
        failed = [n for n, d in sorted(a.notifications.items()) if d.get("status") == "failed"]
        if failed:
            notified += f" ({escape(', '.join(failed))} failed)"
        action = a.action
        if a.outcome is not None:
            action += f": {escape(str(a.outcome.get('text')))}"
        table.add_row(
            when(a.last_seen_ms),
            f"[{_SEVERITY_STYLE[a.severity]}]{a.severity}[/]"
            if a.severity in _SEVERITY_STYLE
            else escape(a.severity),
            escape(a.model) + (f":{a.version}" if a.version is not None else ""),
            escape(a.rule),
            escape(a.subject),
            number(a.value),
            f"{a.comparison} {number(a.threshold)}",
            escape(a.window),
            str(a.repeat_count),
            a.status,
            notified,
            action,
            a.alert_id[:12],
        )
    console.print(table)


def history(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="The model whose series to show.")],
    statistic: Annotated[str | None, typer.Option(help="e.g. psi, ks, accuracy.")] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", "--feature", help="Feature or metric.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="drift, performance, concept, anomaly, service, budget.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Windows ending since: 24h, 7d or an ISO date/time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Windows ending before: 1h or an ISO date/time.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="The newest this many.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The stored observations of a model (drift, performance, ...), oldest window first."""
    from shipyard.monitor.history import ObservationHistory  # lazily: keeps `--help` fast
    from shipyard.monitor.signals import ObservationKind

    kinds = get_args(ObservationKind)
    if kind is not None and kind not in kinds:
        raise InvalidArgument(f"--kind must be one of {', '.join(kinds)}, got {kind!r}")
    with open_workspace(ctx) as workspace:
        now = workspace.clock.now_ms()
        found = ObservationHistory(_store(workspace)).query(
            model=model,
            kind=kind,
            statistic=statistic,
            subject=subject,
            since_ms=parse_time(since, now, "--since"),
            until_ms=parse_time(until, now, "--until"),
            limit=limit,
        )
    if as_json:
        write_json(
            [
                {
                    "model": o.model,
                    "version": o.version,
                    "variant": o.variant,
                    "kind": o.kind,
                    "statistic": o.statistic,
                    "subject": o.subject,
                    "value": o.value,
                    "threshold": o.threshold,
                    "breached": o.breached,
                    "window_start_ms": o.window_start_ms,
                    "window_end_ms": o.window_end_ms,
                    "detail": o.detail,
                }
                for o in found
            ]
        )
        return
    if not found:
        console.print(
            f"no observations of {escape(model)} match; `shipyard monitor run` makes them"
        )
        return
    table = Table(title=f"Observations of {escape(model)}")
    for column in ("window end", "kind", "statistic", "subject", "value", "threshold", "breached"):
        table.add_column(column)
    for o in found:
        table.add_row(
            when(o.window_end_ms),
            o.kind,
            escape(o.statistic),
            escape(o.subject),
            number(o.value),
            number(o.threshold),
            "[red]yes[/]" if o.breached else "no",
        )
    console.print(table)


def parse_time(text: str | None, now_ms: int, option: str) -> int | None:
    """``24h`` (that long before ``now_ms``) or an ISO date/time, as epoch milliseconds.

    Times before 1970 (a span longer than the epoch, year 1) become 0, so they mean "from
    the start"; nothing the stores hold is older.

    Raises:
        InvalidArgument: Neither form; the message names the option.
    """
    if text is None:
        return None
    from shipyard.monitor.config import parse_duration_ms  # lazily: keeps `--help` fast

    try:
        span_ms: int | None = parse_duration_ms(text)
    except InvalidArgument:
        span_ms = None  # not a span: perhaps a date
    if span_ms is not None:
        return _clamp(now_ms - span_ms)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{option} {text!r}: give a span back from now (30m, 24h, 7d) or an ISO date/time "
            "(2026-12-01 or 2026-12-01T08:00)"
        ) from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time, as the tables show it
        return _clamp(int(moment.timestamp() * 1000))
    except (ValueError, OverflowError, OSError):  # year 1 or 9999 shifted off the calendar
        return 0 if moment.year < 1970 else _LAST_MS


def _clamp(ms: int) -> int:
    """Keep a bound within what the stores hold (64-bit epoch ms; nothing before 1970).

    ``--since 100000d`` or ``--since 0001-01-01`` then means "from the start", as asked,
    instead of overflowing the database's integer type.
    """
    return min(max(ms, 0), _LAST_MS)


def _at_least(severity: str | None) -> list[str] | None:
    if severity is None:
        return None
    if severity not in _SEVERITIES:
        raise InvalidArgument(
            f"--severity must be one of {', '.join(_SEVERITIES)}, got {severity!r}"
        )
    return list(_SEVERITIES[_SEVERITIES.index(severity) :])
