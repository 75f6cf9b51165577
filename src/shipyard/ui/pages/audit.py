"""The audit log (admin only: ``audit.read``), newest first, filtered as ``shipyard audit list``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

MAX_ENTRIES = 500


async def audit_page(request: Request) -> Response:
    """The newest entries matching the actor/action/object filters."""
    store = request.app.state.ui.accounts.store
    query = request.query_params
    filters = {
        "actor": query.get("actor", "").strip() or None,
        "action": query.get("action", "").strip() or None,
        "object_prefix": query.get("object", "").strip() or None,
    }
    try:
        limit = min(MAX_ENTRIES, max(1, int(query.get("limit", "100"))))
    except ValueError:
        limit = 100
    entries = await run_in_threadpool(lambda: store.list_audit(**filters, limit=limit))
    return render(
        request, "audit.html", entries=list(reversed(entries)), filters=filters, limit=limit
    )


ROUTES = [Route("/audit", audit_page, methods=["GET"])]
