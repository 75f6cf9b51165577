"""Run the model server: uvicorn workers, each with its own runtime over the shared registry.

Workers are separate processes started by uvicorn from ``app_from_environment`` (a factory),
so the configuration travels in an environment variable as JSON. Each worker loads its models
from the registry (verified bundles), writes its own prediction-log files and watches the
aliases. uvicorn's graceful shutdown gives the order SIGTERM needs: stop accepting, finish
in-flight requests, then the app's shutdown drains the prediction log.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shipyard.core.errors import InvalidArgument
from shipyard.security import audit
from shipyard.security.identities import Identity, Kind
from shipyard.security.permissions import Action
from shipyard.security.roles import Role
from shipyard.security.services import CANARY, service_identity
from shipyard.serve.traffic import PINNED, DeploySpec, ServedModelSpec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.registry.bundle import Bundle
    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.context import Teamwork
    from shipyard.track.workspace import Workspace

CONFIG_ENV = "SHIPYARD_SERVE_CONFIG"


class ServerConfig(BaseModel):
    """Everything a worker needs to build its app."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    project_dir: str
    deploy: DeploySpec
    prediction_log: str | None = None
    log_overflow: Literal["drop", "block"] = "drop"
    max_batch_rows: int = Field(256, ge=1)
    project: str = "project"  # whose role bindings decide what a token may do
    auth_cache_s: float = Field(5.0, ge=0, le=60)
    # The local operator of an embedded workspace who started the server without a token
    # (``security.services``: svc-canary then acts with admin if it holds no role itself).
    local_operator: str | None = None
    allowed_hosts: list[str] | None = None  # Host header allow-list; None: any host
    # Seconds of readiness-off before the graceful shutdown a SIGTERM starts (serve.lifecycle)
    drain_s: float = Field(0.0, ge=0, le=300)


class RegistrySource:
    """The registry as a ``ModelSource``; canary verdicts act as the ``svc-canary`` account.

    The account's role is looked up at each verdict (a grant or revoke applies without a
    restart); ``started_by`` is who started the server (see ``security.services``).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        project: str = "project",
        started_by: Identity | None = None,
    ) -> None:
        self.registry = registry
        self.project = project
        self.started_by = started_by

    def canary_identity(self) -> Identity:
        """Who a canary verdict acts as, with the role it holds now."""
        return service_identity(
            self.registry.security, CANARY, self.project, started_by=self.started_by
        )

    def resolve(self, model: str, alias: str) -> int:
        """The version ``model@alias`` points to (or the pinned one, for ``:N``)."""
        ref = f"{model}{alias}" if alias.startswith(PINNED) else f"{model}@{alias}"
        return int(self.registry.get(ref).version)

    def load(self, model: str, version: int) -> Bundle:
        """The verified bundle of one version."""
        # The native model loads on first use: a cached ONNX export may never need it.
        return self.registry.load(f"{model}:{version}", defer_model=True)

    def promote(self, model: str, alias: str, version: int, *, reason: str) -> None:
        """Move ``alias`` after a canary passed, as svc-canary (the registry checks and audits).

        Raises:
            PermissionDenied: svc-canary may not promote (the denial is audited).
            Conflict: The alias moved meanwhile (audited).
        """
        self.registry.promote(
            model, version, actor=self.canary_identity(), alias=alias, force=True, reason=reason
        )

    def record_rollback(self, model: str, alias: str, version: int, *, reason: str) -> None:
        """Audit a canary that rolled itself back: traffic returns to ``alias``, no alias moves.

        Not refused whatever svc-canary's role: stopping traffic to a failing canary is the
        safe direction, and the server does it in memory; the log must still say it happened.
        """
        audit.record(
            self.registry.security,
            self.canary_identity(),
            Action.SERVE_POLICY,
            f"{model}@{alias}",
            detail={"op": "canary-rollback", "canary_version": version, "reason": reason},
            clock=self.registry.clock,
        )


def deploy_from_refs(refs: list[str]) -> DeploySpec:
    """A deploy spec serving each ``name@alias`` (followed) or ``name:N`` (pinned).

    Raises:
        InvalidArgument: A reference in neither form, a malformed name, or a name given twice.
    """
    from shipyard.registry.registry import check_name

    models: dict[str, ServedModelSpec] = {}
    for ref in refs:
        name, sep, alias = ref.partition("@")
        if not sep:
            name, sep, version = ref.partition(":")
            alias = f"{PINNED}{version}" if version.isdigit() else ""
        if not sep or not name or not alias:
            raise InvalidArgument(
                "serve takes model@alias (follows the alias as it moves, e.g. fraud@production) "
                f"or model:version (pinned, e.g. fraud:3); got {ref!r}"
            )
        check_name(name)
        if not alias.startswith(PINNED):
            check_name(alias, "alias")
        if name in models:
            raise InvalidArgument(f"model {name!r} given twice; use a deploy: section for policies")
        models[name] = ServedModelSpec(model=name, champion=alias)
    return DeploySpec(models=models)


def build_app(config: ServerConfig) -> FastAPI:
    """Build one worker's app from its configuration."""
    from shipyard.registry.onnx_cache import OnnxCache
    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store
    from shipyard.serve.app import create_app
    from shipyard.serve.auth import ServerAuth
    from shipyard.serve.canary_sync import SharedCanaries
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Runtime
    from shipyard.serve.store_health import StoreHealth
    from shipyard.store.canaries import CanaryStore
    from shipyard.track.workspace import Workspace

    workspace = Workspace.open(Path(config.project_dir))
    security = security_store(workspace.settings, workspace.store)
    health = StoreHealth(workspace.clock)
    auth = ServerAuth(
        Accounts(security),
        project=config.project,
        cache_ttl_s=config.auth_cache_s,
        health=health,
    )
    operator = None
    if config.local_operator is not None:
        operator = Identity(
            name=config.local_operator,
            kind=Kind.LOCAL,
            project=config.project,
            role=Role.ADMIN,
            source="serve",
        )
    registry = ModelRegistry.for_workspace(workspace)
    source = RegistrySource(registry, project=config.project, started_by=operator)
    runtime = Runtime(
        config.deploy,
        source,
        max_batch_rows=config.max_batch_rows,
        metering=workspace.settings.cost.metering,  # SHIPYARD_COST__METERING or cost: metering
        onnx_cache=OnnxCache(workspace.settings.state_dir / "cache" / "onnx"),
        health=health,
        canaries=SharedCanaries(CanaryStore(workspace.store, workspace.clock)),
    )
    log = None
    if config.prediction_log is not None:
        log = PredictionLog(Path(config.prediction_log), overflow=config.log_overflow)
    from shipyard.serve.lifecycle import Lifecycle

    return create_app(
        runtime,
        auth=auth,
        prediction_log=log,
        allowed_hosts=config.allowed_hosts,
        lifecycle=Lifecycle(drain_s=config.drain_s),
        teamwork=teamwork_of(workspace, registry),
    )


def teamwork_of(workspace: Workspace, registry: ModelRegistry) -> Teamwork:
    """Reviews, comments and activity of ``workspace`` for the server's teamwork routes."""
    from shipyard.monitor.mentions import workspace_comments
    from shipyard.registry.reviews import ReviewService
    from shipyard.serve.context import Teamwork

    return Teamwork(ReviewService(registry), workspace_comments(workspace), workspace.store)


def app_from_environment() -> FastAPI:
    """Build the app for uvicorn's factory call, from ``SHIPYARD_SERVE_CONFIG``."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise InvalidArgument(f"{CONFIG_ENV} is not set; start servers with `shipyard serve`")
    return build_app(ServerConfig.model_validate_json(raw))


def tls_options(cert: Path | None, key: Path | None) -> dict[str, Any]:
    """Return uvicorn's TLS options for a certificate chain and its key, checked up front.

    The pair is loaded once here, so a missing file, a key that does not match the
    certificate or a passphrase-protected key fails with one clear line before any worker
    starts (an encrypted key would otherwise make OpenSSL prompt on the terminal).

    Args:
        cert: PEM certificate chain (server certificate first); None with ``key`` for plain HTTP.
        key: PEM private key of the certificate, unencrypted.

    Raises:
        InvalidArgument: Only one of the two is given, or they cannot be used together.
    """
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise InvalidArgument("TLS needs both --tls-cert and --tls-key")
    for path in (cert, key):
        if not path.is_file():
            raise InvalidArgument(f"TLS file {path} does not exist or is not a file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)

    def _no_passphrase() -> bytes:
        raise InvalidArgument(f"TLS key {key} is passphrase-protected; give an unencrypted key")

    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as e:
        raise InvalidArgument(
            f"cannot serve TLS with certificate {cert} and key {key}: {e.reason or e}; "
            "check that both are PEM and that the key belongs to the certificate"
        ) from e
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


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
        # the drain comes on top: the graceful shutdown only starts once it is over
        timeout_graceful_shutdown=int(graceful_s),
        log_level=uvicorn_options.pop("log_level", "warning"),
        **uvicorn_options,
    )
