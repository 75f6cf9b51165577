"""Users, roles and tokens on both backends: checked, audited, and what authentication accepts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shipyard.core.clock import ManualClock
from shipyard.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from shipyard.security.accounts import Accounts
from shipyard.security.audit import verify
from shipyard.security.identities import AuthenticationFailed, Identity, Kind
from shipyard.security.roles import Role
from shipyard.store.security import SecurityStore
from tests.unit.security.conftest import PROJECT, identity


def _token_for(accounts: Accounts, admin: Identity, user: str, role: Role | None) -> str:
    accounts.create_user(admin, user)
    if role is not None:
        accounts.grant(admin, user, role, PROJECT)
    return accounts.create_token(admin, user).text


def test_a_token_authenticates_as_its_user_with_the_project_role(
    accounts: Accounts, admin: Identity
) -> None:
    text = _token_for(accounts, admin, "alice", Role.DATA_SCIENTIST)
    who = accounts.authenticate(text, project=PROJECT, source="http:10.0.0.1")
    assert (who.name, who.kind, who.role, who.source) == (
        "alice",
        Kind.USER,
        Role.DATA_SCIENTIST,
        "http:10.0.0.1",
    )
    assert who.token_id == text.split("_")[1]
    # Another project's role does not carry over: authenticated, but no role there.
    assert accounts.authenticate(text, project="other", source="t").role is None


def test_the_store_keeps_only_the_hash(
    lite_accounts: Accounts, admin: Identity, lite_store: SecurityStore
) -> None:
    text = _token_for(lite_accounts, admin, "alice", Role.VIEWER)
    with lite_store.engine.connect() as c:
        dumped = " ".join(
            str(v) for row in c.execute(sa.text("SELECT * FROM security_tokens")) for v in row
        )
        audit_text = " ".join(r.detail_json + r.object for r in lite_store.iter_audit())
    assert text not in dumped
    assert text.rsplit("_", 1)[1] not in dumped
    assert text.rsplit("_", 1)[1] not in audit_text


@pytest.mark.parametrize(
    "bad", ["", "garbage", "sy_000000000000_" + "A" * 43, "Bearer sy_x"], ids=str
)
def test_bad_tokens_fail(lite_accounts: Accounts, bad: str) -> None:
    with pytest.raises(AuthenticationFailed):
        lite_accounts.authenticate(bad, project=PROJECT, source="t")


def test_a_tampered_secret_with_a_real_id_fails(lite_accounts: Accounts, admin: Identity) -> None:
    text = _token_for(lite_accounts, admin, "alice", Role.ADMIN)
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationFailed, match="unknown token"):
        lite_accounts.authenticate(forged, project=PROJECT, source="t")


def test_expired_revoked_and_disabled(
    accounts: Accounts, admin: Identity, clock: ManualClock
) -> None:
    accounts.create_user(admin, "bob")
    accounts.grant(admin, "bob", "viewer", PROJECT)
    short = accounts.create_token(admin, "bob", expires_in_days=1)
    kept = accounts.create_token(admin, "bob", expires_in_days=None)
    clock.advance(seconds=86_399)
    accounts.authenticate(short.text, project=PROJECT, source="t")
    clock.advance(seconds=1)
    with pytest.raises(AuthenticationFailed, match="expired"):
        accounts.authenticate(short.text, project=PROJECT, source="t")
    assert accounts.authenticate(kept.text, project=PROJECT, source="t").name == "bob"

    accounts.revoke_token(admin, kept.token_id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        accounts.authenticate(kept.text, project=PROJECT, source="t")

    third = accounts.create_token(admin, "bob")
    accounts.disable_user(admin, "bob")
    with pytest.raises(AuthenticationFailed, match="disabled"):
        accounts.authenticate(third.text, project=PROJECT, source="t")
    assert accounts.store.count_usable_tokens(clock.now_ms()) == 0


def test_only_admins_manage_and_denials_are_audited(
    lite_accounts: Accounts, admin: Identity, lite_store: SecurityStore
) -> None:
    lite_accounts.create_user(admin, "carol")
    engineer = identity(Role.ML_ENGINEER, name="eve")
    before = len(list(lite_store.iter_audit()))
    with pytest.raises(PermissionDenied, match="needs admin"):
        lite_accounts.grant(engineer, "carol", Role.ADMIN, PROJECT)
    with pytest.raises(PermissionDenied):
        lite_accounts.create_token(engineer, "carol")
    with pytest.raises(PermissionDenied):
        lite_accounts.tokens(engineer)
    assert lite_store.role_of("carol", PROJECT) is None
    assert lite_store.list_tokens("carol") == []
    denied = list(lite_store.iter_audit())[before:]
    assert [(e.actor, e.action, e.outcome) for e in denied] == [
        ("eve", "roles.manage", "denied"),
        ("eve", "tokens.manage", "denied"),
    ]


def test_every_change_is_audited_and_the_chain_verifies(
    accounts: Accounts, admin: Identity, security_store: SecurityStore
) -> None:
    accounts.create_user(admin, "svc-scorer", service=True)
    accounts.grant(admin, "svc-scorer", Role.VIEWER, PROJECT)
    accounts.grant(admin, "svc-scorer", Role.ML_ENGINEER, PROJECT)
    token = accounts.create_token(admin, "svc-scorer", description="batch scorer")
    accounts.revoke_token(admin, token.token_id)
    accounts.revoke_role(admin, "svc-scorer", PROJECT)
    entries = list(security_store.iter_audit())
    assert [(e.action, e.object) for e in entries] == [
        ("users.manage", "user:svc-scorer"),
        ("roles.manage", f"role:svc-scorer@{PROJECT}"),
        ("roles.manage", f"role:svc-scorer@{PROJECT}"),
        ("tokens.manage", f"token:{token.token_id}"),
        ("tokens.manage", f"token:{token.token_id}"),
        ("roles.manage", f"role:svc-scorer@{PROJECT}"),
    ]
    assert '"before":"viewer"' in entries[2].detail_json
    assert all(e.actor == "root-admin" and e.source == "test" for e in entries)
    assert verify(security_store).ok
    assert [u.kind for u in accounts.users(admin)] == ["service"]


def test_failed_changes_leave_no_audit_entry(
    lite_accounts: Accounts, admin: Identity, lite_store: SecurityStore
) -> None:
    lite_accounts.create_user(admin, "dave")
    with pytest.raises(AlreadyExists):
        lite_accounts.create_user(admin, "dave")
    with pytest.raises(NotFound):
        lite_accounts.grant(admin, "nobody", Role.VIEWER, PROJECT)
    with pytest.raises(NotFound):
        lite_accounts.create_token(admin, "nobody")
    with pytest.raises(NotFound):
        lite_accounts.revoke_token(admin, "000000000000")
    with pytest.raises(NotFound):
        lite_accounts.revoke_role(admin, "dave", PROJECT)
    assert len(list(lite_store.iter_audit())) == 1


@pytest.mark.parametrize("name", ["", "../x", "a b", "x" * 101, "a;drop", "\x00", "\uff41"])
def test_bad_user_names(lite_accounts: Accounts, admin: Identity, name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid user name"):
        lite_accounts.create_user(admin, name)


def test_bad_roles_lifetimes_and_projects(lite_accounts: Accounts, admin: Identity) -> None:
    lite_accounts.create_user(admin, "erin")
    with pytest.raises(InvalidArgument, match="unknown role"):
        lite_accounts.grant(admin, "erin", "root", PROJECT)
    with pytest.raises(InvalidArgument, match="invalid project"):
        lite_accounts.grant(admin, "erin", Role.VIEWER, "../p")
    for days in (0, -1, 10_000):
        with pytest.raises(InvalidArgument, match="lifetime"):
            lite_accounts.create_token(admin, "erin", expires_in_days=days)
