"""Four-eyes promotion and comments from the command line, as two users with their own tokens.

Ana asks for a promotion and cannot approve it herself (exit 2, one line); Bob approves it and
the alias moves, with the decision in the audit chain. A request whose candidate changed is
refused as stale. Comments mention a user, who is told through the project's notifier.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from shipyard.data.datasets import write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.security.audit_chain import security_store
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.cli.running import cli
from tests.unit.registry.bundles import WEAK, bundle_bytes, held_out

PROJECT = """\
name: project
reviews:
  default:
    production: {approvals: 1, approver_roles: [ml-engineer, admin]}
monitor:
  notifiers:
    team: {type: log}
"""


def _token(capsys: pytest.CaptureFixture[str], user: str, role: str) -> str:
    code, out, err = cli(capsys, "tokens", "create", "--user", user, "--role", role)
    assert code == 0, err
    return out.strip().splitlines()[-1]


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    (tmp_path / "shipyard.yaml").write_text(PROJECT, encoding="utf-8")
    with Workspace.open(tmp_path) as workspace:
        test = write_dataset(workspace, held_out("binary"), name="cancer.test").dataset_id
        registry = ModelRegistry.for_workspace(workspace)
        good = bundle_bytes(tmp_path, test_dataset=test, name="good")
        weak = bundle_bytes(tmp_path, features=WEAK["binary"], test_dataset=test, name="weak")
        for data in (weak, good, good):
            registry.register("cancer", data, actor=OPERATOR)
    return {"ana": _token(capsys, "ana", "ml-engineer"), "bob": _token(capsys, "bob", "admin")}


def _as(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", token)


def _request_id(out: str) -> str:
    return out.strip().splitlines()[-1].removeprefix("request id: ").strip()


def test_request_approve_by_another_and_stale(
    project: dict[str, str], capsys, monkeypatch, tmp_path: Path
) -> None:
    _as(monkeypatch, project["ana"])
    code, out, err = cli(capsys, "models", "promote", "cancer", "1", "--reason", "first")
    assert code == 0, err
    assert "waits for review" in out
    code, out, _ = cli(capsys, "models", "reviews", "--json")
    first = json.loads(out)[0]["request_id"]
    code, out, err = cli(capsys, "models", "approve", first)
    assert code == 2
    assert "another person must decide it" in err
    assert "Traceback" not in err

    _as(monkeypatch, project["bob"])
    code, out, err = cli(capsys, "models", "approve", first, "--comment", "ok")
    assert code == 0, err
    assert "is approved" in out
    with Workspace.open(tmp_path) as workspace:
        assert ModelRegistry.for_workspace(workspace).get("cancer@production").version == 1
        entries = security_store(workspace.settings, workspace.store).list_audit(limit=50)
    approvals = [e for e in entries if e.action == "models.approve" and e.outcome == "ok"]
    assert [e.actor for e in approvals] == ["bob"]
    assert json.loads(approvals[0].detail_json)["request"] == first
    denied = [e for e in entries if e.action == "models.approve" and e.outcome == "denied"]
    assert [e.actor for e in denied] == ["ana"]

    # Two requests for the same alias: the older one's candidate changed, so it is stale.
    _as(monkeypatch, project["ana"])
    code, out, err = cli(capsys, "models", "request-promotion", "cancer", "2")
    assert code == 0, err
    older = _request_id(out)
    code, out, err = cli(capsys, "models", "request-promotion", "cancer", "3")
    assert code == 0, err
    _as(monkeypatch, project["bob"])
    code, out, err = cli(capsys, "models", "approve", older)
    assert code == 2
    assert "stale" in err
    assert "newer request" in err
    code, out, _ = cli(capsys, "models", "reviews", "--state", "stale")
    assert older in out
    code, out, _ = cli(capsys, "models", "reviews")
    assert code == 0
    for state in ("approved", "stale", "open"):
        assert state in out
    code, out, _ = cli(capsys, "models", "review", older)
    assert code == 0
    assert "evidence sha256" in out


def test_comments_with_a_mention_are_delivered(
    project: dict[str, str], capsys, monkeypatch, caplog
) -> None:
    _as(monkeypatch, project["ana"])
    body = "looks fine, @bob? <script>alert(1)</script> and @nobody"
    with caplog.at_level(logging.INFO, logger="shipyard.alerts"):
        code, out, err = cli(capsys, "comments", "add", "model", "cancer:1", body)
    assert code == 0, err
    assert "mentioned bob" in out
    assert any("ana mentioned @bob on model cancer:1" in r.getMessage() for r in caplog.records)
    code, out, err = cli(capsys, "comments", "list", "model", "cancer:1", "--json")
    assert code == 0, err
    [comment] = json.loads(out)
    assert comment["body"] == body  # stored raw; escaped when shown
    assert comment["mentions"] == ["bob"]
    code, _, err = cli(capsys, "comments", "add", "model", "cancer:9", "hi")
    assert code == 2
    assert "no model 'cancer:9'" in err
    code, _, err = cli(capsys, "comments", "add", "planet", "x", "hi")
    assert code == 2
    code, out, err = cli(capsys, "activity", "--json")
    assert code == 0, err
    kinds = {item["kind"] for item in json.loads(out)}
    assert {"comment", "model_version", "dataset"} <= kinds
