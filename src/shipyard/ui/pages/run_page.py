"""One run: params, tags, metric charts, artifacts with previews, children, resources, notes.

Charts are drawn in the browser from ``/runs/{id}/metric?key=...``: the history cut into
min/max buckets by the store (``ui.charts``). Artifacts are found by their exact logical name
among the run's own (blobs are addressed by digest, never by a path), and served with a CSP
``sandbox`` so an HTML report shown in a frame runs no script. Adding a note is the page's one
write: checked against ``runs.write`` by the guard, CSRF-checked, and audited. Comments
(``pages/comments.py``) sit below the notes.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from shipyard.core.errors import ArtifactNotFound, RunNotFound, ShipyardError
from shipyard.security import audit
from shipyard.security.permissions import Action
from shipyard.store.filters import parse_filter
from shipyard.store.search import count_runs
from shipyard.ui.charts import bucket_count, dumps, metric_series
from shipyard.ui.guard import ARTIFACT_CSP
from shipyard.ui.pages.comments import comment_section
from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.security.identities import Identity
    from shipyard.store.entities import Artifact, Run
    from shipyard.track.workspace import Workspace
    from shipyard.ui.context import UiContext

MAX_CHARTS = 24
MAX_CHILDREN = 100
_PREVIEW_ROWS = 20
_PREVIEW_BYTES = 1 << 20
_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _run(workspace: Workspace, run_id: str) -> Run:
    workspace.flush()
    return workspace.get_run(run_id)


def _details(ui: UiContext, identity: Identity, run_id: str) -> dict[str, Any]:
    workspace = ui.workspace
    run = _run(workspace, run_id)
    artifacts = workspace.store.list_artifacts(run.run_id)
    children = workspace.search_runs(f"parent_run_id = '{run.run_id}'", limit=MAX_CHILDREN)
    child_count = len(children)
    if child_count == MAX_CHILDREN:  # more may exist: say how many
        child_count = count_runs(
            workspace.store, parse_filter(f"parent_run_id = '{run.run_id}'"), experiments=None
        )
    notes = workspace.store.list_notes(run.run_id)
    return {
        "run": run,
        "artifacts": [(a, _kind(a), _preview(workspace, a)) for a in artifacts],
        "children": children,
        "child_count": child_count,
        "child_metrics": sorted({k for c in children for k in c.metrics})[:6],
        "notes": notes,
        "cost": _cost(ui, run),
        "chart_keys": sorted(run.metrics)[:MAX_CHARTS],
        **comment_section(ui, identity, "run", run.run_id),
    }


def _cost(ui: UiContext, run: Run) -> str | None:
    """The run's cost by the workspace's active instance (cpu_share), if it can be priced."""
    try:
        from shipyard.cost.attribution import run_cost

        cost = run_cost(run.resources, ui.pricing())
    except ShipyardError:
        return None
    if not cost.measured:
        return None
    return f"${cost.usd:.4f} ({cost.rule}, {cost.instance} {cost.purchase})"


def _kind(artifact: Artifact) -> str:
    media = artifact.media_type.split(";")[0].strip().lower()
    if media in _IMAGES:
        return "image"
    if media == "text/html":
        return "html"
    if media == "text/csv" or artifact.name.lower().endswith(".csv"):
        return "table"
    if media == "application/json" or artifact.name.lower().endswith(".json"):
        return "json"
    return "file"


def _preview(workspace: Workspace, artifact: Artifact) -> Any:
    """Rows of a small CSV, or a small JSON pretty-printed; None for other kinds."""
    kind = _kind(artifact)
    if kind not in ("table", "json") or artifact.size_bytes > _PREVIEW_BYTES:
        return None
    try:
        text = workspace.blobs.get_bytes(artifact.digest).decode("utf-8", "replace")
    except ShipyardError:
        return None
    if kind == "json":
        try:
            return json.dumps(json.loads(text), indent=2)[:20_000]
        except ValueError:
            return None
    rows = list(csv.reader(io.StringIO(text)))
    return rows[: _PREVIEW_ROWS + 1]


async def run_page(request: Request) -> Response:
    """The run's page."""
    try:
        details = await run_in_threadpool(
            _details, request.app.state.ui, request.state.identity, request.path_params["run_id"]
        )
    except RunNotFound as e:
        return render(request, "error.html", status_code=404, message=str(e))
    return render(request, "run.html", **details)


async def run_metric(request: Request) -> Response:
    """One metric's history as min/max buckets (JSON)."""
    workspace = request.app.state.ui.workspace
    key = request.query_params.get("key", "")
    buckets = bucket_count(request.query_params.get("buckets"))

    def fetch() -> bytes:
        run = _run(workspace, request.path_params["run_id"])
        return dumps(metric_series(workspace.store, run.run_id, key, buckets))

    try:
        body = await run_in_threadpool(fetch)
    except RunNotFound as e:
        return PlainTextResponse(str(e), status_code=404)
    return Response(body, media_type="application/json")


async def artifact(request: Request) -> Response:
    """An artifact's bytes, by exact logical name, sandboxed (see the module docstring)."""
    workspace = request.app.state.ui.workspace
    name = request.path_params["name"]

    def fetch() -> tuple[bytes, Artifact]:
        run = _run(workspace, request.path_params["run_id"])
        for found in workspace.store.list_artifacts(run.run_id):
            if found.name == name:
                return workspace.blobs.get_bytes(found.digest), found
        raise ArtifactNotFound(f"run {run.run_id} has no artifact {name!r}")

    try:
        body, found = await run_in_threadpool(fetch)
    except (RunNotFound, ArtifactNotFound) as e:
        return PlainTextResponse(str(e), status_code=404)
    kind = _kind(found)
    media = found.media_type if kind in ("image", "html") else "text/plain; charset=utf-8"
    if kind == "file":
        media = "application/octet-stream"
    headers = {
        "content-security-policy": ARTIFACT_CSP,
        "x-frame-options": "SAMEORIGIN",
        "content-disposition": "inline" if kind != "file" else "attachment",
    }
    return Response(body, media_type=media, headers=headers)


async def add_note(request: Request) -> Response:
    """Add a note (``runs.write``), audited; answers the notes fragment."""
    ui = request.app.state.ui
    workspace = ui.workspace
    identity = request.state.identity
    text = request.state.form.get("text", "")

    def write() -> tuple[Run, str | None]:
        run = _run(workspace, request.path_params["run_id"])
        try:
            workspace.add_note(run.run_id, text, author=identity.name)
        except ShipyardError as e:
            return run, str(e)
        audit.record(
            ui.accounts.store,
            identity,
            Action.RUNS_WRITE,
            f"run:{run.run_id}",
            detail={"op": "note"},
            clock=ui.accounts.clock,
        )
        return run, None

    try:
        run, error = await run_in_threadpool(write)
    except RunNotFound as e:
        return PlainTextResponse(str(e), status_code=404)
    notes = await run_in_threadpool(workspace.store.list_notes, run.run_id)
    return render(request, "run_notes.html", run=run, notes=notes, note_error=error)


ROUTES = [
    Route("/runs/{run_id}", run_page, methods=["GET"]),
    Route("/runs/{run_id}/metric", run_metric, methods=["GET"]),
    Route("/runs/{run_id}/artifacts/{name:path}", artifact, methods=["GET"]),
    Route("/runs/{run_id}/notes", add_note, methods=["POST"]),
]
