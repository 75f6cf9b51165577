"""The tracking server: Shipyard's MLflow-compatible API as an ASGI app, and how to run it.

``create_tracking_app`` wires the MLflow routes (``routes``) behind the same bearer-token
guard as the model server (``serve.auth.AuthMiddleware`` reading the one permission table),
with the public health probes. ``shipyard tracking-server`` runs it under uvicorn with one
worker: the buffered metric writer lives in the worker, and one worker is what makes every
read see the writes before it (read-your-writes for the client). Shutdown drains the writer.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from shipyard.core.errors import InvalidArgument
from shipyard.serve.auth import AuthMiddleware
from shipyard.serve.mlflow.artifacts import ArtifactService
from shipyard.serve.mlflow.models import ModelService
from shipyard.serve.mlflow.routes import build_router
from shipyard.serve.mlflow.tracking import TrackingService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from shipyard.serve.auth import ServerAuth
    from shipyard.track.workspace import Workspace

CONFIG_ENV = "SHIPYARD_TRACKING_CONFIG"
MAX_BODY_BYTES = 16 << 20
#: Downloads are read whole and checked against their digest, so uploads are capped to what a
#: worker can hold in memory a few times over.
MAX_ARTIFACT_BYTES = 512 << 20


class TrackingConfig(BaseModel):
    """What the tracking server's worker needs to build its app."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    project_dir: str
    project: str = "project"
    auth_cache_s: float = Field(5.0, ge=0, le=60)
    max_artifact_bytes: int = Field(MAX_ARTIFACT_BYTES, ge=1)


def create_tracking_app(
    workspace: Workspace,
    *,
    auth: ServerAuth,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_artifact_bytes: int = MAX_ARTIFACT_BYTES,
    close_workspace: bool = False,
) -> FastAPI:
    """The MLflow tracking API over ``workspace``, every route but the probes behind ``auth``.

    With ``close_workspace`` the app's shutdown closes the workspace (ending the runs this
    process holds and writing buffered metrics); otherwise it only flushes the writer.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_workspace:
                workspace.close()
            else:
                workspace.flush()

    app = FastAPI(title="Shipyard tracking server (MLflow API)", lifespan=lifespan)
    router = build_router(
        TrackingService(workspace, auth),
        ModelService(workspace),
        ArtifactService(workspace),
        max_body_bytes=max_body_bytes,
        max_artifact_bytes=max_artifact_bytes,
    )

    async def live() -> JSONResponse:
        return JSONResponse({"live": True})

    async def ready() -> JSONResponse:
        return JSONResponse({"ready": True})

    for path, probe in (("/v2/health/live", live), ("/v2/health/ready", ready)):
        app.router.add_api_route(path, probe, methods=["GET", "HEAD"], include_in_schema=False)
    # The route objects themselves (see serve.app): the guard must see each route's template.
    app.router.routes.extend(router.routes)
    app.add_middleware(AuthMiddleware, auth=auth, router=app.router)
    return app


def app_from_environment() -> FastAPI:
    """Build the app for uvicorn's factory call, from ``SHIPYARD_TRACKING_CONFIG``."""
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store
    from shipyard.serve.auth import ServerAuth
    from shipyard.track.workspace import Workspace

    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise InvalidArgument(f"{CONFIG_ENV} is not set; start with `shipyard tracking-server`")
    config = TrackingConfig.model_validate_json(raw)
    workspace = Workspace.open(Path(config.project_dir))
    security = security_store(workspace.settings, workspace.store)
    auth = ServerAuth(Accounts(security), project=config.project, cache_ttl_s=config.auth_cache_s)
    return create_tracking_app(
        workspace,
        auth=auth,
        max_artifact_bytes=config.max_artifact_bytes,
        close_workspace=True,
    )


def run_tracking_server(config: TrackingConfig, *, host: str, port: int, **options: object) -> None:
    """Serve until SIGTERM/SIGINT with one worker (see the module docstring)."""
    import uvicorn

    os.environ[CONFIG_ENV] = config.model_dump_json()
    uvicorn.run(
        "shipyard.serve.mlflow.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=1,
        timeout_graceful_shutdown=30,
        log_level="warning",
        **options,  # type: ignore[arg-type]
    )
