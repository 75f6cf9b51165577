"""``/reviews``, ``/comments`` and ``/activity`` on a real server, behind real tokens.

The model server serves a small in-memory model (as the other route tests do); its teamwork
routes use a real SQLite workspace whose security store also checks the tokens, so the users
who ask, approve and comment are the users the audit chain names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.core.review_settings import ReviewSettings
from shipyard.data.datasets import write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.roles import Role
from shipyard.serve.app import create_app
from shipyard.serve.auth import ServerAuth
from shipyard.serve.runtime import Runtime
from shipyard.serve.server import teamwork_of
from shipyard.serve.traffic import DeploySpec
from shipyard.track.workspace import Workspace
from tests.corpus import XSS_PAYLOADS, live_markup
from tests.identities import OPERATOR
from tests.servers import running
from tests.unit.registry.bundles import bundle_bytes, held_out
from tests.unit.serve.tokens import BOOTSTRAP, PROJECT

SPEC = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=3600)


@pytest.fixture
def server(source: Any, tmp_path: Path) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    (tmp_path / "shipyard.yaml").write_text(
        "reviews: {default: {production: {approvals: 1}}}\n", encoding="utf-8"
    )
    with Workspace.open(tmp_path) as workspace:
        test = write_dataset(workspace, held_out("binary"), name="cancer.test").dataset_id
        registry = ModelRegistry.for_workspace(workspace)
        assert registry.reviews == ReviewSettings.model_validate(
            {"default": {"production": {"approvals": 1}}}
        )
        registry.register("cancer", bundle_bytes(tmp_path, test_dataset=test), actor=OPERATOR)
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        headers = {}
        for name, role in (("ana", Role.ML_ENGINEER), ("bob", Role.ADMIN), ("vic", Role.VIEWER)):
            accounts.create_user(BOOTSTRAP, name)
            accounts.grant(BOOTSTRAP, name, role, PROJECT)
            token = accounts.create_token(BOOTSTRAP, name).text
            headers[name] = {"authorization": f"Bearer {token}"}
        app = create_app(
            Runtime(SPEC, source),
            auth=ServerAuth(accounts, project=PROJECT),
            teamwork=teamwork_of(workspace, registry),
        )
        with running(app) as port:
            yield f"http://127.0.0.1:{port}", headers


def test_four_eyes_over_http(server: tuple[str, dict[str, dict[str, str]]]) -> None:
    base, who = server
    with httpx.Client(base_url=base, timeout=60) as http:
        assert http.get("/reviews").status_code == 401
        asked = http.post("/reviews", json={"model": "cancer", "version": 1}, headers=who["vic"])
        assert asked.status_code == 403  # viewers read only
        asked = http.post("/reviews", json={"model": "cancer", "version": 1}, headers=who["ana"])
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["request_id"]
        assert asked.json()["action"] == "requested"

        own = http.post(f"/reviews/{request_id}/approve", json={}, headers=who["ana"])
        assert own.status_code == 403
        assert "another person" in own.text
        rejected = http.post(f"/reviews/{request_id}/reject", json={}, headers=who["bob"])
        assert rejected.status_code == 422  # a rejection needs a comment
        approved = http.post(
            f"/reviews/{request_id}/approve", json={"comment": "ok"}, headers=who["bob"]
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["moved"] is True
        assert approved.json()["request"]["state"] == "approved"
        again = http.post(f"/reviews/{request_id}/approve", json={}, headers=who["bob"])
        assert again.status_code == 409

        detail = http.get(f"/reviews/{request_id}", headers=who["vic"]).json()
        assert [d["decision"] for d in detail["decisions"]] == ["requested", "approve"]
        assert detail["evidence"]["body"]["gate"]["passed"] is True
        listed = http.get("/reviews", params={"state": "approved"}, headers=who["vic"]).json()
        assert [r["request_id"] for r in listed["requests"]] == [request_id]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/reviews", {"model": "cancer"}, 422),  # version missing
        ("POST", "/reviews", {"model": "cancer", "version": "1"}, 422),  # wrong type
        ("POST", "/reviews", {"model": "cancer", "version": 1, "x": 1}, 422),  # extra field
        ("POST", "/reviews", {"model": "nope", "version": 1}, 404),
        ("POST", "/reviews", {"model": "../x", "version": 1}, 422),
        ("GET", "/reviews?state=bogus", None, 422),
        ("GET", "/reviews?limit=-1", None, 422),
        ("GET", "/reviews?color=red", None, 422),
        ("GET", "/reviews/0123456789abcdef0123456789abcdef", None, 404),
        ("GET", "/reviews/..%2Fx", None, 404),
        ("POST", "/reviews/0123456789abcdef0123456789abcdef/approve", {}, 404),
        ("GET", "/comments", None, 422),
        ("GET", "/comments?kind=planet&target=x", None, 422),
        ("POST", "/comments", {"kind": "run", "target": "nope", "body": "hi"}, 404),
        ("POST", "/comments", {"kind": "model", "target": "cancer:1", "body": ""}, 422),
        ("GET", "/activity?limit=5000", None, 422),
    ],
)
def test_bad_input_gets_a_precise_status(
    server: tuple[str, dict[str, dict[str, str]]],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    base, who = server
    with httpx.Client(base_url=base, timeout=60) as http:
        answer = http.request(method, path, json=body, headers=who["bob"])
    assert answer.status_code == status, answer.text


def test_comments_with_xss_come_back_raw_and_rendered_safe(
    server: tuple[str, dict[str, dict[str, str]]],
) -> None:
    base, who = server
    with httpx.Client(base_url=base, timeout=60) as http:
        denied = http.post(
            "/comments",
            json={"kind": "model", "target": "cancer:1", "body": "hi"},
            headers=who["vic"],
        )
        assert denied.status_code == 403
        for payload in XSS_PAYLOADS[:6]:
            made = http.post(
                "/comments",
                json={"kind": "model", "target": "cancer:1", "body": f"@bob {payload}"},
                headers=who["ana"],
            )
            assert made.status_code == 201, made.text
            assert made.json()["mentions"] == ["bob"]
        listed = http.get(
            "/comments", params={"kind": "model", "target": "cancer:1"}, headers=who["vic"]
        ).json()["comments"]
        assert [c["body"] for c in listed] == [f"@bob {p}" for p in XSS_PAYLOADS[:6]]
        for c in listed:
            assert live_markup(c["html"]) == [], c["html"]
        items = http.get("/activity", headers=who["vic"]).json()["items"]
        assert {"comment", "model_version", "dataset"} <= {i["kind"] for i in items}
