"""HTTP authentication and authorization for the model server: an adapter over ``security``.

Every request passes one ASGI middleware before routing. It finds the route the request will
reach, looks its action up in the one permission table (``security.permissions.HTTP_ROUTES``)
and lets it through untouched only if the action is ``public`` (the health probes). Otherwise
it wants ``Authorization: Bearer <token>``: no token or a bad one is 401 (logged with the
client address and the reason, never the token), too many bad tokens from one address make
its further failures 429 instead of 401 (a valid token from that address still gets through:
only failures are throttled, so one attacker cannot lock out the users behind a shared NAT),
a role that lacks the action is 403, and a route missing from the table is 403 as well
(default deny). The caller's ``Identity`` is left in ``request.state.identity``.

Token lookups are cached for ``cache_ttl_s`` (5 s by default) by the token's SHA-256, so a
revoked token, a disabled user or a changed role takes effect within that time on every
worker without a database round trip per request. The store compares token hashes in constant
time; the cache is keyed by the hash, so no token is compared character by character either.

This guard is a plain ASGI layer (not a ``BaseHTTPMiddleware``, which wraps every request in
a task and stream pair), and it sits on the prediction hot path, so it keeps its per-request
work small (issue 17): which route a ``(method, path)`` reaches is remembered (bounded), and a
cached identity is stored per token and client address, ready to hand over.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import Unavailable
from shipyard.security import audit
from shipyard.security.identities import AuthenticationFailed, Identity
from shipyard.security.permissions import PUBLIC, Action, check, route_action
from shipyard.security.ratelimit import FailureLimiter
from shipyard.security.tokens import token_sha256
from shipyard.serve.store_health import StoreHealth

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.routing import Router
    from starlette.types import ASGIApp, Receive, Scope, Send

    from shipyard.security.accounts import Accounts

log = logging.getLogger("shipyard.serve.auth")
_MAX_CACHED = 10_000
_MAX_PATHS = 4_096


class ServerAuth:
    """Turns bearer tokens into identities for one project, with a short cache."""

    def __init__(
        self,
        accounts: Accounts,
        *,
        project: str,
        cache_ttl_s: float = 5.0,
        limiter: FailureLimiter | None = None,
        clock: Clock = SYSTEM_CLOCK,
        health: StoreHealth | None = None,
        stale_s: float = 3600.0,
    ) -> None:
        self.accounts = accounts
        self.project = project
        self.cache_ttl_ms = round(cache_ttl_s * 1000)
        # Degraded mode (issue 20): while the store is unreachable, a token checked within the
        # last ``stale_s`` is still accepted (a revocation cannot be seen then anyway).
        self.health = health or StoreHealth(clock)
        self.stale_ms = round(stale_s * 1000)
        self.clock = clock
        self.limiter = limiter or FailureLimiter(clock=clock)
        self._cache: dict[str, tuple[Identity, int]] = {}
        # The cached identity as handed to requests from one source, so a hit copies nothing.
        self._by_source: dict[tuple[str, str], tuple[Identity, int]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str, source: str) -> Identity | None:
        """The identity of ``token`` if it was checked less than the cache time ago."""
        key = token_sha256(token)
        now = self.clock.now_ms()
        # Plain dict reads and writes are atomic under the GIL; the lock guards only the
        # check-and-clear of a full cache in ``identify``.
        handed = self._by_source.get((key, source))
        if handed is not None and handed[1] > now:
            return handed[0]
        found = self._cache.get(key)
        if found is None:
            return None
        if found[1] <= now:
            if not self.health.degraded or found[1] + self.stale_ms <= now:
                return None
            self.health.stale_identities += 1  # the store is down: the last check stands
            return dataclasses.replace(found[0], source=source)
        identity = dataclasses.replace(found[0], source=source)
        if len(self._by_source) >= _MAX_CACHED:
            self._by_source.clear()
        self._by_source[(key, source)] = (identity, found[1])
        return identity

    def identify(self, token: str, source: str) -> Identity:
        """Check ``token`` against the store (blocking) and cache the answer.

        Raises:
            AuthenticationFailed: The token is not valid for this workspace.
            Unavailable: The store is unreachable and the token was not checked recently.
        """
        try:
            identity = self.accounts.authenticate(token, project=self.project, source=source)
        except Unavailable as e:
            self.health.failed(e)
            stale = self.cached(token, source)
            if stale is None:
                raise
            return stale
        self.health.ok()
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[token_sha256(token)] = (identity, self.clock.now_ms() + self.cache_ttl_ms)
        return identity

    def record(
        self,
        identity: Identity,
        action: Action,
        obj: str,
        *,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit entry for a change made through the server (blocking)."""
        audit.record(
            self.accounts.store,
            identity,
            action,
            obj,
            outcome=outcome,
            detail=detail,
            clock=self.accounts.clock,
        )


class AuthMiddleware:
    """The ASGI guard in front of every route (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, auth: ServerAuth, router: Router) -> None:
        self.app = app
        self.auth = auth
        self.router = router
        self._templates: dict[tuple[str, str], str | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let public routes through; authenticate and authorize everything else."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        template = self._template(scope)
        action = None if template is None else route_action(scope["method"], template)
        if action == PUBLIC:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        retry = self.auth.limiter.retry_after_s(address)  # before this request's own failure
        try:
            identity = await self._identity(scope, address)
        except Unavailable:  # a token never seen before, checked during a store outage
            await _answer(send, 503, "cannot check the token: the metadata store is unreachable")
            return
        if identity is None:
            if retry is not None:
                await _answer(
                    send,
                    429,
                    "too many failed authentications; retry later",
                    retry,
                    path=scope["path"],
                )
                return
            await _answer(send, 401, "a valid bearer token is required", path=scope["path"])
            return
        if template is None:  # no such route: let the router answer 404/405
            await self.app(scope, receive, send)
            return
        if action is None:
            log.error(
                "route %s %s has no permission-table entry: denied", scope["method"], template
            )
            await _answer(
                send, 403, f"{template} is not in the permission table; denied", path=scope["path"]
            )
            return
        decision = check(identity, action)
        if not decision.allowed:
            log.warning(
                "denied %s %s to %s: %s", scope["method"], template, identity.name, decision.reason
            )
            await _answer(send, 403, f"permission denied: {decision.reason}", path=scope["path"])
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)

    def _template(self, scope: Scope) -> str | None:
        key = (scope["method"], scope["path"])
        try:
            return self._templates[key]
        except KeyError:
            pass
        found = None
        for route in self.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                found = str(getattr(route, "path", None) or "") or None
                break
        if len(self._templates) >= _MAX_PATHS:  # paths carry model names: stay bounded
            self._templates.clear()
        self._templates[key] = found
        return found

    async def _identity(self, scope: Scope, address: str) -> Identity | None:
        token = _bearer(scope)
        source = f"http:{address}"
        reason = "no bearer token"
        if token is not None:
            identity = self.auth.cached(token, source)
            if identity is not None:
                return identity
            try:
                return await run_in_threadpool(self.auth.identify, token, source)
            except AuthenticationFailed as e:
                reason = e.reason
            self.auth.limiter.failed(address)  # a guess: only presented tokens count
        log.warning(
            "authentication failed from %s on %s %s: %s",
            address,
            scope["method"],
            scope["path"],
            reason,
        )
        return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


#: Paths of the MLflow-compatible API (``serve.mlflow``): refusals there use MLflow's shape.
_MLFLOW_PATHS = ("/api/", "/ajax-api/")
_MLFLOW_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "REQUEST_LIMIT_EXCEEDED"}


async def _answer(
    send: Send, status: int, error: str, retry_after_s: float | None = None, *, path: str = ""
) -> None:
    if path.startswith(_MLFLOW_PATHS):
        body = orjson.dumps({"error_code": _MLFLOW_CODES[status], "message": error})
    else:
        body = orjson.dumps({"error": error, "detail": None})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="shipyard"'))
    if retry_after_s is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after_s))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
