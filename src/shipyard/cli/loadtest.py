"""``shipyard loadtest``: load a running server, show what it did, keep the result as a run.

The model server wants a bearer token, so the command sends ``$SHIPYARD_TOKEN`` (the token the
rest of the CLI acts with) as ``Authorization: Bearer ...`` unless ``--token`` gives another,
``--header Authorization:...`` sets the header itself, or ``--anonymous`` sends none. The
token is never printed or stored: the saved report keeps header names only, and the table
says where the token came from. Refused requests (401, 403, 429) are counted like any other
error, with a line that says what they usually mean.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.access import TOKEN_ENV
from shipyard.cli.context import console, open_workspace
from shipyard.cli.options import not_nan
from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.serve.load_report import LoadReport


def loadtest(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Argument(help="The URL to load, e.g. http://host:8000/models/m/predict.")
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="Closed loop: requests always in flight (default 1)."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(min=0.001, callback=not_nan, help="Open loop: requests per second instead."),
    ] = None,
    duration: Annotated[
        float, typer.Option(min=0.1, callback=not_nan, help="Measured seconds.")
    ] = 10.0,
    warmup: Annotated[
        float, typer.Option(min=0.0, callback=not_nan, help="Unmeasured seconds first.")
    ] = 0.0,
    timeout: Annotated[
        float, typer.Option(min=0.001, callback=not_nan, help="Per-request limit, seconds.")
    ] = 10.0,
    method: Annotated[
        str | None, typer.Option(help="HTTP method (default POST with a body, else GET).")
    ] = None,
    body: Annotated[str | None, typer.Option(help="JSON request body.")] = None,
    body_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Request body read from a file."),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="Request header as Name:value (repeatable).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help=f"Bearer token to send (default ${TOKEN_ENV}; prefer the variable: "
            "options show in the process list)."
        ),
    ] = None,
    anonymous: Annotated[
        bool, typer.Option("--anonymous", help=f"Send no token, even if ${TOKEN_ENV} is set.")
    ] = False,
    arrival: Annotated[
        str, typer.Option(help="Open loop spacing: poisson or uniform.")
    ] = "poisson",
    max_in_flight: Annotated[
        int, typer.Option(min=1, max=10_000, help="Open loop: most pending requests.")
    ] = 256,
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Record the report as a run in 'loadtests'.")
    ] = True,
) -> None:
    """Load a server at a fixed concurrency or rate; print throughput, errors and latency."""
    from shipyard.serve.load_report import render_histogram, save_load_report
    from shipyard.serve.loadtest import run_load

    if concurrency is not None and rate is not None:
        raise InvalidArgument("give --concurrency or --rate, not both")
    if arrival not in ("poisson", "uniform"):
        raise InvalidArgument(f"--arrival must be poisson or uniform, not {arrival!r}")
    payload, headers = _request(body, body_file, header or [])
    auth = _authorize(headers, token, anonymous=anonymous)
    report = run_load(
        url,
        method=method or ("POST" if payload else "GET"),
        body=payload,
        headers=headers,
        concurrency=None if rate is not None else (concurrency or 1),
        rate_per_s=rate,
        duration_s=duration,
        timeout_s=timeout,
        warmup_s=warmup,
        arrival="uniform" if arrival == "uniform" else "poisson",
        max_in_flight=max_in_flight,
    )
    console.print(_table(report, auth))
    console.print(escape(render_histogram(report.histogram)), highlight=False)
    for hint in _refusal_hints(report, auth):
        console.print(hint, style="yellow", highlight=False)
    if save:
        with open_workspace(ctx) as workspace:
            run_id = save_load_report(workspace, report, target=url)
        console.print(f"saved as run {run_id} in experiment 'loadtests'")


def _request(
    body: str | None, body_file: Path | None, header_args: list[str]
) -> tuple[bytes, dict[str, str]]:
    """The body bytes and headers the options describe (JSON gets its content type)."""
    if body is not None and body_file is not None:
        raise InvalidArgument("give --body or --body-file, not both")
    headers: dict[str, str] = {}
    for item in header_args:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InvalidArgument(f"--header takes Name:value, got {item!r}")
        headers[name.strip()] = value.strip()
    payload = b""
    is_json = False
    if body is not None:
        try:
            json.loads(body)
        except ValueError as e:
            raise InvalidArgument(f"--body is not valid JSON: {e}") from e
        payload, is_json = body.encode(), True
    elif body_file is not None:
        payload = body_file.read_bytes()
        is_json = body_file.suffix.lower() == ".json"
    if is_json and not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = "application/json"
    return payload, headers


def _authorize(headers: dict[str, str], token: str | None, *, anonymous: bool) -> str:
    """Add the bearer token the options name to ``headers``; say where it came from."""
    given = any(name.lower() == "authorization" for name in headers)
    if token is not None and (anonymous or given):
        raise InvalidArgument("give one of --token, --anonymous or --header Authorization:...")
    if given:
        return "Authorization from --header"
    if anonymous:
        return "none (--anonymous)"
    source = "--token"
    if token is None:
        token, source = os.environ.get(TOKEN_ENV, "").strip() or None, f"${TOKEN_ENV}"
        if token is None:
            return f"none (${TOKEN_ENV} is not set)"
    token = token.strip()
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise InvalidArgument(f"the token from {source} is empty or holds spaces/control chars")
    headers["authorization"] = f"Bearer {token}"
    return f"bearer token from {source}"


def _refusal_hints(report: LoadReport, auth: str) -> list[str]:
    """One line per kind of refusal (401, 403, 429) saying what it usually means."""
    hints = []
    unauthorized = report.status_counts.get("401", 0)
    if unauthorized:
        fix = (
            "the token was not accepted (expired, revoked or another workspace's)"
            if auth.startswith(("bearer", "Authorization"))
            else f"the server wants a token: set ${TOKEN_ENV} or pass --token"
        )
        hints.append(f"{unauthorized} request(s) refused with 401: {fix}")
    forbidden = report.status_counts.get("403", 0)
    if forbidden:
        hints.append(
            f"{forbidden} request(s) refused with 403: the token's role may not call this route"
        )
    limited = report.status_counts.get("429", 0)
    if limited and unauthorized:
        hints.append(
            f"{limited} request(s) refused with 429: after repeated bad tokens the server "
            "refuses this address for a while"
        )
    return hints


def _table(report: LoadReport, auth: str) -> Table:
    config = report.config
    load = (
        f"{config['concurrency']} concurrent"
        if config["mode"] == "concurrency"
        else f"{config['rate_per_s']}/s {config['arrival']}"
    )
    table = Table(title=f"{config['method']} {escape(config['url'])} — {load}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("auth", escape(auth))
    table.add_row("requests", str(report.requests))
    table.add_row("errors", f"{report.errors} ({report.error_rate:.1%})")
    for kind, count in report.errors_by_kind.items():
        table.add_row(f"  {escape(kind)}", str(count))
    table.add_row("throughput", f"{report.throughput_rps:.1f} req/s")
    for name in ("p50", "p95", "p99", "max", "mean"):
        value = getattr(report.latency_ms, name)
        table.add_row(f"latency {name}", "-" if value is None else f"{value:.2f} ms")
    if config["mode"] == "rate":
        table.add_row("missed sends", str(report.missed_sends))
        table.add_row("late sends", str(report.late_sends))
    table.add_row("measured", f"{report.duration_s:.2f} s")
    return table
