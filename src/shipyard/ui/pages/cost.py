"""Cost: compute spend by experiment and by model version, and where each budget stands.

The same attribution as ``shipyard cost report`` (``cost.attribution``: resources times the
workspace's active instance price, ``cpu_share``) and ``shipyard budget status``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from shipyard.core.errors import ShipyardError
from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.track.workspace import Workspace


def _budgets(workspace: Workspace) -> tuple[list[Any], str | None]:
    from shipyard.core.settings import PROJECT_FILE
    from shipyard.cost.budget import budget_status
    from shipyard.pipeline.project import load_project

    root = workspace.settings.project_dir
    if not (root / PROJECT_FILE).is_file():
        return [], None
    try:
        section = load_project(root).spec.budget
    except ShipyardError as e:
        return [], str(e)
    if section is None:
        return [], None
    return [
        budget_status(workspace.store, b, settings=workspace.settings, clock=workspace.clock)
        for b in section.limits
    ], None


def _details(workspace: Workspace) -> dict[str, Any]:
    from shipyard.cost.attribution import group_costs, lineage_runs, total_cost
    from shipyard.cost.catalog import active_instance, catalog_for
    from shipyard.store.registry import RegistryStore

    catalog = catalog_for(workspace.settings)
    active = active_instance(workspace.settings, catalog)
    workspace.flush()
    runs = workspace.search_runs(limit=None)
    by_experiment = {k: v.usd for k, v in group_costs(runs, active, "experiment").items()}
    registry = RegistryStore(workspace.store)
    by_version: dict[str, Decimal] = {}
    for model in registry.list_models():
        for version in registry.list_versions(str(model["name"])):
            by_version[version.ref] = total_cost(lineage_runs(version.run_id, runs), active).usd
    budgets, budget_error = _budgets(workspace)
    return {
        "currency": catalog.currency,
        "instance": f"{active.instance.name} {active.purchase} at {active.hourly}/h",
        "by_experiment": by_experiment,
        "by_version": by_version,
        "total": sum(by_experiment.values(), Decimal(0)),
        "budgets": budgets,
        "budget_error": budget_error,
    }


async def cost_page(request: Request) -> Response:
    """The cost page."""
    details = await run_in_threadpool(_details, request.app.state.ui.workspace)
    return render(request, "cost.html", **details)


ROUTES = [Route("/cost", cost_page, methods=["GET"])]
