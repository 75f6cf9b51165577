"""The HTTP face of a model server: V2 inference protocol, plain JSON, metrics, admin.

Bodies are read with a hard size limit (413), parsed with orjson (400 on malformed JSON or a
non-JSON content type: 415), checked against the model's contract (422 naming the field) and
only then scored. The prediction log is fed after the answer is ready and never blocks it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.middleware.trustedhost import TrustedHostMiddleware

from shipyard.core.errors import Conflict, InvalidArgument, NotFound, ShipyardError, Unavailable
from shipyard.monitor.feedback import MAX_LABELS_PER_REQUEST, FeedbackStore, parse_feedback_json
from shipyard.security.permissions import Action
from shipyard.serve.auth import AuthMiddleware
from shipyard.serve.contract import ContractError
from shipyard.serve.errors import HttpError, install_error_handlers
from shipyard.serve.openapi import (
    BODY,
    FEEDBACK_ANSWER,
    FEEDBACK_BODY,
    GUARDED,
    INFER_ANSWER,
    INFER_BODY,
    POLICY_BODY,
    PREDICT_ANSWER,
    PREDICT_BODY,
    READY_ANSWER,
    errors,
    json_answer,
    json_body,
)
from shipyard.serve.payloads import plain_columns, plain_response, v2_columns, v2_response
from shipyard.serve.traffic import ServedModelSpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from shipyard.serve.auth import ServerAuth
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Answer, Runtime


class Metrics:
    """Prometheus series of one server (a private registry: several apps can share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shipyard_requests",
            "Answered prediction requests",
            ["model", "variant", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shipyard_request_seconds",
            "Prediction request latency",
            ["model", "variant"],
            registry=self.registry,
        )
        self.rows = Counter(
            "shipyard_rows", "Rows scored", ["model", "variant"], registry=self.registry
        )
        self.log_depth = Gauge(
            "shipyard_prediction_log_queue_depth",
            "Records waiting to be written",
            registry=self.registry,
        )
        self.log_dropped = Gauge(
            "shipyard_prediction_log_dropped",
            "Records dropped by the overflow policy",
            registry=self.registry,
        )
        self.swaps = Gauge(
            "shipyard_model_swaps", "Hot swaps after alias moves", registry=self.registry
        )
        # Cost meters (docs/cost.md): per registry version and variant, read by `shipyard cost`.
        version_labels = ["model", "version", "variant"]
        self.version_requests = Counter(
            "shipyard_version_requests", "Answered requests", version_labels, registry=self.registry
        )
        self.version_rows = Counter(
            "shipyard_version_rows", "Predictions made", version_labels, registry=self.registry
        )
        self.version_cpu = Counter(
            "shipyard_version_cpu_seconds",
            "Model CPU time (worker thread, split across each batch by rows)",
            version_labels,
            registry=self.registry,
        )


def create_app(
    runtime: Runtime,
    *,
    auth: ServerAuth,
    prediction_log: PredictionLog | None = None,
    max_body_bytes: int | None = None,
    feedback: FeedbackStore | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """Build the ASGI app serving ``runtime``'s models.

    Feedback labels are kept next to the prediction log unless ``feedback`` names a store;
    without either, ``POST /models/{name}/feedback`` answers 503. Every route but the health
    probes needs a bearer token that ``auth`` accepts (see ``shipyard.serve.auth``).
    ``allowed_hosts`` (e.g. ``["models.example.com", "*.internal"]``), when given, turns away
    any request whose ``Host`` header names another host with 400, against DNS rebinding and
    poisoned absolute URLs.
    """
    limit = max_body_bytes or runtime.spec.max_body_bytes
    if feedback is None and prediction_log is not None:
        feedback = FeedbackStore.beside(prediction_log.root, clock=prediction_log)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if prediction_log is not None:
            prediction_log.start()
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()  # uvicorn has already drained in-flight requests
            if prediction_log is not None:
                prediction_log.close()

    app = FastAPI(title="Shipyard model server", lifespan=lifespan)
    app.add_middleware(AuthMiddleware, auth=auth, router=app.router)
    if allowed_hosts:  # outermost: a forged Host is refused before anything else runs
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    install_error_handlers(app)

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        """Liveness: the process answers."""
        return {"live": True}

    @app.get(
        "/v2/health/ready",
        responses={
            200: json_answer(READY_ANSWER),
            503: json_answer(READY_ANSWER, "A model is not loaded, or the server is stopping."),
        },
    )
    async def ready() -> JSONResponse:
        """Readiness: every model is loaded and the server is not shutting down."""
        return JSONResponse({"ready": runtime.ready}, status_code=200 if runtime.ready else 503)

    # Probes that only look at the status send HEAD (issue 14); kept out of the document, as
    # HEAD is GET without the body.
    for path, probe in (("/v2/health/live", live), ("/v2/health/ready", ready)):
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)

    @app.get("/v2/models/{name}", responses=errors(*GUARDED, 404))
    async def model_metadata(name: str) -> dict[str, Any]:
        """V2 model metadata: versions, inputs with types and categories, outputs."""
        return runtime.served(name).describe()

    @app.get("/v2/models/{name}/ready", responses=errors(*GUARDED, 404))
    async def model_ready(name: str) -> dict[str, Any]:
        """V2 per-model readiness."""
        runtime.served(name)
        return {"name": name, "ready": runtime.ready}

    @app.post(
        "/v2/models/{name}/infer",
        responses={200: json_answer(INFER_ANSWER), **errors(*GUARDED, *BODY, 404, 503)},
        openapi_extra=json_body(INFER_BODY),
    )
    async def infer(name: str, request: Request) -> Response:
        """Open Inference Protocol V2: one tensor per feature column."""
        runtime.served(name)  # 404 before reading the body
        body = await _json_body(request, limit)
        columns, given_id = v2_columns(body)
        answer, request_id, seconds = await _score(name, columns, request, given_id)
        classes = answer.model.bundle.manifest.classes
        payload = v2_response(
            answer.scored,
            model=name,
            version=answer.model.version,
            request_id=request_id,
            classes=classes,
        )
        _after(name, answer, columns, request_id, seconds)
        return _json(payload)

    @app.post(
        "/models/{name}/predict",
        responses={200: json_answer(PREDICT_ANSWER), **errors(*GUARDED, *BODY, 404, 503)},
        openapi_extra=json_body(PREDICT_BODY),
    )
    async def predict(name: str, request: Request) -> Response:
        """Plain JSON: records ``[{col: val}]`` or columns ``{col: [vals]}``."""
        runtime.served(name)  # 404 before reading the body
        body = await _json_body(request, limit)
        columns = plain_columns(body)
        answer, request_id, seconds = await _score(name, columns, request, None)
        classes = answer.model.bundle.manifest.classes
        payload = plain_response(
            answer.scored,
            model=name,
            version=answer.model.version,
            variant=answer.alias,
            request_id=request_id,
            classes=classes,
        )
        _after(name, answer, columns, request_id, seconds)
        return _json(payload)

    @app.post(
        "/models/{name}/feedback",
        responses={200: json_answer(FEEDBACK_ANSWER), **errors(*GUARDED, *BODY, 404, 503)},
        openapi_extra=json_body(FEEDBACK_BODY),
    )
    async def post_feedback(name: str, request: Request) -> Response:
        """Ground truth for earlier answers: ``{request_id, label[, ts_ms]}`` or a list of them."""
        runtime.served(name)  # 404 before reading the body
        if feedback is None:
            raise Unavailable("feedback is off: this server keeps no prediction log")
        body = await _json_body(request, limit)
        if isinstance(body, list) and len(body) > MAX_LABELS_PER_REQUEST:
            raise HttpError(413, f"over {MAX_LABELS_PER_REQUEST} labels; send them in batches")
        labels = parse_feedback_json(body)  # InvalidData: 422 naming the item

        def store() -> dict[str, Any]:
            if prediction_log is not None:  # so labels for answers still queued match
                prediction_log.flush(timeout_s=5.0)
            assert feedback is not None
            return feedback.add(name, labels).to_dict()

        return _json(await asyncio.to_thread(store))

    @app.get("/metrics", response_class=PlainTextResponse, responses=errors(*GUARDED))
    async def prometheus() -> Response:
        """Prometheus exposition of request, latency, batching and prediction-log series."""
        if prediction_log is not None:
            metrics.log_depth.set(prediction_log.depth)
            metrics.log_dropped.set(prediction_log.dropped)
        metrics.swaps.set(runtime.swaps)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/admin/models", responses=errors(*GUARDED))
    async def admin_models(request: Request) -> dict[str, Any]:
        """Every served name: loaded versions, policy and canary state."""
        return runtime.describe()

    @app.put(
        "/admin/models/{name}/policy",
        responses=errors(*GUARDED, *BODY, 404, 409),
        openapi_extra=json_body(POLICY_BODY),
    )
    async def set_policy(name: str, request: Request) -> dict[str, Any]:
        """Replace a served name's traffic policy at run time (aliases must already be loaded)."""
        body = await _json_body(request, limit)
        router = runtime.routers.get(name)
        if router is None:
            raise NotFound(f"no model named {name!r} is served here")
        try:
            spec = ServedModelSpec.model_validate({**router.spec.model_dump(), "policy": body})
        except ValueError as e:
            raise InvalidArgument(f"invalid policy: {e}") from e
        missing = [a for a in spec.aliases() if (name, a) not in runtime.slots]
        if missing:
            raise Conflict(
                f"alias(es) {', '.join(missing)} are not loaded; restart with them in deploy:"
            )
        runtime.set_policy(name, spec)
        await asyncio.to_thread(
            auth.record, request.state.identity, Action.SERVE_POLICY, name, detail={"policy": body}
        )
        described: dict[str, Any] = runtime.describe()[name]
        return described

    async def _score(
        name: str, columns: dict[str, list[Any]], request: Request, given_id: str | None
    ) -> tuple[Answer, str, float]:
        started = time.perf_counter()
        request_id = given_id or request.headers.get("x-request-id") or uuid.uuid4().hex
        model = runtime.served(name)
        frame = model.contract.frame(columns)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            answer = await runtime.answer(name, frame, headers)
        except (ContractError, ShipyardError):
            raise
        except Exception as e:
            metrics.requests.labels(name, "?", "error").inc()
            raise HttpError(
                503, "the model failed to score this request; it has been logged", type(e).__name__
            ) from e
        seconds = time.perf_counter() - started
        metrics.requests.labels(name, answer.alias, "ok").inc()
        metrics.latency.labels(name, answer.alias).observe(seconds)
        metrics.rows.labels(name, answer.alias).inc(frame.height)
        version = (name, str(answer.model.version), answer.alias)
        metrics.version_requests.labels(*version).inc()
        metrics.version_rows.labels(*version).inc(frame.height)
        metrics.version_cpu.labels(*version).inc(answer.scored.cpu_seconds)
        return answer, request_id, seconds

    def _after(
        name: str, answer: Answer, columns: dict[str, list[Any]], request_id: str, seconds: float
    ) -> None:
        if prediction_log is None:
            return
        from shipyard.serve.logging_hooks import log_answer

        log_answer(prediction_log, name, answer, columns, request_id, seconds)

    return app


def _json(payload: Any) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


async def _json_body(request: Request, limit: int) -> Any:
    """Read at most ``limit`` bytes (413 beyond), then parse JSON (400/415 on failure)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"request body over {limit} bytes; send fewer rows per request")
    # No Content-Type is refused as well (issue 14): guessing JSON is how a text/plain form
    # post from a browser (a "simple" request, no CORS preflight) would reach the model.
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        named = f"content type {kind!r}" if kind else "a body without a Content-Type"
        raise HttpError(415, f"{named} is not accepted; send application/json")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body over {limit} bytes; send fewer rows per request")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as e:
        raise HttpError(
            400, "the body is not valid JSON (NaN and Infinity are not JSON)", str(e)
        ) from e
