"""MLflow's error shape: ``{"error_code": "...", "message": "..."}`` with a fitting 4xx.

The MLflow client turns such a body into an ``MlflowException`` carrying the code, so users
see the message Shipyard wrote. Every ``ShipyardError`` is mapped by its category (the one
table in ``core.error_status``) to MLflow's code; an error that is not a ``ShipyardError`` is a
bug and answers 500 with ``INTERNAL_ERROR`` (the sweep in the tests makes sure none does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response

from shipyard.core.error_status import status_of
from shipyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    ParamConflict,
    PermissionDenied,
    ShipyardError,
    Unavailable,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

INVALID = "INVALID_PARAMETER_VALUE"
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
EXISTS = "RESOURCE_ALREADY_EXISTS"
NO_ENDPOINT = "ENDPOINT_NOT_FOUND"
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"

#: Shipyard's error categories -> MLflow's error codes (MLflow's client maps these back).
_CODES: Mapping[type[ShipyardError], str] = {
    ParamConflict: INVALID,  # MLflow refuses a changed param as a bad parameter value
    InvalidArgument: INVALID,
    NotFound: NOT_FOUND,
    AlreadyExists: EXISTS,
    Conflict: "INVALID_STATE",
    PermissionDenied: "PERMISSION_DENIED",
    Unavailable: "TEMPORARILY_UNAVAILABLE",
}


class MlflowError(Exception):
    """An MLflow-shaped error answered with ``status`` (always a 4xx for the caller's fault)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message: str) -> MlflowError:
    """A 400 ``INVALID_PARAMETER_VALUE``: the request names or carries something wrong."""
    return MlflowError(400, INVALID, message)


def unsupported(what: str, instead: str) -> MlflowError:
    """A 400 ``NOT_IMPLEMENTED`` for a route Shipyard knows but does not offer, with the way out."""
    return MlflowError(400, NOT_IMPLEMENTED, f"{what} is not supported by Shipyard; {instead}")


def error_body(status: int, code: str, message: str) -> Response:
    """The MLflow error response."""
    return Response(
        orjson.dumps({"error_code": code, "message": message}),
        status_code=status,
        media_type="application/json",
    )


def answer(e: Exception) -> Response | None:
    """The MLflow answer to ``e``, or None when it is not an error this API knows."""
    if isinstance(e, MlflowError):
        return error_body(e.status, e.code, e.message)
    if isinstance(e, ShipyardError):
        status = status_of(e).http
        code = next((_CODES[c] for c in type(e).__mro__ if c in _CODES), "INTERNAL_ERROR")
        if code == INVALID:
            status = 400  # MLflow answers bad parameters with 400 (Shipyard's REST says 422)
        return error_body(status, code, e.message)
    return None


__all__ = ["MlflowError", "answer", "error_body", "invalid", "unsupported"]
