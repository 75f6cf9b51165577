"""Static files shipped in the package: htmx, uPlot, our JS and CSS; a health probe.

Only files present in ``static/`` when the process starts are served, looked up by exact
name in that list (never joined onto a path), so no request can reach another file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

STATIC = Path(__file__).parent.parent / "static"
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


def _files() -> dict[str, tuple[bytes, str]]:
    found: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in _TYPES:
            name = path.relative_to(STATIC).as_posix()
            found[name] = (path.read_bytes(), _TYPES[path.suffix])
    return found


_FILES = _files()


async def static(request: Request) -> Response:
    """One shipped file, cached by the browser for an hour."""
    found = _FILES.get(request.path_params["path"])
    if found is None:
        return PlainTextResponse("not found", status_code=404)
    body, media_type = found
    return Response(body, media_type=media_type, headers={"cache-control": "max-age=3600"})


async def healthz(_: Request) -> Response:
    """The liveness probe (public, like the model server's)."""
    return PlainTextResponse("ok")


ROUTES = [
    Route("/static/{path:path}", static, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
