"""Reviews and four-eyes promotion: where those pages plug in.

The reviews domain (promotion requests, approvals, comments) is built apart (registry, store,
CLI); its pages replace this module's placeholder, keeping the route and its permission-table
entry. Until then the page says so, and models are promoted with ``shipyard models promote``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


async def reviews_page(request: Request) -> Response:
    """The placeholder page."""
    return render(request, "reviews.html")


ROUTES = [Route("/reviews", reviews_page, methods=["GET"])]
