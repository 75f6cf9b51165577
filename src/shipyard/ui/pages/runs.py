"""The runs list: the CLI's filter language, sortable and selectable columns, pages.

The filter and ``order by`` texts go through the same parser and SQL compiler as
``shipyard runs list`` (``store.filters``, ``store.search``); a page is ``LIMIT``/``OFFSET``
on that one ordered statement, plus one ``COUNT`` of the same filter, so a page of 50 costs
the same at 10,000 runs as at 100. The table is a fragment htmx swaps in place (filtering,
sorting and paging do not reload the page), and the URL is pushed so a view can be shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from shipyard.core.errors import ShipyardError
from shipyard.store.filters import parse_filter, parse_order_by
from shipyard.store.search import count_runs
from shipyard.ui.render import is_htmx, render

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.store.entities import Run
    from shipyard.track.workspace import Workspace

PAGE_SIZES = (25, 50, 100, 200)
_BASE_COLUMNS = ("name", "experiment", "status", "started", "duration")
_ATTRIBUTE_ORDER = {"name": "name", "experiment": "experiment", "status": "status",
                    "started": "start_time"}  # fmt: skip
_DEFAULT_METRICS = 4
_MAX_COLUMNS = 40


@dataclass(frozen=True)
class RunsView:
    """One page of the runs list, as the query string asked for it."""

    filter: str
    experiments: list[str]
    order: str
    page: int
    size: int
    columns: list[str]

    @classmethod
    def of(cls, request: Request) -> RunsView:
        """Read the view from the query string (bad numbers fall back to defaults)."""
        query = request.query_params
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        try:
            size = int(query.get("size", "50"))
        except ValueError:
            size = 50
        return cls(
            filter=query.get("filter", "").strip(),
            experiments=[e for e in query.getlist("experiment") if e],
            order=query.get("order", "").strip(),
            page=page,
            size=size if size in PAGE_SIZES else 50,
            columns=[c for c in query.getlist("col") if c],
        )

    def link(self, **changes: object) -> str:
        """The query string of this view with ``changes`` (for sort and page links)."""
        values: dict[str, object] = {
            "filter": self.filter,
            "order": self.order,
            "page": self.page,
            "size": self.size,
        }
        values.update(changes)
        pairs: list[tuple[str, object]] = [(k, v) for k, v in values.items() if v not in ("", None)]
        pairs += [("experiment", e) for e in self.experiments]
        pairs += [("col", c) for c in self.columns]
        return "?" + urlencode(pairs)

    def sort_link(self, column: str) -> str:
        """Sort by ``column``; a second click on the sorted column flips the direction."""
        key = _ATTRIBUTE_ORDER.get(column, column)
        order = f"{key} desc" if self.order != f"{key} desc" else f"{key} asc"
        return self.link(order=order, page=1)

    def sorted_as(self, column: str) -> str:
        """``asc``/``desc`` when the list is sorted by ``column``, else empty."""
        key = _ATTRIBUTE_ORDER.get(column, column)
        if self.order == f"{key} desc":
            return "desc"
        if self.order in (f"{key} asc", key):
            return "asc"
        return ""


def _page(workspace: Workspace, view: RunsView) -> tuple[list[Run], int]:
    """The page's runs and how many match; raises ShipyardError on a bad filter/order."""
    where = parse_filter(view.filter)
    order = [parse_order_by(view.order)] if view.order else []
    workspace.flush()
    total = count_runs(workspace.store, where, experiments=view.experiments or None)
    runs = workspace.store.search_runs(
        where,
        experiments=view.experiments or None,
        order_by=order,
        limit=view.size,
        offset=(view.page - 1) * view.size,
    )
    return runs, total


def _columns(view: RunsView, runs: list[Run]) -> tuple[list[str], list[str]]:
    """(shown columns, every column offered): chosen ones, else base + frequent metrics."""
    metrics: dict[str, int] = {}
    params: set[str] = set()
    for run in runs:
        for key in run.metrics:
            metrics[key] = metrics.get(key, 0) + 1
        params.update(run.params)
    by_use = sorted(metrics, key=lambda k: (-metrics[k], k))
    offered = [*_BASE_COLUMNS, *(f"metrics.{k}" for k in by_use)]
    offered += [f"params.{k}" for k in sorted(params)]
    if view.columns:
        # A chosen column stays on every page, even where no run of the page has the key.
        shown = [
            c for c in view.columns if c in _BASE_COLUMNS or c.startswith(("metrics.", "params."))
        ][:_MAX_COLUMNS]
        offered += [c for c in shown if c not in offered]
    else:
        shown = [*_BASE_COLUMNS, *(f"metrics.{k}" for k in by_use[:_DEFAULT_METRICS])]
    return shown, offered


async def runs_page(request: Request) -> Response:
    """The whole page: filter form, column chooser and the first table."""
    return await _render(request, "runs.html")


async def runs_table(request: Request) -> Response:
    """The table fragment htmx swaps in; the address bar shows the page's own URL.

    Loaded as a page of its own (a reload, a bookmark) it is the whole page.
    """
    if not is_htmx(request):
        return await _render(request, "runs.html")
    response = await _render(request, "runs_table.html")
    response.headers["HX-Push-Url"] = "/runs" + RunsView.of(request).link()
    return response


async def _render(request: Request, template: str) -> Response:
    workspace = request.app.state.ui.workspace
    view = RunsView.of(request)
    error = None
    runs: list[Run] = []
    total = 0
    try:
        runs, total = await run_in_threadpool(_page, workspace, view)
    except ShipyardError as e:  # a bad filter: say why, where the table would be
        error = str(e)
    shown, offered = _columns(view, runs)
    pages = max(1, -(-total // view.size))
    return render(
        request,
        template,
        view=view,
        runs=runs,
        total=total,
        pages=pages,
        shown=shown,
        offered=offered,
        sizes=PAGE_SIZES,
        error=error,
    )


async def experiments_page(request: Request) -> Response:
    """Every experiment with its number of runs."""
    workspace = request.app.state.ui.workspace
    experiments = await run_in_threadpool(workspace.list_experiments)
    return render(request, "experiments.html", experiments=experiments)


ROUTES = [
    Route("/runs", runs_page, methods=["GET"]),
    Route("/runs/table", runs_table, methods=["GET"]),
    Route("/experiments", experiments_page, methods=["GET"]),
]
