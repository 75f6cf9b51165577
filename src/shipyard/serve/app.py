"""The HTTP face of a model server, assembled: routes, auth, error handlers, lifespan.

``create_app`` only wires things together (issue 15): the routes live in
``shipyard.serve.routes`` (one module per concern), reading what they need from a
``ServerContext`` left on ``app.state.shipyard``; errors are answered by ``serve.errors`` with
statuses from ``core.error_status``; the bearer-token guard is the plain ASGI layer
``serve.auth.AuthMiddleware``, and predictions take ``serve.fast_lane`` past FastAPI's
routing (the routes stay declared, for the OpenAPI document). Bodies are read with a hard
size limit (413), parsed with orjson (400 on malformed JSON, 415 on a non-JSON content type),
checked against the model's contract (422 naming the field) and only then scored. The
prediction log is fed after the answer is ready and never blocks it.
"""

from __future__ import annotations

import asyncio
import gc
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from shipyard.monitor.feedback import FeedbackStore
from shipyard.serve.auth import AuthMiddleware
from shipyard.serve.context import ServerContext
from shipyard.serve.direct import DirectPredict
from shipyard.serve.errors import install_error_handlers
from shipyard.serve.fast_lane import FastLane
from shipyard.serve.lifecycle import Lifecycle
from shipyard.serve.metrics import Metrics
from shipyard.serve.routes import admin, health, inference
from shipyard.serve.routes import feedback as feedback_routes
from shipyard.serve.routes import metrics as metrics_routes
from shipyard.serve.routes import teamwork as teamwork_routes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from starlette.types import Receive, Scope, Send

    from shipyard.serve.auth import ServerAuth
    from shipyard.serve.context import Teamwork
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Runtime

__all__ = ["Metrics", "create_app"]

#: The youngest generation's collection threshold while serving (CPython's default is 700).
#: Each collection promotes what is still alive (the prediction log's queued records live up
#: to a second), and the promotions trigger full collections that walk everything allocated
#: since ``gc.freeze``: at 700 they stalled the event loop often enough to be the p99 at 8
#: connections (issue 17; ``benchmarks/serving.py``: about a third of the p99, 9 % more
#: throughput at 20,000). A request's own garbage is freed by reference counting, not here.
SERVER_GC_THRESHOLD = 20_000


class ServingApp(FastAPI):
    """FastAPI, with the plain-JSON prediction answered first by ``serve.direct``.

    ``direct`` declines (returns False, having read nothing) whatever is not the plain case,
    and the request then takes the whole stack. It is not used while FastAPI's own
    OpenTelemetry instrumentation is configured (looked at once, when serving starts), so
    traced requests keep their spans.
    """

    direct: DirectPredict | None = None
    _direct_on: bool = False

    def started(self) -> None:
        """Turn the direct path on, unless telemetry is configured (see the class docstring)."""
        telemetry = getattr(self, "_native_telemetry", None)  # FastAPI >= 0.16x
        traced = telemetry is not None and bool(telemetry.enabled())
        self._direct_on = self.direct is not None and not traced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a plain prediction directly; hand everything else to FastAPI."""
        if (
            self._direct_on
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and self.direct is not None
        ):
            scope["app"] = self
            if await self.direct(scope, receive, send):
                return
        await super().__call__(scope, receive, send)


def create_app(
    runtime: Runtime,
    *,
    auth: ServerAuth,
    prediction_log: PredictionLog | None = None,
    max_body_bytes: int | None = None,
    feedback: FeedbackStore | None = None,
    allowed_hosts: Sequence[str] | None = None,
    lifecycle: Lifecycle | None = None,
    teamwork: Teamwork | None = None,
) -> FastAPI:
    """Build the ASGI app serving ``runtime``'s models.

    Feedback labels are kept next to the prediction log unless ``feedback`` names a store;
    without either, ``POST /models/{name}/feedback`` answers 503. Every route but the health
    probes needs a bearer token that ``auth`` accepts (see ``shipyard.serve.auth``).
    ``allowed_hosts`` (e.g. ``["models.example.com", "*.internal"]``), when given, turns away
    any request whose ``Host`` header names another host with 400, against DNS rebinding and
    poisoned absolute URLs. ``lifecycle`` (default: no drain) turns readiness off on SIGTERM
    some seconds before uvicorn stops accepting (``serve.lifecycle``). ``teamwork`` serves
    ``/reviews``, ``/comments`` and ``/activity`` (503 without it).
    """
    if feedback is None and prediction_log is not None:
        feedback = FeedbackStore.beside(prediction_log.root, clock=prediction_log)
    context = ServerContext(
        runtime=runtime,
        auth=auth,
        metrics=Metrics(),
        max_body_bytes=max_body_bytes or runtime.spec.max_body_bytes,
        prediction_log=prediction_log,
        feedback=feedback,
        lifecycle=lifecycle or Lifecycle(),
        teamwork=teamwork,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if prediction_log is not None:
            prediction_log.start()
        await runtime.start()
        context.lifecycle.install(asyncio.get_running_loop())
        # Everything loaded so far (libraries, models) lives as long as the server: move it
        # out of the collector's sight. Without this every full collection walked ~300k
        # startup objects and stalled the event loop for 0.3-0.6 s about once a second under
        # load (issue 17, measured with the prediction log on).
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(SERVER_GC_THRESHOLD, *thresholds[1:])
        app.started()
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            context.lifecycle.uninstall()
            await runtime.stop()  # uvicorn has already drained in-flight requests
            if prediction_log is not None:
                prediction_log.close()

    app = ServingApp(title="Shipyard model server", lifespan=lifespan)
    app.state.shipyard = context
    if not allowed_hosts:  # a Host allow-list is checked by the full stack only
        app.direct = DirectPredict(context)
    for router in (
        inference.predict_router,
        health.router,
        inference.router,
        feedback_routes.router,
        metrics_routes.router,
        admin.router,
        teamwork_routes.router,
    ):
        # The route objects themselves, not ``include_router``: FastAPI 0.165 nests an included
        # router as one opaque route, which the auth guard's route lookup (and its test that
        # every route is in the permission table) could not see into.
        app.router.routes.extend(router.routes)
    app.add_middleware(FastLane)  # inside the guard: predictions are authorized first
    app.add_middleware(AuthMiddleware, auth=auth, router=app.router)
    if allowed_hosts:  # outermost: a forged Host is refused before anything else runs
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    install_error_handlers(app)
    return app
