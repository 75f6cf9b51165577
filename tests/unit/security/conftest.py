"""A security store on each backend, an accounts service on a manual clock, and identities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.clock import ManualClock
from shipyard.security.accounts import Accounts
from shipyard.security.audit_anchor import AnchorFile
from shipyard.security.audit_chain import AuditChain, AuditKey
from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role
from shipyard.store.security import SecurityStore
from shipyard.store.sql import SqlStore

PROJECT = "churn-project"


#: The audit key of the test stores (32 fixed bytes; never a real key).
AUDIT_KEY = AuditKey.from_bytes(b"audit-key-for-tests-0123456789ab")


def chain(folder: Path) -> AuditChain:
    """An audit chain under the tests' key, anchoring in ``folder``."""
    return AuditChain(AUDIT_KEY, AnchorFile(folder / "audit-anchor.json"))


def identity(role: Role | None, name: str = "someone", project: str = PROJECT) -> Identity:
    """An identity holding ``role`` in ``project``."""
    return Identity(name=name, kind=Kind.USER, project=project, role=role, source="test")


@pytest.fixture
def security_store(store_url: str, tmp_path: Path) -> Iterator[SecurityStore]:
    sql = SqlStore(store_url)
    yield SecurityStore(sql, chain(tmp_path))
    sql.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def accounts(security_store: SecurityStore, clock: ManualClock) -> Accounts:
    return Accounts(security_store, clock=clock)


@pytest.fixture
def admin() -> Identity:
    return identity(Role.ADMIN, name="root-admin")


@pytest.fixture
def lite_store(tmp_path: Path) -> Iterator[SecurityStore]:
    """A security store on SQLite only, for checks that do not depend on the backend."""
    sql = SqlStore(f"sqlite:///{tmp_path / 'lite.db'}")
    yield SecurityStore(sql, chain(tmp_path))
    sql.close()


@pytest.fixture
def lite_accounts(lite_store: SecurityStore, clock: ManualClock) -> Accounts:
    return Accounts(lite_store, clock=clock)
