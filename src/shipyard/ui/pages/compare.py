"""Compare 2-20 runs: overlaid metric charts and a parameter diff.

Runs are named by id in the query string (``?run=..&run=..``), so a comparison is a link that
can be shared. Each chart reads ``/compare/metric``: every run's history cut to min/max buckets
(``ui.charts``), drawn on one axis in the browser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from shipyard.core.errors import RunNotFound
from shipyard.ui.charts import bucket_count, dumps, metric_series
from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.store.entities import Run
    from shipyard.track.workspace import Workspace

MIN_RUNS, MAX_RUNS = 2, 20
# The same guess as ``shipyard runs compare`` (cli.runs, above this package: not importable).
_LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "rmse", "mape", "brier", "latency", "cost")
MAX_CHARTS = 12


def _runs(workspace: Workspace, ids: list[str]) -> list[Run]:
    workspace.flush()
    seen: dict[str, Run] = {}
    for run_id in ids:
        run = workspace.get_run(run_id)
        seen.setdefault(run.run_id, run)
    return list(seen.values())


def _ids(request: Request) -> list[str]:
    return [r for r in request.query_params.getlist("run") if r][: MAX_RUNS + 1]


def _parallel(runs: list[Run]) -> dict[str, Any] | None:
    """Parallel coordinates of the runs: every numeric param that varies, then every metric.

    Trials of a tuning differ in a few numeric params; one line per run across their axes and
    the metrics shows which region scored well. None when fewer than two axes would show.
    """
    axes: list[tuple[str, list[float | None]]] = []
    for key in sorted({k for r in runs for k in r.params}):
        values = [_number(r.params.get(key)) for r in runs]
        present = {v for v in values if v is not None}
        if len(present) > 1 and all(
            v is not None or r.params.get(key) is None for v, r in zip(values, runs, strict=True)
        ):
            axes.append((f"params.{key}", values))
    for key in sorted({k for r in runs for k in r.metrics}):
        values = [r.metrics.get(key) for r in runs]
        axes.append((f"metrics.{key}", [v if v is not None and v == v else None for v in values]))
    if len(axes) < 2:
        return None
    return {
        "axes": [name for name, _ in axes],
        "lines": [
            {"name": r.name, "values": [values[i] for _, values in axes]}
            for i, r in enumerate(runs)
        ],
    }


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value == value and abs(value) != float("inf") else None


def _table(runs: list[Run]) -> dict[str, Any]:
    params = []
    for key in sorted({k for r in runs for k in r.params}):
        texts = [r.params.get(key) for r in runs]
        params.append((key, texts, len(set(texts)) > 1))
    metrics = []
    for key in sorted({k for r in runs for k in r.metrics}):
        values = [r.metrics.get(key) for r in runs]
        present = [v for v in values if v is not None and v == v]
        pick = min if any(w in key.lower() for w in _LOWER_IS_BETTER) else max
        best = pick(present) if len(present) > 1 else None
        metrics.append((key, values, best))
    return {"params": params, "metrics": metrics}


async def compare_page(request: Request) -> Response:
    """The comparison of the runs named in the query string."""
    workspace = request.app.state.ui.workspace
    ids = _ids(request)
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        message = f"compare needs {MIN_RUNS} to {MAX_RUNS} runs: select them in the runs list"
        return render(request, "error.html", status_code=400, message=message)
    try:
        runs = await run_in_threadpool(_runs, workspace, ids)
    except RunNotFound as e:
        return render(request, "error.html", status_code=404, message=str(e))
    keys = sorted({k for r in runs for k in r.metrics})[:MAX_CHARTS]
    only_differing = request.query_params.get("all") != "1"
    return render(
        request,
        "compare.html",
        runs=runs,
        chart_keys=keys,
        only_differing=only_differing,
        parallel=_parallel(runs),
        **_table(runs),
    )


async def compare_metric(request: Request) -> Response:
    """One metric of every compared run, as min/max buckets (JSON)."""
    workspace = request.app.state.ui.workspace
    key = request.query_params.get("key", "")
    buckets = bucket_count(request.query_params.get("buckets"))
    ids = _ids(request)
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        return PlainTextResponse(f"name {MIN_RUNS} to {MAX_RUNS} runs", status_code=400)

    def fetch() -> bytes:
        runs = _runs(workspace, ids)
        series = [
            {"run": r.run_id, "name": r.name}
            | metric_series(workspace.store, r.run_id, key, buckets)
            for r in runs
        ]
        return dumps({"key": key, "series": series})

    try:
        body = await run_in_threadpool(fetch)
    except RunNotFound as e:
        return PlainTextResponse(str(e), status_code=404)
    return Response(body, media_type="application/json")


ROUTES = [
    Route("/compare", compare_page, methods=["GET"]),
    Route("/compare/metric", compare_metric, methods=["GET"]),
]
