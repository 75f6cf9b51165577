"""Run the model server: uvicorn workers, each with its own runtime over the shared registry.

Workers are separate processes started by uvicorn from ``app_from_environment`` (a factory),
so the configuration travels in an environment variable as JSON. Each worker loads its models
from the registry (verified bundles), writes its own prediction-log files and watches the
aliases. uvicorn's graceful shutdown gives the order SIGTERM needs: stop accepting, finish
in-flight requests, then the app's shutdown drains the prediction log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shipyard.core.errors import InvalidArgument
from shipyard.serve.traffic import DeploySpec, ServedModelSpec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.registry.bundle import Bundle
    from shipyard.registry.registry import ModelRegistry

CONFIG_ENV = "SHIPYARD_SERVE_CONFIG"


class ServerConfig(BaseModel):
    """Everything a worker needs to build its app."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    project_dir: str
    deploy: DeploySpec
    prediction_log: str | None = None
    log_overflow: Literal["drop", "block"] = "drop"
    max_batch_rows: int = Field(256, ge=1)


class RegistrySource:
    """The registry as a ``ModelSource``."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def resolve(self, model: str, alias: str) -> int:
        """The version ``model@alias`` points to."""
        return int(self.registry.get(f"{model}@{alias}").version)

    def load(self, model: str, version: int) -> Bundle:
        """The verified bundle of one version."""
        return self.registry.load(f"{model}:{version}")

    def promote(self, model: str, alias: str, version: int, *, reason: str) -> None:
        """Move ``alias`` after a canary passed (recorded in the alias history)."""
        self.registry.promote(
            model, version, alias=alias, force=True, reason=reason, actor="canary"
        )


def deploy_from_refs(refs: list[str]) -> DeploySpec:
    """A deploy spec serving each ``name@alias`` under its model name.

    Raises:
        InvalidArgument: A reference without ``@alias``, or a name given twice.
    """
    models: dict[str, ServedModelSpec] = {}
    for ref in refs:
        name, sep, alias = ref.partition("@")
        if not sep or not name or not alias:
            raise InvalidArgument(
                f"serve takes model@alias references, e.g. fraud@production; got {ref!r}"
            )
        if name in models:
            raise InvalidArgument(f"model {name!r} given twice; use a deploy: section for policies")
        models[name] = ServedModelSpec(model=name, champion=alias)
    return DeploySpec(models=models)


def build_app(config: ServerConfig) -> FastAPI:
    """Build one worker's app from its configuration."""
    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.app import create_app
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Runtime
    from shipyard.track.workspace import Workspace

    workspace = Workspace.open(Path(config.project_dir))
    runtime = Runtime(
        config.deploy,
        RegistrySource(ModelRegistry(workspace)),
        max_batch_rows=config.max_batch_rows,
    )
    log = None
    if config.prediction_log is not None:
        log = PredictionLog(Path(config.prediction_log), overflow=config.log_overflow)
    return create_app(runtime, prediction_log=log)


def app_from_environment() -> FastAPI:
    """Build the app for uvicorn's factory call, from ``SHIPYARD_SERVE_CONFIG``."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise InvalidArgument(f"{CONFIG_ENV} is not set; start servers with `shipyard serve`")
    return build_app(ServerConfig.model_validate_json(raw))


def run_server(
    config: ServerConfig,
    *,
    host: str,
    port: int,
    workers: int,
    graceful_s: float = 30.0,
    **uvicorn_options: Any,
) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    import uvicorn

    os.environ[CONFIG_ENV] = config.model_dump_json()
    uvicorn.run(
        "shipyard.serve.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=int(graceful_s),
        log_level=uvicorn_options.pop("log_level", "warning"),
        **uvicorn_options,
    )
