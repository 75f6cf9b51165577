"""``shipyard ui``: the web UI over this project's workspace (docs/ui.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.access import project_name
from shipyard.cli.context import console, open_workspace
from shipyard.cli.options import TlsCertOption, TlsKeyOption
from shipyard.core.errors import InvalidArgument


def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8080,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
) -> None:
    """Serve the web UI: runs, comparisons, datasets, models, audit log. Sign in with a token.

    One process (sessions live in its memory). Users sign in with an API token
    (`shipyard tokens create`); each page checks the user's role like the CLI does.
    """
    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgument("give both --tls-cert and --tls-key, or neither")
    import uvicorn

    from shipyard.ui.app import create_app

    with open_workspace(ctx) as workspace:
        app = create_app(workspace, project=project_name(ctx))
        scheme = "https" if tls_cert else "http"
        console.print(f"Shipyard UI on {scheme}://{host}:{port}/ (sign in with an API token)")
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            server_header=False,
        )
