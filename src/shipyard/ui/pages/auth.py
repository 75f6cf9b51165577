"""Sign-in with an API token, and sign-out.

Shipyard users have tokens, not passwords (``shipyard tokens create``); the sign-in form takes
one, ``security.accounts`` checks it as it does for the CLI and the model server, and a fresh
session cookie is set: HttpOnly, SameSite=Lax, Secure when served over TLS. Sign-ins are
audited (``ui.sign_in``), failed ones throttled per client address (``security.ratelimit``).
The ``next`` target is a local path only, so the page cannot redirect elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from shipyard.security import audit
from shipyard.security.identities import AuthenticationFailed
from shipyard.ui.render import render
from shipyard.ui.sessions import COOKIE

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.security.identities import Identity

_SESSION_S = 8 * 3600


def _next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


def _set_cookie(request: Request, response: Response, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        max_age=_SESSION_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


async def login_page(request: Request) -> Response:
    """The sign-in form (a fresh anonymous session holds its CSRF token)."""
    ui = request.app.state.ui
    session = request.state.session
    fresh = session is None
    if fresh:
        session = ui.sessions.new()
        request.state.session = session
    response = render(
        request, "login.html", next=_next(request.query_params.get("next")), error=None
    )
    if fresh:
        _set_cookie(request, response, session.sid)
    return response


async def login(request: Request) -> Response:
    """Check the token; on success a new session and a redirect to ``next``."""
    ui = request.app.state.ui
    form: dict[str, str] = request.state.form
    address = request.client.host if request.client else "unknown"
    target = _next(form.get("next"))
    if ui.limiter.retry_after_s(address) is not None:
        return render(
            request,
            "login.html",
            status_code=429,
            next=target,
            error="too many failed sign-ins from this address; wait a minute",
        )
    try:
        session = ui.sessions.sign_in(
            request.state.session, form.get("token", "").strip(), f"ui:{address}"
        )
    except AuthenticationFailed as e:
        ui.limiter.failed(address)
        audit.record(
            ui.accounts.store,
            "anonymous",
            "ui.sign_in",
            "ui",
            outcome="denied",
            detail={"reason": e.reason},
            source=f"ui:{address}",
            clock=ui.accounts.clock,
        )
        return render(
            request,
            "login.html",
            status_code=401,
            next=target,
            error="that token was not accepted: check it, or ask an admin for a new one",
        )
    identity: Identity = session.identity  # set by a successful sign-in
    audit.record(
        ui.accounts.store,
        identity,
        "ui.sign_in",
        "ui",
        detail={"token_id": identity.token_id},
        clock=ui.accounts.clock,
    )
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, session.sid)
    return response


async def logout(request: Request) -> Response:
    """End the session."""
    request.app.state.ui.sessions.drop(request.state.session.sid)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
