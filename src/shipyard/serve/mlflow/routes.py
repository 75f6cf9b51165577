"""The route table of the MLflow API: each ``(method, path)`` of the permission table, a handler.

Every handler takes the request's fields (the JSON body, or the query string of a GET) and
the caller's identity, runs in the thread pool (store work blocks), and answers JSON; every
failure answers MLflow's error shape (``errors``), never a 500 unless a bug escapes. The
paths and their actions come from ``security.permissions.MLFLOW_ROUTES`` so that the one
permission table stays the list of what exists.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from shipyard.security.permissions import (
    MLFLOW_CATCH_ALL,
    MLFLOW_METHODS,
    MLFLOW_PREFIXES,
    MLFLOW_ROUTES,
)
from shipyard.serve.bodies import read_json
from shipyard.serve.errors import HttpError
from shipyard.serve.mlflow.errors import (
    INVALID,
    NO_ENDPOINT,
    MlflowError,
    answer,
    error_body,
    unsupported,
)
from shipyard.serve.mlflow.wire import Fields

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from shipyard.security.identities import Identity
    from shipyard.serve.mlflow.artifacts import ArtifactService
    from shipyard.serve.mlflow.models import ModelService
    from shipyard.serve.mlflow.tracking import TrackingService

    Handler = Callable[[Fields, Identity], dict[str, Any]]

log = logging.getLogger("shipyard.serve.mlflow")
_CHUNK = 1 << 20


def _refuse(what: str, instead: str) -> Handler:
    def handler(_: Fields, __: Identity) -> dict[str, Any]:
        raise unsupported(what, instead)

    return handler


def handlers(tracking: TrackingService, models: ModelService) -> dict[tuple[str, str], Handler]:
    """(method, path after the prefix) -> handler, for every entry of ``MLFLOW_ROUTES``."""
    no_delete = "Shipyard keeps runs and experiments; `shipyard runs gc` and retention clean up"
    return {
        ("POST", "/experiments/create"): tracking.create_experiment,
        ("GET", "/experiments/get"): tracking.get_experiment,
        ("GET", "/experiments/get-by-name"): tracking.get_experiment_by_name,
        ("POST", "/experiments/search"): tracking.search_experiments,
        ("GET", "/experiments/search"): tracking.search_experiments,
        ("POST", "/experiments/update"): tracking.update_experiment,
        ("POST", "/experiments/delete"): _refuse("deleting an experiment", no_delete),
        ("POST", "/experiments/restore"): _refuse("restoring an experiment", no_delete),
        ("POST", "/runs/create"): tracking.create_run,
        ("POST", "/runs/update"): tracking.update_run,
        ("POST", "/runs/delete"): _refuse("deleting a run", no_delete),
        ("POST", "/runs/restore"): _refuse("restoring a run", no_delete),
        ("GET", "/runs/get"): tracking.get_run,
        ("POST", "/runs/search"): tracking.search_runs,
        ("POST", "/runs/log-metric"): tracking.log_metric,
        ("POST", "/runs/log-parameter"): tracking.log_param,
        ("POST", "/runs/set-tag"): tracking.set_tag,
        ("POST", "/runs/delete-tag"): tracking.delete_tag,
        ("POST", "/runs/log-batch"): tracking.log_batch,
        ("POST", "/runs/log-inputs"): tracking.log_inputs,
        ("GET", "/metrics/get-history"): tracking.metric_history,
        # MLflow 3's logged models: Shipyard has none (its models are registry bundles), and
        # the client searches them when listing a run's artifacts.
        ("POST", "/logged-models/search"): lambda _, __: {"models": []},
        ("POST", "/registered-models/create"): models.create_model,
        ("GET", "/registered-models/get"): models.get_model,
        ("GET", "/registered-models/search"): models.search_models,
        ("POST", "/model-versions/create"): models.create_version,
        ("GET", "/model-versions/get"): models.get_version,
        ("GET", "/model-versions/search"): models.search_versions,
        ("POST", "/registered-models/alias"): models.set_alias,
        ("GET", "/registered-models/alias"): models.get_alias,
        ("DELETE", "/registered-models/alias"): models.delete_alias,
    }


def failure(request: Request, e: Exception) -> Response:
    """MLflow's answer to ``e``; an unexpected exception is logged and answered 500."""
    found = answer(e)
    if found is not None:
        return found
    if isinstance(e, HttpError):
        return error_body(e.status, INVALID, e.error)
    log.error("%s %s failed", request.method, request.url.path, exc_info=e)
    return error_body(500, "INTERNAL_ERROR", f"internal error: {type(e).__name__}")


async def _fields(request: Request, limit: int) -> Fields:
    query = request.query_params
    raw: dict[str, Any] = {}
    for key in query:
        values = query.getlist(key)
        raw[key] = values[0] if len(values) == 1 else values
    if request.method in ("GET", "HEAD"):
        return Fields(raw)
    if request.method == "DELETE" and not request.headers.get("content-type"):
        return Fields(raw)  # a DELETE may carry its fields in the query string only
    body = await read_json(request, limit)
    if not isinstance(body, dict):
        raise MlflowError(400, INVALID, "the request body must be a JSON object")
    return Fields({**raw, **body})


def _endpoint(handler: Handler, limit: int) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            fields = await _fields(request, limit)
            result = await run_in_threadpool(handler, fields, request.state.identity)
        except Exception as e:
            return failure(request, e)
        return Response(orjson.dumps(result), media_type="application/json")

    return endpoint


async def _no_endpoint(request: Request) -> Response:
    return error_body(
        404,
        NO_ENDPOINT,
        f"{request.method} {request.url.path} is not an MLflow endpoint Shipyard serves; "
        "docs/mlflow.md lists the supported ones",
    )


def build_router(
    tracking: TrackingService,
    models: ModelService,
    artifacts: ArtifactService,
    *,
    max_body_bytes: int,
    max_artifact_bytes: int,
) -> APIRouter:
    """The router of the whole MLflow API, catch-alls last."""
    router = APIRouter()
    table = handlers(tracking, models)
    missing = set(MLFLOW_ROUTES) ^ set(table)
    assert not missing, f"MLflow routes and handlers differ: {missing}"
    for (method, path), handler in table.items():
        for prefix in MLFLOW_PREFIXES:
            router.add_api_route(
                f"{prefix}{path}",
                _endpoint(handler, max_body_bytes),
                methods=[method],
                include_in_schema=False,
            )
    _artifact_routes(router, artifacts, max_artifact_bytes)
    for path in MLFLOW_CATCH_ALL:
        router.add_api_route(
            path, _no_endpoint, methods=list(MLFLOW_METHODS), include_in_schema=False
        )
    return router


def _artifact_routes(router: APIRouter, artifacts: ArtifactService, limit: int) -> None:
    base = "/api/2.0/mlflow-artifacts/artifacts"

    async def upload(artifact_path: str, request: Request) -> Response:
        try:
            file = await _spool(request, limit)
            try:
                result = await run_in_threadpool(artifacts.upload, artifact_path, file)
            finally:
                file.unlink(missing_ok=True)
        except Exception as e:
            return failure(request, e)
        return Response(orjson.dumps(result), media_type="application/json")

    async def download(artifact_path: str, request: Request) -> Response:
        try:
            data = await run_in_threadpool(artifacts.download, artifact_path)
        except Exception as e:
            return failure(request, e)
        return Response(data, media_type="application/octet-stream")

    async def listing(request: Request) -> Response:
        try:
            path = request.query_params.get("path", "")
            result = await run_in_threadpool(artifacts.list, path)
        except Exception as e:
            return failure(request, e)
        return Response(orjson.dumps(result), media_type="application/json")

    path = f"{base}/{{artifact_path:path}}"
    router.add_api_route(path, upload, methods=["PUT"], include_in_schema=False)
    router.add_api_route(path, download, methods=["GET"], include_in_schema=False)
    router.add_api_route(base, listing, methods=["GET"], include_in_schema=False)


async def _spool(request: Request, limit: int) -> Path:
    """Stream the body into a private temporary file, refusing it past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise MlflowError(413, INVALID, f"artifact over {limit} bytes")
    descriptor, name = tempfile.mkstemp(prefix="shipyard-mlflow-")
    path = Path(name)
    size = 0
    try:
        with os.fdopen(descriptor, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise MlflowError(413, INVALID, f"artifact over {limit} bytes")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
