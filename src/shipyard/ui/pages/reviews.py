"""Reviews and four-eyes promotion: the requests, a request's evidence, and the decisions.

Every read and write goes through ``registry.reviews.ReviewService``, as ``shipyard models
reviews|review|request-promotion|approve|reject`` and the model server's ``/reviews`` routes
do: the same rules (``reviews:`` in ``shipyard.yaml``), the same gate, the same audit entries.
The guard has already checked the route's action and the CSRF token; the service checks what
only it knows (the requester may not decide their own request, the rule's approver roles, a
stale or closed request) and its refusal is shown on the request's page with the error's HTTP
status (403, 409, 422), so the person sees why and nothing changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from shipyard.core.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ShipyardError,
)
from shipyard.store.reviews import STATES
from shipyard.track.markdown import render_markdown
from shipyard.ui.pages.comments import comment_section
from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.security.identities import Identity
    from shipyard.ui.context import UiContext

LIST_LIMIT = 200


def status_of(error: ShipyardError) -> int:
    """The HTTP status of a refusal, as the model server's routes answer it."""
    if isinstance(error, PermissionDenied):
        return 403
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, InvalidArgument):
        return 422
    return 400


async def reviews_page(request: Request) -> Response:
    """Promotion requests, newest first, filtered by state and model."""
    ui = request.app.state.ui
    state = request.query_params.get("state", "").strip() or None
    model = request.query_params.get("model", "").strip() or None
    try:
        found = await run_in_threadpool(
            lambda: ui.reviews().list(model=model, state=state, limit=LIST_LIMIT)
        )
        error = None
    except ShipyardError as e:
        found, error = [], str(e)
    return render(
        request,
        "reviews.html",
        status_code=422 if error else 200,
        requests=found,
        states=STATES,
        state=state or "",
        model=model or "",
        error=error,
    )


def _detail(ui: UiContext, identity: Identity, request_id: str) -> dict[str, Any]:
    detail = ui.reviews().detail(request_id)
    evidence = detail.evidence.body
    return {
        "detail": detail,
        "decisions": [
            (d, Markup(render_markdown(d.comment)) if d.comment else None)  # noqa: S704
            for d in detail.decisions
        ],
        "r": detail.request,
        "gate": evidence.get("gate") or {},
        "intervals": evidence.get("intervals") or {},
        "drift": evidence.get("drift") or {},
        "cost": evidence.get("cost") or {},
        "slices": evidence.get("slices"),
        "evidence_sha256": detail.evidence.sha256,
        **comment_section(ui, identity, "review", detail.request.request_id),
    }


async def review_page(
    request: Request, error: str | None = None, status_code: int = 200
) -> Response:
    """One request: its evidence, decisions, comments, and the decision forms."""
    ui = request.app.state.ui
    identity = request.state.identity
    try:
        details = await run_in_threadpool(_detail, ui, identity, request.path_params["request_id"])
    except (NotFound, InvalidArgument) as e:
        return render(request, "error.html", status_code=404, message=str(e))
    return render(request, "review.html", status_code=status_code, error=error, **details)


async def request_promotion(request: Request) -> Response:
    """Ask for an alias to move to a version (from the model page's form)."""
    ui = request.app.state.ui
    identity = request.state.identity
    form = request.state.form
    name = form.get("model", "")
    alias = form.get("alias", "").strip() or "production"
    reason = form.get("reason", "").strip() or None
    back = f"/models/{quote(name, safe='')}?version={quote(form.get('version', ''), safe='')}"
    if not form.get("version", "").isdigit():
        return render(request, "error.html", status_code=422, message="pick a version number")
    version = int(form["version"])

    def ask() -> Any:
        return ui.reviews().request_promotion(
            name, version, actor=identity, alias=alias, reason=reason
        )

    try:
        result = await run_in_threadpool(ask)
    except ShipyardError as e:
        return render(request, "error.html", status_code=status_of(e), message=str(e), back=back)
    if result.action == "requested" and result.request_id:
        return RedirectResponse(f"/reviews/{quote(result.request_id)}", status_code=303)
    return render(request, "error.html", status_code=200, message=result.describe(), back=back)


async def _decide(request: Request, how: str) -> Response:
    ui = request.app.state.ui
    identity = request.state.identity
    request_id = request.path_params["request_id"]
    comment = request.state.form.get("comment", "").strip() or None

    def decide() -> None:
        reviews = ui.reviews()
        if how == "approve":
            reviews.approve(request_id, actor=identity, comment=comment)
        else:
            reviews.reject(request_id, actor=identity, comment=comment or "")

    try:
        await run_in_threadpool(decide)
    except ShipyardError as e:
        return await review_page(request, error=str(e), status_code=status_of(e))
    return RedirectResponse(f"/reviews/{quote(request_id)}", status_code=303)


async def approve(request: Request) -> Response:
    """Approve (``models.approve``); the approval completing the count moves the alias."""
    return await _decide(request, "approve")


async def reject(request: Request) -> Response:
    """Reject (``models.reject``), with the comment the rejection needs."""
    return await _decide(request, "reject")


ROUTES = [
    Route("/reviews", reviews_page, methods=["GET"]),
    Route("/reviews", request_promotion, methods=["POST"]),
    Route("/reviews/{request_id}", review_page, methods=["GET"]),
    Route("/reviews/{request_id}/approve", approve, methods=["POST"]),
    Route("/reviews/{request_id}/reject", reject, methods=["POST"]),
]
