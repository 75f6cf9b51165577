"""The home page: straight to the runs list (the page most visits start from)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import RedirectResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


async def home(_: Request) -> Response:
    """Redirect to /runs."""
    return RedirectResponse("/runs", status_code=303)


ROUTES = [Route("/", home, methods=["GET"])]
