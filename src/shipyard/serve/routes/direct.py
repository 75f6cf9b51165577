"""A FastAPI route that calls its handler directly, for the prediction hot path (issue 17).

FastAPI solves each handler's parameters per request (path, query, body models, dependencies):
tens of microseconds, a large share of a one-row prediction at the HTTP floor. A
``DirectRoute`` keeps the FastAPI route object, so the OpenAPI document still shows the path
parameters, responses and body schema, but at run time hands the handler its path parameters
(all text) and the ``Request`` without solving anything. Handlers on it read their own body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.routing import APIRoute

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from starlette.requests import Request
    from starlette.responses import Response


class DirectRoute(APIRoute):
    """An ``APIRoute`` whose handler gets ``request`` and the path parameters as keywords."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler called per request: the endpoint itself, with no parameter solving."""
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handle
