"""Models: versions, aliases and their history, gate verdicts, metrics, cards, comparisons.

A model's page shows its versions, aliases with their history and the gate's verdicts, test
metrics with intervals, the model card, and two versions compared on the same rows.

Everything is read through ``registry.ModelRegistry``, as ``shipyard models show|history|
compare|card`` read it. An alias is never moved from here: the version's page offers a
promotion request (for aliases under a review rule) that opens at ``/reviews/{id}``, where
another person approves it. Each version has its comments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from shipyard.core.errors import NotFound, ShipyardError
from shipyard.ui.guard import ARTIFACT_CSP
from shipyard.ui.pages.comments import comment_section
from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.registry.registry import ModelRegistry


async def models_page(request: Request) -> Response:
    """Every model: versions, latest, aliases."""
    registry = request.app.state.ui.registry()
    models = await run_in_threadpool(registry.list_models)
    return render(request, "models.html", models=models)


def _test_metrics(registry: ModelRegistry, name: str, version: int) -> list[dict[str, Any]]:
    """The version's test metrics with their bootstrap intervals, from its bundle manifest."""
    bundle = registry.load(f"{name}:{version}", defer_model=True)
    test = bundle.manifest.metrics.get("test")
    rows = []
    if isinstance(test, dict):
        for metric, value in test.items():
            if isinstance(value, dict):
                rows.append(
                    {
                        "metric": metric,
                        "value": value.get("value"),
                        "low": value.get("low"),
                        "high": value.get("high"),
                    }
                )
            else:
                rows.append({"metric": metric, "value": value, "low": None, "high": None})
    return rows


def _model(registry: ModelRegistry, name: str, chosen: str | None) -> dict[str, Any]:
    versions = registry.versions(name)
    if not versions:
        registry.get(name)  # raises NotFound with what to do next
    aliases = registry.aliases(name)
    events = registry.history(name)
    version = versions[-1]
    if chosen and chosen.isdigit():
        version = next((v for v in versions if v.version == int(chosen)), version)
    try:
        test = _test_metrics(registry, name, version.version)
        test_error = None
    except ShipyardError as e:
        test, test_error = [], str(e)
    return {
        "name": name,
        "versions": list(reversed(versions)),
        "aliases": aliases,
        "events": list(reversed(events)),
        "version": version,
        "test": test,
        "test_error": test_error,
    }


def _reviewed_aliases(registry: ModelRegistry, name: str) -> list[str]:
    """The aliases of ``name`` a promotion request may target: those a review rule covers."""
    rules = registry.reviews
    named = {*rules.default, *rules.models.get(name, {})}
    return sorted(a for a in named if rules.rule_for(name, a) is not None)


async def model_page(request: Request) -> Response:
    """One model's page; its version's comments, and the promotion-request form."""
    ui = request.app.state.ui
    registry = ui.registry()
    name = request.path_params["name"]
    try:
        details = await run_in_threadpool(
            _model, registry, name, request.query_params.get("version")
        )
    except NotFound as e:
        return render(request, "error.html", status_code=404, message=str(e))
    version = details["version"].version
    section = await run_in_threadpool(
        comment_section, ui, request.state.identity, "model", f"{name}:{version}"
    )
    reviewed = _reviewed_aliases(registry, name)
    return render(request, "model.html", **details, **section, reviewed_aliases=reviewed)


async def model_compare(request: Request) -> Response:
    """Two (or more) versions re-scored on the same test rows."""
    registry = request.app.state.ui.registry()
    name = request.path_params["name"]
    chosen = [v for v in request.query_params.getlist("v") if v.isdigit()][:5]
    if len(chosen) < 2:
        return render(
            request, "error.html", status_code=400, message="pick two versions to compare"
        )
    try:
        rows = await run_in_threadpool(registry.compare, name, [int(v) for v in chosen])
    except ShipyardError as e:
        return render(request, "error.html", status_code=400, message=str(e))
    return render(request, "model_compare.html", name=name, rows=rows)


async def model_card(request: Request) -> Response:
    """The model card as a self-contained page, sandboxed like an HTML artifact."""
    from shipyard.registry.card import model_card_html

    registry = request.app.state.ui.registry()
    ref = f"{request.path_params['name']}:{request.path_params['version']}"

    def build() -> str:
        version = registry.get(ref)
        bundle = registry.load(version)
        return model_card_html(version, bundle, registry.history(version.name))

    try:
        html = await run_in_threadpool(build)
    except ShipyardError as e:
        return render(request, "error.html", status_code=404, message=str(e))
    return HTMLResponse(
        html, headers={"content-security-policy": ARTIFACT_CSP, "x-frame-options": "SAMEORIGIN"}
    )


ROUTES = [
    Route("/models", models_page, methods=["GET"]),
    Route("/models/{name}", model_page, methods=["GET"]),
    Route("/models/{name}/compare", model_compare, methods=["GET"]),
    Route("/models/{name}/{version:int}/card", model_card, methods=["GET"]),
]
