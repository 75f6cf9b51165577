"""The plain-JSON prediction answered straight from ASGI, before FastAPI's stack (issue 17).

At the HTTP floor a one-row prediction has tens of microseconds to spend, and the layers every
request crosses in FastAPI (its body-limit and telemetry wrappers, Starlette's error and
exception middleware, the auth guard's generic route lookup, the request and response
objects) took a large share of them. ``DirectPredict`` is called by the app itself
(``serve.app.ServingApp``) for ``POST /models/{name}/predict`` and does what those layers
would, for the common case only:

1. **Auth.** The bearer token must have a cached identity (``ServerAuth.cached``) whose role
   allows ``serve.predict``; the identity is left in the scope's state, as the guard does.
2. **Cheap checks before the body.** The model must be served, the content type JSON and a
   declared length within the limit.

Anything else (no token, a token not checked in the last few seconds, a denial, an unknown
model, a wrong content type or length, the OpenTelemetry instrumentation configured) is handed
to the full app untouched: nothing has been read yet, so the regular path answers it exactly as
before (401/403/404/413/415/429, audit and logging included). Past that point the body is read
with the same size limit and answered by the route's own code (``routes.inference.
answer_plain``); errors get the app's handlers' answers (``serve.errors.answer_error``), and
anything they do not take is a plain-text 500 and re-raised, as Starlette's server-error
middleware does. The response carries the headers Starlette's ``Response`` would, so the
answers are byte-identical (tests/unit/serve/test_direct.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.requests import Request

from shipyard.security.permissions import check, route_action
from shipyard.serve.bodies import parse_json, too_large
from shipyard.serve.errors import answer_error
from shipyard.serve.routes.inference import answer_plain

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from shipyard.security.identities import Identity
    from shipyard.serve.context import ServerContext

PREDICT_TEMPLATE = "/models/{name}/predict"
_JSON = b"application/json"
_SERVER_ERROR = b"Internal Server Error"


class DirectPredict:
    """Answers ``POST /models/{name}/predict`` from ASGI when it is the plain case."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.action = route_action("POST", PREDICT_TEMPLATE)
        self._allowed: Identity | None = None  # the last identity found allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request and return True, or return False having touched nothing."""
        path: str = scope["path"]
        if not path.startswith("/models/") or not path.endswith("/predict"):
            return False
        name = path[8:-8]
        if not name or "/" in name:
            return False
        context = self.context
        authorization = content_type = length = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                if authorization is None:
                    authorization = value
            elif key == b"content-type":
                if content_type is None:
                    content_type = value
            elif key == b"content-length" and length is None:
                length = value
        if authorization is None or content_type is None:
            return False
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        client = scope.get("client")
        identity = context.auth.cached(token, f"http:{client[0] if client else 'unknown'}")
        if identity is None or self.action is None:
            return False
        if identity is not self._allowed:  # identities are immutable: decided once each
            if not check(identity, self.action).allowed:
                return False
            self._allowed = identity
        if name not in context.runtime.routers:
            return False
        model = context.runtime.served(name)
        limit = context.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            return False
        if content_type != _JSON and not _is_json(content_type):
            return False
        scope.setdefault("state", {})["identity"] = identity
        try:
            message = await receive()
            if message["type"] == "http.disconnect":
                return True  # the client is gone: nothing to answer
            raw: bytes = message.get("body", b"")
            if message.get("more_body", False):
                raw = await _rest(receive, raw, limit)
            elif len(raw) > limit:
                raise too_large(limit)
            content = await answer_plain(
                context, name, model, parse_json(raw), _Headers(raw=scope["headers"])
            )
        except _Disconnected:
            return True
        except Exception as e:
            answer = await answer_error(Request(scope, receive), e)
            if answer is None:
                await _respond(send, 500, _SERVER_ERROR, b"text/plain; charset=utf-8")
                raise
            await answer(scope, receive, send)
            return True
        await _respond(send, 200, content, _JSON)
        return True


class _Headers(Headers):
    """Starlette's headers with a ``get`` that scans instead of raising and catching KeyError.

    The scoring code asks for headers most requests do not send (``x-request-id``, a traffic
    policy's sticky header); ``Mapping.get`` answers those through an exception each time.
    """

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of header ``key`` (any case), or ``default``."""
        wanted = key.lower().encode("latin-1")
        for name, value in self.raw:
            if name == wanted:
                return value.decode("latin-1")
        return default


class _Disconnected(Exception):
    """The client went away while its body was being read."""


def _is_json(content_type: bytes) -> bool:
    """What ``bodies.read_json`` accepts: the media type, parameters and case aside."""
    return content_type.decode("latin-1").split(";")[0].strip().lower() == "application/json"


async def _rest(receive: Receive, first: bytes, limit: int) -> bytes:
    """The remaining chunks of a body sent in several, within ``limit`` (413 beyond)."""
    chunks, size = [first], len(first)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, kind: bytes) -> None:
    """Send ``body`` with the headers (and their order) of Starlette's ``Response``."""
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", kind)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
