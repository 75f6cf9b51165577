"""Security rows: audit listing filters, tokens listed without secrets, role replacement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.clock import ManualClock
from shipyard.security.audit import record
from shipyard.security.audit_anchor import AnchorFile
from shipyard.security.audit_chain import AuditChain, AuditKey
from shipyard.store.security import SecurityStore
from shipyard.store.sql import SqlStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SecurityStore]:
    sql = SqlStore(f"sqlite:///{tmp_path / 's.db'}")
    key = AuditKey.from_bytes(bytes(32))
    yield SecurityStore(sql, AuditChain(key, AnchorFile(tmp_path / "anchor.json")))
    sql.close()


def test_audit_list_filters_by_actor_action_object_and_time(store: SecurityStore) -> None:
    clock = ManualClock(start_ms=1_000)
    for actor, action, obj in [
        ("alice", "models.promote", "churn@production"),
        ("bob", "models.rollback", "churn@production"),
        ("alice", "roles.manage", "role:bob@p"),
        ("alice", "models.promote", "fraud@production"),
        ("bob", "models.promote", "churn_x@production"),
    ]:
        record(store, actor, action, obj, clock=clock)
        clock.advance(ms=1_000)

    def seqs(**filters: object) -> list[int]:
        return [e.seq for e in store.list_audit(**filters)]  # type: ignore[arg-type]

    assert seqs() == [1, 2, 3, 4, 5]
    assert seqs(actor="alice") == [1, 3, 4]
    assert seqs(action="models.promote") == [1, 4, 5]
    assert seqs(object_prefix="churn@") == [1, 2]  # '_' and '%' are not wildcards
    assert seqs(object_prefix="churn_") == [5]
    assert seqs(since_ms=2_000, until_ms=4_000) == [2, 3]
    assert seqs(actor="alice", action="models.promote", since_ms=2_000) == [4]
    assert seqs(limit=2) == [4, 5]  # the newest, oldest first
