"""The server meters model CPU as the workspace's settings say: one path, ``cost.metering``.

``SHIPYARD_COST__METERING`` (documented in docs/cost.md) and ``cost: {metering: false}`` in
shipyard.yaml both reach the worker through ``Settings``; nothing reads the variable directly.
A real worker app (``build_app``, as uvicorn builds it) over a real registry answers requests,
and its ``/metrics`` counters show whether CPU was metered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from shipyard.cost.meters import parse_serving_meters
from shipyard.registry.registry import ModelRegistry
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.serve.server import ServerConfig, build_app, deploy_from_refs
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.servers import running
from tests.unit.registry.trained import cached_bundle_file

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

ROWS = [{"tenure": float(t), "charges": 50.0 + t, "plan": "basic"} for t in range(1, 9)]


def _served_cpu(project: Path) -> tuple[int, float]:
    """Serve ``churn@production`` from ``project``; return (requests, model CPU seconds)."""
    with Workspace.open(project) as workspace:
        registry = ModelRegistry.for_workspace(workspace)
        registry.register("churn", cached_bundle_file(workspace, project), actor=OPERATOR)
        registry.promote("churn", 1, force=True, reason="test", actor=OPERATOR)
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        accounts.ensure_user(OPERATOR, "ci")
        accounts.grant(OPERATOR, "ci", "admin", "project")
        bearer = {"authorization": f"Bearer {accounts.create_token(OPERATOR, 'ci').text}"}
    config = ServerConfig(project_dir=str(project), deploy=deploy_from_refs(["churn@production"]))
    with running(build_app(config)) as port:
        url = f"http://127.0.0.1:{port}"
        for _ in range(5):
            answer = httpx.post(f"{url}/models/churn/predict", json=ROWS, headers=bearer)
            assert answer.status_code == 200, answer.text
        [meter] = parse_serving_meters(httpx.get(f"{url}/metrics", headers=bearer).text)
    return meter.requests, meter.cpu_seconds


def test_metering_is_on_by_default(tmp_path: Path) -> None:
    requests, cpu_seconds = _served_cpu(tmp_path)
    assert requests == 5
    assert cpu_seconds > 0


@pytest.mark.parametrize("spelling", ["0", "false", "off"])
def test_the_environment_variable_turns_metering_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    monkeypatch.setenv("SHIPYARD_COST__METERING", spelling)
    assert _served_cpu(tmp_path) == (5, 0.0)


def test_the_project_file_turns_metering_off(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("cost:\n  metering: false\n")
    assert _served_cpu(tmp_path) == (5, 0.0)
