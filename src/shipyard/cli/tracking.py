"""``shipyard tracking-server``: the MLflow tracking API, answered from this workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.access import project_name
from shipyard.cli.context import console
from shipyard.cli.project import project_dir


def tracking_server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 5000,
    max_artifact_mb: Annotated[
        int, typer.Option(min=1, help="Largest artifact one upload may carry, in MiB.")
    ] = 512,
) -> None:
    """Serve the MLflow tracking REST API: point MLFLOW_TRACKING_URI here (see docs/mlflow.md).

    Every request needs a Shipyard token (MLFLOW_TRACKING_TOKEN); what it may do follows the
    token user's role in this project.
    """
    from shipyard.serve.mlflow.app import TrackingConfig, run_tracking_server

    config = TrackingConfig(
        project_dir=str(project_dir(ctx)),
        project=project_name(ctx),
        max_artifact_bytes=max_artifact_mb << 20,
    )
    console.print(
        f"MLflow tracking API on http://{host}:{port} "
        f"(MLFLOW_TRACKING_URI=http://{host}:{port}, MLFLOW_TRACKING_TOKEN=<a shipyard token>)"
    )
    run_tracking_server(config, host=host, port=port)
