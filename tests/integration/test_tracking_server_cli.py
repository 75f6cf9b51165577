"""``shipyard tracking-server`` as users start it: a process, a token, SIGTERM drains the buffer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role
from shipyard.track.workspace import Workspace

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow
API = "/api/2.0/mlflow"


def _token(project: Path) -> str:
    boot = Identity(name="boot", kind=Kind.LOCAL, project="project", role=Role.ADMIN)
    with Workspace.open(project) as workspace:
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        accounts.create_user(boot, "ana")
        accounts.grant(boot, "ana", Role.DATA_SCIENTIST, "project")
        return accounts.create_token(boot, "ana").text


def test_the_command_serves_and_sigterm_writes_buffered_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Metrics are written only when 10,000 are queued or after a minute: what reaches the store
    # below got there through the shutdown's drain.
    monkeypatch.setenv("SHIPYARD_TRACKING__FLUSH_INTERVAL_S", "60")
    monkeypatch.setenv("SHIPYARD_TRACKING__FLUSH_SIZE", "10000")
    token = _token(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "shipyard.cli.main", "tracking-server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{url}/v2/health/live", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tracking-server did not start in 60 s"
            time.sleep(0.1)
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            run = client.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()
            run_id = run["run"]["info"]["run_id"]
            for step in range(20):
                metric = {"run_id": run_id, "key": "m", "value": step, "timestamp": 1, "step": step}
                assert client.post(f"{API}/runs/log-metric", json=metric).is_success
        server.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down gracefully (lifespan included)
        assert server.wait(60) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    with Workspace.open(tmp_path) as workspace:
        assert [p.step for p in workspace.metric_history(run_id, "m")] == list(range(20))
        assert workspace.get_run(run_id).user == "ana"
