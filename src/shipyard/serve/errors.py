"""How the model server answers errors: one handler per kind, statuses from the one table.

Every ``ShipyardError`` a route raises is answered with the HTTP status that
``shipyard.core.error_status`` gives its category, so a ``Conflict`` is a 409 and a
``PermissionDenied`` a 403 wherever they are raised (before, four handlers inside
``create_app`` knew two categories and the rest became 500s; issue 15). ``HttpError`` is left
for what only HTTP knows: a body over the limit (413), not JSON (400), the wrong content type
(415). Every error body is ``{"error": ..., "detail": ...}``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from shipyard.core.error_status import status_of
from shipyard.core.errors import ShipyardError
from shipyard.serve.contract import ContractError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fastapi import FastAPI, Request

log = logging.getLogger("shipyard.serve")


class HttpError(Exception):
    """An error answered with ``status`` and a JSON ``{"error": ..., "detail": ...}``."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


def error_response(status: int, error: str, detail: Any = None) -> JSONResponse:
    """The one error body, ``{"error": ..., "detail": ...}``, with ``status``."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


async def _http_error(_: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, HttpError)
    return error_response(e.status, e.error, e.detail)


async def _contract_error(_: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, ContractError)
    detail = [p.to_dict() for p in e.problems]
    return error_response(422, "the input does not match the model's contract", detail)


async def _shipyard_error(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, ShipyardError)
    status = status_of(e).http
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, e, exc_info=e)
    return error_response(status, e.message, {"code": e.code})


_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse]]] = {
    HttpError: _http_error,
    ContractError: _contract_error,
    ShipyardError: _shipyard_error,
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer ``HttpError``, ``ContractError`` and every ``ShipyardError`` on ``app``."""
    for kind, handler in _HANDLERS.items():
        app.add_exception_handler(kind, handler)


async def answer_error(request: Request, e: Exception) -> JSONResponse | None:
    """The answer the app's handlers give ``e``, or None when no handler takes it.

    For code that runs outside the app's exception middleware (``serve.fast_lane``): the
    most specific handler by the exception's MRO wins, as Starlette picks it.
    """
    for kind in type(e).__mro__:
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return await handler(request, e)
    return None


__all__ = ["HttpError", "answer_error", "error_response", "install_error_handlers"]
