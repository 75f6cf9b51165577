"""Sessions: a fresh id on sign-in, re-checked tokens, idle expiry, bounded anonymous ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.clock import ManualClock
from shipyard.security.accounts import Accounts
from shipyard.security.identities import AuthenticationFailed
from shipyard.security.roles import Role
from shipyard.store.security import SecurityStore
from shipyard.store.sql import SqlStore
from shipyard.ui import sessions as sessions_module
from shipyard.ui.sessions import Sessions
from tests.identities import OPERATOR
from tests.unit.security.conftest import chain


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def accounts(tmp_path: Path, clock: ManualClock) -> Iterator[Accounts]:
    sql = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    accounts = Accounts(SecurityStore(sql, chain(tmp_path)), clock=clock)
    accounts.create_user(OPERATOR, "ann")
    accounts.grant(OPERATOR, "ann", Role.DATA_SCIENTIST, "project")
    yield accounts
    sql.close()


def test_sign_in_starts_a_new_session_and_drops_the_old(
    accounts: Accounts, clock: ManualClock
) -> None:
    sessions = Sessions(accounts, project="project", clock=clock)
    anonymous = sessions.new()
    token = accounts.create_token(OPERATOR, "ann")
    signed = sessions.sign_in(anonymous, token.text, "ui:test")
    assert signed.sid != anonymous.sid
    assert signed.csrf != anonymous.csrf
    assert sessions.get(anonymous.sid) is None
    identity = sessions.identity(signed)
    assert identity is not None
    assert identity.name == "ann"
    assert identity.role == Role.DATA_SCIENTIST
    with pytest.raises(AuthenticationFailed):
        sessions.sign_in(None, "sy_000000000000_" + "x" * 43, "ui:test")


def test_a_revoked_token_or_changed_role_reaches_open_sessions_within_the_recheck(
    accounts: Accounts, clock: ManualClock
) -> None:
    sessions = Sessions(accounts, project="project", recheck_s=5, clock=clock)
    token = accounts.create_token(OPERATOR, "ann")
    session = sessions.sign_in(None, token.text, "ui:test")
    accounts.grant(OPERATOR, "ann", Role.VIEWER, "project")
    assert sessions.identity(session).role == Role.DATA_SCIENTIST  # type: ignore[union-attr]
    clock.advance(seconds=6)
    assert sessions.identity(session).role == Role.VIEWER  # type: ignore[union-attr]
    accounts.revoke_token(OPERATOR, token.token_id)
    clock.advance(seconds=6)
    assert sessions.identity(sessions.get(session.sid)) is None  # type: ignore[arg-type]
    assert sessions.get(session.sid) is None  # ended


def test_idle_sessions_expire(accounts: Accounts, clock: ManualClock) -> None:
    sessions = Sessions(accounts, project="project", idle_s=60, clock=clock)
    token = accounts.create_token(OPERATOR, "ann")
    session = sessions.sign_in(None, token.text, "ui:test")
    clock.advance(seconds=59)
    assert sessions.get(session.sid) is not None  # a request resets the idle time
    clock.advance(seconds=59)
    assert sessions.get(session.sid) is not None
    clock.advance(seconds=61)
    assert sessions.get(session.sid) is None


def test_a_flood_of_anonymous_sessions_never_evicts_a_signed_in_one(
    accounts: Accounts, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions_module, "_MAX_SESSIONS", 5)
    sessions = Sessions(accounts, project="project", clock=clock)
    token = accounts.create_token(OPERATOR, "ann")
    signed = sessions.sign_in(None, token.text, "ui:test")
    first = sessions.new()
    for _ in range(50):
        sessions.new()
    assert sessions.get(first.sid) is None  # the oldest anonymous one went
    assert sessions.get(signed.sid) is not None
