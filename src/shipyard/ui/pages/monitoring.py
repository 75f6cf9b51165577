"""Monitoring: drift per feature over time, performance with intervals, alerts and outcomes.

Read from the monitoring store as ``shipyard monitor history|alerts`` read it. Drift charts are
drawn in the browser from the observations, passed in a ``data-series`` attribute (JSON,
attribute-escaped: no inline script); the threshold is drawn beside each feature's statistic.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.store.monitoring import StoredObservation
    from shipyard.track.workspace import Workspace

MAX_OBSERVATIONS = 20_000
MAX_FEATURES = 24


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else value


def _series(rows: list[StoredObservation]) -> list[dict[str, Any]]:
    """One chart per (feature, statistic): time in seconds, value, threshold."""
    grouped: dict[tuple[str, str], list[StoredObservation]] = defaultdict(list)
    for row in rows:
        grouped[(row.subject, row.statistic)].append(row)
    charts = []
    for (subject, statistic), points in sorted(grouped.items())[:MAX_FEATURES]:
        charts.append(
            {
                "title": f"{subject} · {statistic}",
                "x": [p.window_end_ms / 1000 for p in points],
                "series": [
                    {"label": statistic, "values": [_finite(p.value) for p in points]},
                    {"label": "threshold", "values": [_finite(p.threshold) for p in points]},
                ],
                "breached": sum(p.breached for p in points),
            }
        )
    return charts


def _details(workspace: Workspace, model: str | None) -> dict[str, Any]:
    from shipyard.store.monitoring import MonitoringStore
    from shipyard.store.registry import RegistryStore

    store = MonitoringStore(workspace.store)
    models = [str(m["name"]) for m in RegistryStore(workspace.store).list_models()]
    drift = store.observations(model=model, kind="drift", limit=MAX_OBSERVATIONS)
    performance = store.observations(model=model, kind="performance", limit=200)
    return {
        "models": models,
        "model": model,
        "drift": _series(drift),
        "performance": list(reversed(performance)),
        "alerts": store.alerts(model=model, limit=100),
    }


async def monitoring_page(request: Request) -> Response:
    """The monitoring page, for one model (``?model=``) or all."""
    workspace = request.app.state.ui.workspace
    model = request.query_params.get("model") or None
    details = await run_in_threadpool(_details, workspace, model)
    return render(request, "monitoring.html", **details)


ROUTES = [Route("/monitoring", monitoring_page, methods=["GET"])]
