"""The UI's one guard in front of every route: headers, session, permission, CSRF.

Each request passes it before routing. It finds the route template the request reaches and
looks its action up in the one permission table (``security.permissions.UI_ROUTES``): a route
missing there is denied (403), as on the model server. Then:

- every answer gets the security headers: a Content-Security-Policy that allows scripts,
  styles and fetches from this origin only (no inline script anywhere: all JavaScript is in
  static files), ``nosniff``, no framing, no referrer, no caching of pages;
- a non-public route needs a signed-in session: a page load without one is sent to the sign-in
  page (an htmx request gets ``HX-Redirect``), anything else gets 401; a role without the
  route's action gets 403;
- every state-changing request (anything but GET/HEAD) must carry the session's CSRF token,
  in the ``X-CSRF-Token`` header (htmx requests, set by static/app.js) or the ``csrf`` form
  field (plain forms), else 403. The form body is read here (capped), checked, kept in
  ``request.state.form`` for the handler, and the handler never sees a request that failed.

The session and identity are left in ``request.state.session`` / ``request.state.identity``.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from starlette.routing import Match

from shipyard.security.permissions import PUBLIC, check, ui_route_action
from shipyard.ui.sessions import COOKIE

if TYPE_CHECKING:
    from starlette.routing import Router
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from shipyard.ui.sessions import Session, Sessions

log = logging.getLogger("shipyard.ui")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-src 'self'; frame-ancestors 'none'"
)
#: An artifact shown as itself (an HTML report in a frame): no script runs in it at all.
ARTIFACT_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'"
)
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = 256 * 1024


class UiGuard:
    """The ASGI guard (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, sessions: Sessions, router: Router) -> None:
        self.app = app
        self.sessions = sessions
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request, or refuse it, as the module docstring says."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"
        send = _with_headers(send, secure)
        template = self._template(scope)
        if template is None:  # no such route: the router answers 404/405
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        action = ui_route_action(method, template)
        if action is None:
            log.error("UI route %s %s has no permission-table entry: denied", method, template)
            await _plain(send, 403, "this page is not in the permission table; denied")
            return
        state = scope.setdefault("state", {})
        session = self.sessions.get(_cookie(scope))
        state["session"] = session
        state["identity"] = None
        if action != PUBLIC:
            identity = None if session is None else self.sessions.identity(session)
            if identity is None:
                await _sign_in_first(scope, send)
                return
            decision = check(identity, action)
            if not decision.allowed:
                log.warning(
                    "denied %s %s to %s: %s", method, template, identity.name, decision.reason
                )
                await _plain(send, 403, f"permission denied: {decision.reason}")
                return
            state["identity"] = identity
        if method in _SAFE:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _plain(send, 413, "the form is too large")
            return
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if not _csrf_ok(scope, session, form):
            log.warning("refused %s %s: missing or wrong CSRF token", method, template)
            await _plain(send, 403, "missing or wrong CSRF token: reload the page and try again")
            return
        state["form"] = form
        await self.app(scope, _replay(body), send)

    def _template(self, scope: Scope) -> str | None:
        for route in self.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "")) or None
        return None


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == COOKIE:
                    return str(found)
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _csrf_ok(scope: Scope, session: Session | None, form: dict[str, str]) -> bool:
    if session is None:
        return False
    given = _header(scope, b"x-csrf-token") or form.get("csrf") or ""
    return hmac.compare_digest(given.encode(), session.csrf.encode())


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _with_headers(send: Send, secure: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            extra: list[tuple[bytes, bytes]] = [
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"),
                (b"cross-origin-opener-policy", b"same-origin"),
            ]
            if b"content-security-policy" not in names:
                extra += [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY")]
            if b"cache-control" not in names:
                extra.append((b"cache-control", b"no-store"))
            if secure:
                extra.append((b"strict-transport-security", b"max-age=31536000"))
            message = {**message, "headers": headers + extra}
        await send(message)

    return wrapped


async def _sign_in_first(scope: Scope, send: Send) -> None:
    path = scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    target = "/login?next=" + quote(path + (f"?{query}" if query else ""), safe="")
    if _header(scope, b"hx-request"):
        await _plain(send, 401, "sign in first", [(b"hx-redirect", target.encode())])
    elif scope["method"] in _SAFE:
        await _plain(send, 303, "sign in first", [(b"location", target.encode())])
    else:
        await _plain(send, 401, "sign in first")


async def _plain(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    base: list[Any] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": body})
