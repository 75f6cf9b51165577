"""The store owns its tables (issue 15): SQL and row classes stay in ``shipyard.store``.

The import scan is the same rule as the import-linter contract, checked without the tool so a
failing module is named in the test output. The store classes are exercised on both backends:
a change and its audit entry commit together or not at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.core.clock import ManualClock
from shipyard.core.errors import PermissionDenied
from shipyard.privacy.subject import Subject
from shipyard.security.audit import draft
from shipyard.security.audit_anchor import AnchorFile
from shipyard.security.audit_chain import AuditChain, AuditKey
from shipyard.store.blob_gc import GcStore
from shipyard.store.erasure import ErasureStore
from shipyard.store.monitoring import MonitoringStore
from shipyard.store.retention import ReleaseRow, RetentionStore
from shipyard.store.security import SecurityStore
from shipyard.store.sql import SqlStore

PACKAGE = Path(shipyard.__file__).parent
#: Reads the user's own databases (a data source), not the store's tables.
ALLOWED_SQLALCHEMY = {"data/connectors/sql.py"}


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_no_module_outside_the_store_imports_sqlalchemy_or_row_classes() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if where.startswith("store/"):
            continue
        for name in _imports(path):
            rows = name.startswith("shipyard.store.") and name.endswith("models")
            sql = name.split(".")[0] == "sqlalchemy" and where not in ALLOWED_SQLALCHEMY
            if rows or sql:
                offenders.append(f"{where}: {name}")
    assert offenders == []


def _engine_handles(path: Path) -> Iterator[int]:
    """Lines of ``x.engine`` reads: any ``.engine`` attribute but a class's own ``self.engine``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        own = isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self"
        if isinstance(node, ast.Attribute) and node.attr == "engine" and not own:
            yield node.lineno


def test_no_module_outside_the_store_touches_the_metadata_engine() -> None:
    """Store classes take the ``SqlStore`` (``RegistryStore(workspace.store)``), not its engine.

    So nothing above the store holds a SQLAlchemy handle, and another metadata backend needs no
    change above it. ``self.engine`` is a class's own attribute (a served model's scoring engine).
    """
    offenders = [
        f"{path.relative_to(PACKAGE).as_posix()}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.relative_to(PACKAGE).as_posix().startswith("store/")
        and path.relative_to(PACKAGE).as_posix() not in ALLOWED_SQLALCHEMY
        for line in _engine_handles(path)
    ]
    assert offenders == []


class RefusingChain(AuditChain):
    """A chain that refuses every append, as one without its key does."""

    def seal(self, fields: Mapping[str, Any], prev_key_id: str | None) -> tuple[str | None, str]:
        raise PermissionDenied("this process may not append to the audit chain")


@pytest.fixture
def sql(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore(store_url)
    yield store
    store.close()


def _log(sql: SqlStore, tmp_path: Path, chain: type[AuditChain] = AuditChain) -> SecurityStore:
    key = AuditKey.from_bytes(bytes(32))
    return SecurityStore(sql, chain(key, AnchorFile(tmp_path / "anchor.json")))


def _entry(op: str) -> Any:
    return draft("ana", "runs.delete", op, detail={"op": op}, clock=ManualClock(start_ms=5))


def test_retention_releases_and_tiers_commit_with_their_audit_entry_or_not_at_all(
    sql: SqlStore, tmp_path: Path
) -> None:
    store = RetentionStore(sql)
    release = ReleaseRow("run", "r1", "too old")

    def apply(log: SecurityStore, reason: str = "too old") -> None:
        store.apply(
            [ReleaseRow("run", "r1", reason)],
            ["d" * 64],
            cold_tier="infrequent",
            at_ms=7,
            audit=_entry("retention"),
            audit_log=log,
        )

    with pytest.raises(PermissionDenied):
        apply(_log(sql, tmp_path, RefusingChain))
    with store.reading() as r:
        assert (r.released(), r.tiers()) == (set(), {})

    log = _log(sql, tmp_path)
    apply(log)
    apply(log, reason="a second plan")  # idempotent: the first release stands
    with store.reading() as r:
        assert r.released() == {(release.kind, release.ref)}
    assert store.tiers() == {"d" * 64: "infrequent"}
    assert [e.object for e in log.iter_audit()] == ["retention", "retention"]


def test_a_sweep_ends_with_its_audit_entry_and_a_crashed_one_is_abandoned(
    sql: SqlStore, tmp_path: Path
) -> None:
    gc = GcStore(sql)
    gc.mark("s1", started_ms=10, grace_s=0.0, blobs_seen=2, candidates={"a" * 64: 3})
    gc.mark("s2", started_ms=20, grace_s=0.0, blobs_seen=2, candidates={"b" * 64: 4})
    assert gc.marked_before(["a" * 64, "b" * 64], cutoff_ms=15) == {"a" * 64}

    with pytest.raises(PermissionDenied):
        gc.finish(
            "s2",
            finished_ms=30,
            deleted=1,
            bytes_freed=4,
            audit=_entry("blobs"),
            audit_log=_log(sql, tmp_path, RefusingChain),
        )
    log = _log(sql, tmp_path)
    assert list(log.iter_audit()) == []
    written = gc.finish(
        "s2", finished_ms=30, deleted=1, bytes_freed=4, audit=_entry("blobs"), audit_log=log
    )
    assert [e.seq for e in log.iter_audit()] == [written.seq]


def test_erasure_deletes_monitoring_rows_with_an_entry_built_from_what_it_deleted(
    sql: SqlStore, tmp_path: Path
) -> None:
    subject = Subject.of("email", "ann@example.com")
    observation = {
        "model": "churn",
        "version": 1,
        "variant": None,
        "kind": "drift",
        "statistic": "psi",
        "subject": "email",
        "value": 0.1,
        "window_start_ms": 0,
        "window_end_ms": 1,
        "threshold": None,
        "breached": False,
        "recorded_ms": 1,
    }
    MonitoringStore(sql).add_observations(
        [
            {**observation, "detail": {"top": ["ann@example.com"]}},
            {**observation, "detail": {"top": ["bob@example.com"]}},
        ]
    )
    store = ErasureStore(sql)
    assert store.find_rows(subject) == ({"monitor_observations": 1}, {})

    def refuse(deleted: dict[str, int], left: dict[str, int]) -> Any:
        raise PermissionDenied("no entry, no deletion")

    with pytest.raises(PermissionDenied):
        store.delete_rows(subject, refuse, _log(sql, tmp_path))
    assert store.find_rows(subject) == ({"monitor_observations": 1}, {})

    seen: list[tuple[dict[str, int], dict[str, int]]] = []

    def entry(deleted: dict[str, int], left: dict[str, int]) -> Any:
        seen.append((deleted, left))
        return _entry("subject:email")

    log = _log(sql, tmp_path)
    deleted, left, written = store.delete_rows(subject, entry, log)
    assert (deleted, left) == ({"monitor_observations": 1}, {})
    assert seen[-1] == (deleted, left)
    assert store.find_rows(subject) == ({}, {})
    assert len(MonitoringStore(sql).observations(model="churn")) == 1
    assert log.get_audit(written.seq) == written
