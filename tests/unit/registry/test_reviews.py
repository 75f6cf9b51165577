"""Four-eyes promotion through ``ReviewService`` and ``ModelRegistry.promote`` under a rule.

The main flow runs on both store backends (SQLite and a real PostgreSQL); the rest on SQLite.
Bundles and held-out rows as in ``test_promotion.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from shipyard.core.review_settings import ReviewSettings
from shipyard.core.settings import load_settings
from shipyard.data.datasets import write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.registry.reviews import ReviewService
from shipyard.security.roles import Role
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR, person
from tests.unit.registry.bundles import WEAK, bundle_bytes, held_out

RULES = ReviewSettings.model_validate(
    {
        "default": {"production": {"approvals": 1, "approver_roles": ["ml-engineer", "admin"]}},
        "models": {
            "free": {"production": {"approvals": 0}},
            "strict": {"production": {"approver_roles": ["admin"]}},
            "two": {"production": {"approvals": 2}},
        },
    }
)
ANA = person("ana", Role.DATA_SCIENTIST)
BOB = person("bob", Role.ML_ENGINEER)
CAROL = person("carol", Role.ADMIN)


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Iterator[Workspace]:
    settings = load_settings(
        project_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store' / 'shipyard.db'}",
        artifact_root=str(tmp_path / "artifacts"),
    )
    ws = Workspace(settings)
    yield ws
    ws.close()


def _registry(workspace: Workspace) -> ModelRegistry:
    registry = ModelRegistry.for_workspace(workspace)
    registry.reviews = RULES
    return registry


def _bundles(workspace: Workspace, tmp_path: Path) -> dict[str, bytes]:
    test = write_dataset(workspace, held_out("binary"), name="cancer.test").dataset_id
    return {
        "good": bundle_bytes(tmp_path, test_dataset=test, name="good"),
        "weak": bundle_bytes(tmp_path, features=WEAK["binary"], test_dataset=test, name="weak"),
    }


def test_a_request_is_approved_by_another_person_and_moves_the_alias(
    workspace: Workspace, tmp_path: Path
) -> None:
    registry = _registry(workspace)
    bundles = _bundles(workspace, tmp_path)
    v1 = registry.register("cancer", bundles["good"], actor=OPERATOR)
    asked = registry.promote("cancer", v1.version, actor=BOB, reason="first model")
    assert (asked.moved, asked.action) == (False, "requested")
    assert asked.request_id is not None
    assert "waits for review" in asked.describe()
    with pytest.raises(NotFound):
        registry.get("cancer@production")
    reviews = ReviewService(registry)
    detail = reviews.detail(asked.request_id)
    assert detail.request.state == "open"
    assert detail.request.requested_by == "bob"
    assert detail.evidence.body["gate"]["passed"] is True
    assert "latency_us_per_row" in detail.evidence.body["cost"]
    assert [d.decision for d in detail.decisions] == ["requested"]

    with pytest.raises(PermissionDenied, match="another person"):
        reviews.approve(asked.request_id, actor=BOB)
    with pytest.raises(PermissionDenied, match=r"models\.approve needs ml-engineer"):
        reviews.approve(asked.request_id, actor=person("dan", Role.DATA_SCIENTIST))
    outcome = reviews.approve(asked.request_id, actor=CAROL, comment="looks **good**")
    assert outcome.request.state == "approved"
    assert outcome.promotion is not None
    assert outcome.promotion.moved
    assert registry.get("cancer@production").version == v1.version
    last = registry.history("cancer", "production")[-1]
    assert last.actor == "carol"
    assert asked.request_id in (last.reason or "")

    decisions = reviews.store.decisions(asked.request_id)
    assert [(d.decision, d.actor) for d in decisions] == [
        ("requested", "bob"),
        ("approve", "carol"),
    ]
    approval = registry.security.get_audit(decisions[-1].audit_seq or 0)
    assert approval is not None
    assert (approval.action, approval.outcome) == ("models.approve", "ok")
    detail_json = json.loads(approval.detail_json)
    assert detail_json["request"] == asked.request_id
    assert detail_json["evidence_sha256"] == detail.evidence.sha256
    denied = [e for e in registry.security.iter_audit() if e.outcome == "denied"]
    assert {e.actor for e in denied} == {"bob", "dan"}
    with pytest.raises(Conflict, match="is approved"):
        reviews.approve(asked.request_id, actor=person("erin", Role.ADMIN))


def test_a_request_goes_stale_when_the_candidate_or_the_holder_changes(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    registry = _registry(sqlite_workspace)
    bundles = _bundles(sqlite_workspace, tmp_path)
    v1 = registry.register("cancer", bundles["weak"], actor=OPERATOR)
    v2 = registry.register("cancer", bundles["good"], actor=OPERATOR)
    reviews = ReviewService(registry)
    first = reviews.request_promotion("cancer", v1.version, actor=ANA)
    second = reviews.request_promotion("cancer", v2.version, actor=ANA)
    assert first.request_id is not None
    assert second.request_id is not None
    with pytest.raises(Conflict, match="newer request"):
        reviews.approve(first.request_id, actor=BOB)
    assert reviews.get(first.request_id).state == "stale"
    # The holder moves behind the request's back (a registry without rules, e.g. an operator).
    third = registry.register("cancer", bundles["good"], actor=OPERATOR)
    plain = ModelRegistry.for_workspace(sqlite_workspace)
    plain.promote("cancer", third.version, actor=OPERATOR, force=True, reason="hotfix")
    with pytest.raises(Conflict, match="now points to version 3"):
        reviews.approve(second.request_id, actor=BOB)
    stale = reviews.detail(second.request_id)
    assert stale.request.state == "stale"
    assert [d.decision for d in stale.decisions] == ["requested", "stale"]
    assert registry.get("cancer@production").version == third.version


def test_reject_needs_a_comment_and_closes_the_request(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    registry = _registry(sqlite_workspace)
    v1 = registry.register("cancer", _bundles(sqlite_workspace, tmp_path)["good"], actor=OPERATOR)
    asked = ReviewService(registry).request_promotion("cancer", v1.version, actor=ANA)
    assert asked.request_id is not None
    reviews = ReviewService(registry)
    with pytest.raises(InvalidArgument, match="needs a comment"):
        reviews.reject(asked.request_id, actor=BOB, comment=" ")
    outcome = reviews.reject(asked.request_id, actor=BOB, comment="no slices yet")
    assert outcome.request.state == "rejected"
    assert reviews.list(state="rejected")[0].request_id == asked.request_id
    assert reviews.list(model="other") == []
    with pytest.raises(InvalidArgument, match="unknown state"):
        reviews.list(state="bogus")
    with pytest.raises(Conflict):
        reviews.approve(asked.request_id, actor=CAROL)


def test_rules_force_and_exemptions(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    registry = _registry(sqlite_workspace)
    bundles = _bundles(sqlite_workspace, tmp_path)
    v1 = registry.register("cancer", bundles["good"], actor=OPERATOR)
    with pytest.raises(InvalidArgument, match="--force cannot skip"):
        registry.promote("cancer", v1.version, actor=BOB, force=True, reason="now")
    free = registry.register("free", bundles["good"], actor=OPERATOR)
    assert registry.promote("free", free.version, actor=BOB).moved  # approvals: 0
    with pytest.raises(InvalidArgument, match="needs no review"):
        ReviewService(registry).request_promotion("free", free.version, actor=ANA)
    strict = registry.register("strict", bundles["good"], actor=OPERATOR)
    asked = ReviewService(registry).request_promotion("strict", strict.version, actor=ANA)
    assert asked.request_id is not None
    with pytest.raises(PermissionDenied, match="needs one of admin"):
        ReviewService(registry).approve(asked.request_id, actor=BOB)
    assert ReviewService(registry).approve(asked.request_id, actor=CAROL).request.state == (
        "approved"
    )
    viewer = person("vic", Role.VIEWER)
    with pytest.raises(PermissionDenied):
        ReviewService(registry).request_promotion("cancer", v1.version, actor=viewer)


def test_the_gate_refuses_before_a_request_opens(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    registry = _registry(sqlite_workspace)
    bundles = _bundles(sqlite_workspace, tmp_path)
    good = registry.register("cancer", bundles["good"], actor=OPERATOR)
    weak = registry.register("cancer", bundles["weak"], actor=OPERATOR)
    reviews = ReviewService(registry)
    asked = reviews.request_promotion("cancer", good.version, actor=ANA)
    assert asked.request_id is not None
    reviews.approve(asked.request_id, actor=BOB)
    refused = reviews.request_promotion("cancer", weak.version, actor=ANA)
    assert (refused.action, refused.request_id) == ("refused", None)
    assert registry.history("cancer", "production")[-1].action == "refused"
    assert len(reviews.list()) == 1


def test_the_evidence_says_how_sure_the_lead_is(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    registry = _registry(sqlite_workspace)
    bundles = _bundles(sqlite_workspace, tmp_path)
    weak = registry.register("cancer", bundles["weak"], actor=OPERATOR)
    good = registry.register("cancer", bundles["good"], actor=OPERATOR)
    reviews = ReviewService(registry)
    first = reviews.request_promotion("cancer", weak.version, actor=ANA)
    assert first.request_id is not None
    reviews.approve(first.request_id, actor=BOB)
    asked = reviews.request_promotion("cancer", good.version, actor=ANA, reason="better")
    assert asked.request_id is not None
    evidence = reviews.detail(asked.request_id).evidence
    paired = evidence.body["intervals"]["paired"]
    assert paired["metric"] == evidence.body["gate"]["metric"]
    assert paired["low"] <= paired["lead"] <= paired["high"]
    assert paired["lead"] > 0
    assert evidence.body["intervals"]["holder"] is not None
    assert json.loads(json.dumps(evidence.body)) == evidence.body  # strict JSON, stored as is


def test_two_approvals_from_two_people(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    registry = _registry(sqlite_workspace)
    v1 = registry.register("two", _bundles(sqlite_workspace, tmp_path)["good"], actor=OPERATOR)
    reviews = ReviewService(registry)
    asked = reviews.request_promotion("two", v1.version, actor=ANA)
    assert asked.request_id is not None
    first = reviews.approve(asked.request_id, actor=BOB, comment="one")
    assert (first.request.state, first.promotion) == ("open", None)
    assert reviews.detail(asked.request_id).approvals == 1
    with pytest.raises(Conflict, match="already approved"):
        reviews.approve(asked.request_id, actor=BOB)
    second = reviews.approve(asked.request_id, actor=CAROL, comment="two")
    assert second.request.state == "approved"
    assert registry.get("two@production").version == v1.version
