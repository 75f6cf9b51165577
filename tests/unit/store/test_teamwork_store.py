"""Comments, the activity feed and review rows on both store backends (SQLite, PostgreSQL)."""

from __future__ import annotations

import pytest

from shipyard.core.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from shipyard.security import audit
from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.roles import Role
from shipyard.store.activity import recent_activity
from shipyard.store.reviews import ReviewStore
from shipyard.track.comments import CommentService
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR, person


def test_comments_mentions_and_activity(workspace: Workspace) -> None:
    security = security_store(workspace.settings, workspace.store)
    accounts = Accounts(security)
    for name in ("bob", "carol"):
        accounts.create_user(OPERATOR, name)
    accounts.disable_user(OPERATOR, "carol")
    told: list[tuple[str, tuple[str, ...]]] = []
    comments = CommentService(
        workspace.store,
        security,
        notify=lambda comment, names: told.append((comment.comment_id, tuple(names))),
    )
    with workspace.start_run(name="r", experiment="e") as run:
        pass
    ana = person("ana", Role.DATA_SCIENTIST)
    made = comments.add("run", run.run_id, "nice @bob @carol @ana @nobody", actor=ana)
    assert made.mentions == ("bob",)  # carol is disabled, ana wrote it, nobody does not exist
    assert told == [(made.comment_id, ("bob",))]
    assert comments.for_target("run", run.run_id, actor=person("vic", Role.VIEWER)) == [made]
    entry = security.get_audit(made.audit_seq or 0)
    assert entry is not None
    assert (entry.actor, entry.action, entry.object) == (
        "ana",
        "comments.write",
        f"run:{run.run_id}",
    )

    with pytest.raises(PermissionDenied):
        comments.add("run", run.run_id, "hi", actor=person("vic", Role.VIEWER))
    with pytest.raises(NotFound):
        comments.add("run", "0" * 32, "hi", actor=ana)
    with pytest.raises(InvalidArgument):
        comments.add("run", run.run_id, "  ", actor=ana)
    with pytest.raises(InvalidArgument):
        comments.add("model", "no-version", "hi", actor=ana)

    items = recent_activity(workspace.store, limit=10)
    assert [i.kind for i in items][:2] == ["comment", "run"]
    assert recent_activity(workspace.store, kinds=("comment",))[0].ref["target_id"] == run.run_id
    with pytest.raises(InvalidArgument):
        recent_activity(workspace.store, kinds=("planet",))


def test_a_request_closes_once(workspace: Workspace) -> None:
    security = security_store(workspace.settings, workspace.store)
    reviews = ReviewStore(workspace.store, security)
    values = {
        "request_id": "r1",
        "name": "m",
        "alias": "production",
        "version": 1,
        "from_version": None,
        "candidate_sha256": "0" * 64,
        "approvals_needed": 1,
        "approver_roles": ["admin"],
        "margin": 0.0,
        "requested_by": "ana",
        "reason": None,
        "created_ms": 1,
        "closed_ms": None,
        "closed_note": None,
    }
    request, first = reviews.create(
        values, {"gate": {}}, "1" * 64, audit.draft("ana", "models.request_promotion", "m@p")
    )
    assert (request.state, first.decision) == ("open", "requested")
    reviews.decide(
        "r1",
        "reject",
        "bob",
        "no",
        2,
        audit.draft("bob", "models.reject", "m@p"),
        close_as="rejected",
    )
    with pytest.raises(Conflict, match="is rejected"):
        reviews.close("r1", "approved", 3, None)
    assert [d.decision for d in reviews.decisions("r1")] == ["requested", "reject"]
    assert reviews.evidence("r1").sha256 == "1" * 64
    with pytest.raises(NotFound):
        reviews.get("r2")
