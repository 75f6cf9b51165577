"""A registry built from what it uses (issue 15): a bare SqlStore, a blob store, a fixed clock.

No ``Workspace``, so no metric writer or heartbeat thread: the registry is a plain object over
the stores, on both backends, and register → promote → rollback is audited as it is through
``ModelRegistry.for_workspace``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.settings import RegistrySettings
from shipyard.registry.registry import ModelRegistry
from shipyard.security import audit
from shipyard.security.audit_anchor import AnchorFile
from shipyard.security.audit_chain import AuditChain, AuditKey
from shipyard.store.artifacts.local import LocalBlobStore
from shipyard.store.security import SecurityStore
from shipyard.store.sql import SqlStore
from shipyard.store.stores import StoreSet
from tests.identities import person
from tests.unit.registry.trained import cached_bundle_file

START_MS = 1_700_000_000_000


@pytest.fixture
def sql(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore(store_url)
    yield store
    store.close()


def test_register_promote_rollback_without_a_workspace(sql: SqlStore, tmp_path: Path) -> None:
    clock = ManualClock(start_ms=START_MS)
    stores = StoreSet(sql, LocalBlobStore(tmp_path / "blobs"), clock)
    files = {  # trained (once per process) before the thread census below
        "good": cached_bundle_file(stores, tmp_path, name="good"),
        "weak": cached_bundle_file(stores, tmp_path, features=["charges"], name="weak"),
    }
    threads_before = set(threading.enumerate())

    chain = AuditChain(AuditKey.from_bytes(bytes(32)), AnchorFile(tmp_path / "anchor.json"))
    security = SecurityStore(sql, chain)
    registry = ModelRegistry(
        sql, stores.blobs, security=security, limits=RegistrySettings(), clock=clock
    )
    ana, bob = person("ana"), person("bob")
    v1 = registry.register("churn", files["good"], actor=ana)
    clock.advance(seconds=1)
    v2 = registry.register("churn", files["weak"], actor=ana)
    first = registry.promote("churn", v1.version, actor=ana, reason="baseline")
    clock.advance(seconds=1)
    forced = registry.promote("churn", v2.version, force=True, reason="try it", actor=bob)
    clock.advance(seconds=1)
    back = registry.rollback("churn", actor=bob, reason="weaker on the test split")

    assert (v1.version, v2.version) == (1, 2)
    assert v1.created_ms == START_MS
    assert first.verdict is not None
    assert first.verdict.passed
    assert [(r.moved, r.from_version, r.to_version) for r in (first, forced, back)] == [
        (True, None, 1),
        (True, 1, 2),
        (True, 2, 1),
    ]
    assert registry.get("churn@production").version == 1
    assert registry.load("churn@production").manifest.feature_names == ["tenure", "charges", "plan"]
    history = registry.history("churn", "production")
    assert [(e.actor, e.to_version, e.at_ms) for e in history] == [
        ("ana", 1, START_MS + 1000),
        ("bob", 2, START_MS + 2000),
        ("bob", 1, START_MS + 3000),
    ]
    entries = security.list_audit()
    assert [(e.actor, e.action, e.object, e.outcome, e.at_ms) for e in entries] == [
        ("ana", "models.register", "model:churn", "ok", START_MS),
        ("ana", "models.register", "model:churn", "ok", START_MS + 1000),
        ("ana", "models.promote", "churn@production", "ok", START_MS + 1000),
        ("bob", "models.promote", "churn@production", "ok", START_MS + 2000),
        ("bob", "models.rollback", "churn@production", "ok", START_MS + 3000),
    ]
    assert audit.verify(security).ok
    assert registry.check_invariants() == []
    started = [t.name for t in threading.enumerate() if t not in threads_before]
    assert started == []
