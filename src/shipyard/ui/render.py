"""Pages from Jinja2 templates: autoescaped, with who is looking and what they may do.

Autoescape is on for every template (not only ``.html``), so every user-supplied string —
run names, params, tags, notes, model descriptions, audit details — is escaped; no template
marks anything ``|safe`` (the one string marked safe, a comment's sanitized Markdown, is
marked in ``pages/comments.py``). Each page gets ``can(action)``, the same permission check as the
guard, so a write control is rendered only for an identity allowed to use it (a viewer sees
none), and ``csrf`` for its forms.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from shipyard.core.durations import compact_duration
from shipyard.security.permissions import Action, check

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.security.identities import Identity

TEMPLATES = Path(__file__).parent / "templates"

#: The navigation bar: (label, path, the action its page reads with). Entries the identity
#: may not read are not shown.
NAV: tuple[tuple[str, str, Action], ...] = (
    ("Runs", "/runs", Action.RUNS_READ),
    ("Experiments", "/experiments", Action.RUNS_READ),
    ("Datasets", "/datasets", Action.DATA_METADATA),
    ("Models", "/models", Action.MODELS_READ),
    ("Reviews", "/reviews", Action.MODELS_READ),
    ("Activity", "/activity", Action.WORKSPACE_READ),
    ("Monitoring", "/monitoring", Action.REPORTS_READ),
    ("Cost", "/cost", Action.COST_READ),
    ("Audit", "/audit", Action.AUDIT_READ),
)


def environment() -> Environment:
    """The template environment: autoescape everywhere, undefined names are errors."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["duration"] = duration
    env.filters["size"] = size
    env.filters["tojson_attr"] = lambda value: json.dumps(value, separators=(",", ":"))
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` for the request's identity (see the module docstring)."""
    env: Environment = request.app.state.ui.templates
    identity: Identity | None = request.state.identity
    session = request.state.session

    def can(action: Action | str) -> bool:
        return identity is not None and check(identity, action).allowed

    nav = [(label, path) for label, path, action in NAV if can(action)]
    html = env.get_template(template).render(
        identity=identity,
        csrf=session.csrf if session is not None else "",
        can=can,
        Action=Action,
        nav=nav,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def is_htmx(request: Request) -> bool:
    """Whether htmx asked for a fragment (``HX-Request``) rather than a whole page."""
    return request.headers.get("hx-request") == "true"


def when(ms: int | None) -> str:
    """A time in milliseconds as UTC ``YYYY-MM-DD HH:MM:SS``."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def number(value: float | int | None) -> str:
    """A metric value, short: 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e12):
        return f"{int(value)}"
    return f"{value:.4g}"


def duration(start_ms: int | None, end_ms: int | None) -> str:
    """A run's length (``core.durations``: the same text in the CLI and the UI)."""
    return compact_duration(start_ms, end_ms)


def size(value: int | None) -> str:
    """Bytes, in binary units."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"
