"""The serving scenes of ``shipyard demo``: the model server, its first calls and replayed traffic.

Split from ``lifecycle_demo.py`` (which runs the scenes in order) to keep each module to one job.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING

from rich.markup import escape

from shipyard.cli.context import console
from shipyard.cli.lifecycle_demo import MODEL, DemoSummary, biopsies, demo_operator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import httpx

    from shipyard.track.workspace import Workspace


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(workspace: Workspace, root: Path) -> Iterator[httpx.Client]:
    """The model server on a free local port, and a client holding the demo's own token."""
    import httpx
    import uvicorn

    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store
    from shipyard.serve.app import create_app
    from shipyard.serve.auth import ServerAuth
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Runtime
    from shipyard.serve.server import RegistrySource, deploy_from_refs

    accounts = Accounts(security_store(workspace.settings, workspace.store))
    me = demo_operator()  # the demo's own token, for its own client
    accounts.ensure_user(me, "demo-client", service=True)
    accounts.grant(me, "demo-client", "viewer", "project")
    token = accounts.create_token(me, "demo-client", expires_in_days=1)
    app = create_app(
        Runtime(
            deploy_from_refs([f"{MODEL}@production"]),
            RegistrySource(
                ModelRegistry.for_workspace(workspace), project="project", started_by=me
            ),
            metering=workspace.settings.cost.metering,
        ),
        auth=ServerAuth(accounts, project="project"),
        prediction_log=PredictionLog(root / ".shipyard" / "predictions"),
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        time.sleep(0.05)
    console.print(f"serving {MODEL}@production at {url} (token created for 'demo-client')")
    bearer = {"authorization": f"Bearer {token.text}"}
    try:
        with httpx.Client(base_url=url, timeout=30, headers=bearer) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def first_calls(client: httpx.Client, summary: DemoSummary) -> None:
    """A few predictions, a bad request and an anonymous one: what a newcomer tries first."""
    sample = biopsies().drop("target").head(3)
    answers = [
        client.post(f"/models/{MODEL}/predict", json=[row]).json() for row in sample.to_dicts()
    ]
    bad = client.post(f"/models/{MODEL}/predict", json=[{"mean_radius": "big"}])
    anonymous = client.post(
        f"/models/{MODEL}/predict", json=sample.head(1).to_dicts(), headers={"authorization": ""}
    )
    metadata = client.get(f"/v2/models/{MODEL}").json()
    first = answers[0]
    console.print(
        f"POST /models/{MODEL}/predict → version {first['version']}, "
        f"prediction {first['predictions'][0]}, "
        f"p(1) = {first['probabilities'][0]['1']:.3f}"
    )
    console.print(f"a bad request → {bad.status_code}: {escape(str(bad.json()['detail'][0]))}")
    console.print(f"without the token → {anonymous.status_code}")
    console.print(
        f"GET /v2/models/{MODEL} → {len(metadata['inputs'])} inputs, "
        f"versions {metadata['versions']}"
    )
    summary.add(
        "serve", f"HTTP answers; bad input {bad.status_code}, no token {anonymous.status_code}"
    )


def traffic_scene(client: httpx.Client, summary: DemoSummary) -> None:
    """Replay requests with drift injected halfway, then send the true labels as feedback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from shipyard.cli.demo_monitoring import (
        RECALIBRATED,
        REQUESTS,
        replay,
        send_feedback,
        traffic,
    )

    cases = traffic(biopsies())
    with Progress(
        TextColumn("replaying requests"), BarColumn(), MofNCompleteColumn(), console=console
    ) as progress:
        task = progress.add_task("replay", total=REQUESTS)
        ids, errors = replay(
            client, cases, target="target", on_request=lambda: progress.advance(task)
        )
    shifted = ", ".join(f"{c} x{k}" for c, k in RECALIBRATED.items())
    console.print(
        f"{len(ids)} requests answered ({errors} failed); from request {REQUESTS // 2} on: "
        f"{escape(shifted)}"
    )
    labels = cases.get_column("target").to_list()[: len(ids)]
    matched, unmatched = send_feedback(client, ids, labels)
    console.print(f"POST /models/{MODEL}/feedback: {matched} labels matched, {unmatched} not")
    summary.add(
        "traffic", f"{len(ids)} requests, drift injected at {REQUESTS // 2}; {matched} labels"
    )


def answered_by_new_version(client: httpx.Client, version: int | None) -> None:
    """The server's alias watcher swaps the model in place; show a request it answers."""
    row = biopsies().drop("target").head(1).to_dicts()
    for _ in range(100):
        answer = client.post(f"/models/{MODEL}/predict", json=row).json()
        if answer.get("version") == version:
            console.print(f"the running server now answers with version {version} (hot swap)")
            return
        time.sleep(0.1)
    console.print(f"the server has not swapped to version {version} yet (it polls the registry)")
