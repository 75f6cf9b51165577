"""Liveness and readiness probes: public, cheap, and answered for ``HEAD`` as well (issue 14)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shipyard.serve.context import context_of
from shipyard.serve.openapi import READY_ANSWER, json_answer

router = APIRouter()


@router.get("/v2/health/live")
async def live() -> dict[str, bool]:
    """Liveness: the process answers."""
    return {"live": True}


@router.get(
    "/v2/health/ready",
    responses={
        200: json_answer(READY_ANSWER),
        503: json_answer(READY_ANSWER, "A model is not loaded, or the server is stopping."),
    },
)
async def ready(request: Request) -> JSONResponse:
    """Readiness: every model is loaded and warmed, and the server is not draining.

    It stays true while the metadata database is unreachable: the loaded models still answer
    (issue 20's degraded mode), and a balancer that took every replica out would turn a
    database outage into a serving outage.
    """
    is_ready = context_of(request).ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


# Probes that only look at the status send HEAD (issue 14); kept out of the document, as HEAD
# is GET without the body.
for _path, _probe in (("/v2/health/live", live), ("/v2/health/ready", ready)):
    router.add_api_route(_path, _probe, methods=["HEAD"], include_in_schema=False)
