"""The prediction hot path's own lane through the ASGI stack (issue 17).

A one-row prediction at the HTTP floor has a budget of tens of microseconds, and FastAPI's
own layers (the exception middleware, the router trying each route's pattern, the request
and response wrappers with their exit stacks) took a large share of it. ``FastLane`` sits
just inside the auth guard: a ``POST /models/{name}/predict`` or ``/v2/models/{name}/infer``
goes straight to its handler in ``serve.routes.inference``, the same function FastAPI would
call; everything else continues into the FastAPI app untouched. Errors get the answers the
app's handlers give (``serve.errors.answer_error``), and anything they do not take propagates
to the server-error middleware, as before. The routes stay declared in FastAPI, so the
OpenAPI document is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from shipyard.serve.errors import answer_error
from shipyard.serve.routes.inference import infer, predict

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send

    Handler = Callable[..., Awaitable[Response]]


class FastLane:
    """ASGI middleware: the two prediction routes called directly, the rest passed on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a prediction directly, or hand the request to the app."""
        found = _prediction(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        handler, name = found
        request = Request(scope, receive)
        try:
            response = await handler(name=name, request=request)
        except Exception as e:
            answer = await answer_error(request, e)
            if answer is None:
                raise
            response = answer
        await response(scope, receive, send)


def _prediction(scope: Scope) -> tuple[Handler, str] | None:
    """The handler and model name of a prediction request, or None for any other request."""
    if scope["method"] != "POST":
        return None
    parts = scope["path"].split("/")
    # "/models/{name}/predict" -> ["", "models", name, "predict"];
    # "/v2/models/{name}/infer" -> ["", "v2", "models", name, "infer"].
    if len(parts) == 4 and parts[1] == "models" and parts[3] == "predict" and parts[2]:
        return predict, parts[2]
    if len(parts) == 5 and parts[1:3] == ["v2", "models"] and parts[4] == "infer" and parts[3]:
        return infer, parts[3]
    return None
