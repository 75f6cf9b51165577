"""Request bodies in and JSON answers out, with the limits every body-reading route shares.

Bodies are read with a hard size limit (413), parsed with orjson (400 on malformed JSON; a
non-JSON content type or none is 415).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from shipyard.serve.errors import HttpError

if TYPE_CHECKING:
    from starlette.requests import Request


def json_response(payload: Any, status_code: int = 200) -> Response:
    """``payload`` as a JSON response (numpy values allowed)."""
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type="application/json",
    )


async def read_json(request: Request, limit: int) -> Any:
    """Read at most ``limit`` bytes (413 beyond), then parse JSON (400/415 on failure).

    Raises:
        HttpError: 413 over the limit, 415 without ``Content-Type: application/json``, 400
            for a body that is not JSON.
    """
    headers = request.headers
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    # No Content-Type is refused as well (issue 14): guessing JSON is how a text/plain form
    # post from a browser (a "simple" request, no CORS preflight) would reach the model.
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        named = f"content type {kind!r}" if kind else "a body without a Content-Type"
        raise HttpError(415, f"{named} is not accepted; send application/json")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return parse_json(chunks[0] if len(chunks) == 1 else b"".join(chunks))


def too_large(limit: int) -> HttpError:
    """The 413 of a body over ``limit`` bytes."""
    return HttpError(413, f"request body over {limit} bytes; send fewer rows per request")


def parse_json(raw: bytes) -> Any:
    """Parse a request body read whole.

    Raises:
        HttpError: 400 for a body that is not JSON.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise HttpError(
            400, "the body is not valid JSON (NaN and Infinity are not JSON)", str(e)
        ) from e
