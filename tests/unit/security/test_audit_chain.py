"""The keyed audit chain against what a database-only attacker can do, and its anchor file.

Each case edits the real tables directly, as someone with write access to the database (but
not to the audit key or the anchor file) would, then checks what ``verify`` reports against
the anchor the chain wrote by itself.
"""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from shipyard.core.errors import IntegrityFailure
from shipyard.security.audit import entry_hash, record, verify
from shipyard.security.audit_anchor import Anchor, AnchorFile
from shipyard.security.audit_chain import AuditChain, AuditKey, AuditKeyRequired, AuditKeySource
from shipyard.store.security import GENESIS_HASH, AuditLogMissing, SecurityStore
from shipyard.store.sql import SqlStore
from tests.unit.security.conftest import AUDIT_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from shipyard.core.errors import IntegrityFailure
from shipyard.security.audit import Verification


def _fill(store: SecurityStore, n: int) -> None:
    for i in range(1, n + 1):
        record(store, f"user{i}", "models.promote", f"churn@production#{i}", detail={"to": i})


def _sql(store: SecurityStore, statement: str, **params: object) -> None:
    with store.engine.begin() as c:
        c.execute(sa.text(statement), params)


def _anchor(store: SecurityStore) -> Anchor | None:
    assert isinstance(store.sealer, AuditChain)
    assert store.sealer.anchors is not None
    return store.sealer.anchors.read()


def _verify(store: SecurityStore) -> Verification:
    """What `shipyard audit verify` does: check against the anchor file."""
    return verify(store, anchor=_anchor(store))


@pytest.fixture
def sql(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore(store_url)
    yield store
    store.close()


def _store(
    sql: SqlStore, folder: Path, key: AuditKey | AuditKeySource = AUDIT_KEY, every: int = 1
) -> SecurityStore:
    return SecurityStore(
        sql, AuditChain(key, AnchorFile(folder / "anchor.json"), anchor_every=every)
    )


def test_the_head_is_anchored_outside_the_database(sql: SqlStore, tmp_path: Path) -> None:
    store = _store(sql, tmp_path, every=3)
    record(store, "alice", "models.promote", "churn@production")
    first = _anchor(store)
    assert first is not None  # the first keyed entry is anchored at once
    assert (first.seq, first.key_id) == (1, AUDIT_KEY.key_id)
    _fill(store, 4)  # entries 2..5: anchored again at 3, not at 2, 4 or 5
    anchor = _anchor(store)
    assert anchor is not None
    assert anchor.seq == 3
    assert anchor.head_hash == store.get_audit(3).entry_hash  # type: ignore[union-attr]
    result = _verify(store)
    assert (result.ok, result.anchor_seq, result.head_seq, result.warning) == (True, 3, 5, None)


def test_deleting_the_newest_entries_is_reported_as_truncation(
    sql: SqlStore, tmp_path: Path
) -> None:
    store = _store(sql, tmp_path)
    _fill(store, 5)
    assert _verify(store).ok
    _sql(store, "DELETE FROM audit_log WHERE seq >= 4")
    result = _verify(store)
    assert (result.ok, result.first_bad, result.head_seq) == (False, 4, 3)
    assert "ends at entry 3 but its anchor says it reached entry 5" in (result.problem or "")
    assert "the newest 2 entries were removed" in (result.problem or "")


def test_deleting_the_whole_log_is_reported(sql: SqlStore, tmp_path: Path) -> None:
    store = _store(sql, tmp_path)
    _fill(store, 3)
    _sql(store, "DELETE FROM audit_log")
    result = _verify(store)
    assert (result.ok, result.first_bad, result.entries) == (False, 1, 0)
    assert "the whole log was deleted" in (result.problem or "")


def test_truncation_followed_by_new_entries_is_not_buried(sql: SqlStore, tmp_path: Path) -> None:
    store = _store(sql, tmp_path)
    _fill(store, 5)
    _sql(store, "DELETE FROM audit_log WHERE seq >= 4")
    _fill(store, 4)  # honest appends 4..7 after the cut
    anchor = _anchor(store)
    assert anchor is not None
    assert anchor.seq == 5  # the anchor did not move past the evidence
    result = _verify(store)
    assert (result.ok, result.first_bad) == (False, 5)
    assert "entry 5 is not the entry the anchor recorded" in (result.problem or "")


def test_a_chain_recomputed_without_the_key_is_caught(sql: SqlStore, tmp_path: Path) -> None:
    store = _store(sql, tmp_path)
    _fill(store, 4)
    # Rewrite every entry as a pre-HMAC one and rebuild the whole SHA-256 chain: every seal
    # checks out on its own, and no unkeyed entry follows a keyed one.
    prev = GENESIS_HASH
    for entry in list(store.iter_audit()):
        fields = {k: getattr(entry, k) for k in entry.__dataclass_fields__}
        fields.update(prev_hash=prev, actor="mallory" if entry.seq == 2 else entry.actor)
        prev = entry_hash(fields)
        _sql(
            store,
            "UPDATE audit_log SET actor = :a, prev_hash = :p, entry_hash = :h, key_id = NULL "
            "WHERE seq = :s",
            a=fields["actor"],
            p=fields["prev_hash"],
            h=prev,
            s=entry.seq,
        )
    assert verify(store).ok  # without an anchor this is undetectable (docs/security.md)...
    result = _verify(store)
    assert (result.ok, result.first_bad) == (False, 4)  # ...the anchored seal gives it away
    assert "not the entry the anchor recorded" in (result.problem or "")


def test_entries_from_before_keying_still_verify(sql: SqlStore, tmp_path: Path) -> None:
    """A log written by the unkeyed chain (key_id NULL, plain SHA-256) continues keyed."""
    store = _store(sql, tmp_path)
    prev = GENESIS_HASH
    for seq in (1, 2):
        fields = {
            "seq": seq,
            "at_ms": 1_000 * seq,
            "actor": "old",
            "action": "users.manage",
            "object": f"user:u{seq}",
            "source": "cli:old",
            "outcome": "ok",
            "detail_json": "{}",
            "prev_hash": prev,
        }
        prev = entry_hash(fields)
        _sql(
            store,
            "INSERT INTO audit_log (seq, at_ms, actor, action, object, source, outcome, "
            "detail_json, prev_hash, entry_hash) VALUES (:seq, :at_ms, :actor, :action, "
            ":object, :source, :outcome, :detail_json, :prev_hash, :entry_hash)",
            **fields,
            entry_hash=prev,
        )
    _fill(store, 2)
    entries = list(store.iter_audit())
    assert [e.key_id for e in entries] == [None, None, AUDIT_KEY.key_id, AUDIT_KEY.key_id]
    assert entries[2].prev_hash == entries[1].entry_hash
    assert _verify(store).ok
    _sql(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    result = _verify(store)
    assert (result.ok, result.first_bad) == (False, 1)


def test_a_dropped_audit_table_is_a_clear_error(sql: SqlStore, tmp_path: Path) -> None:
    store = _store(sql, tmp_path)
    _fill(store, 2)
    _sql(store, "DROP TABLE audit_log")
    result = _verify(store)
    assert (result.ok, result.first_bad) == (False, 1)
    assert "audit log table 'audit_log' is missing" in (result.problem or "")
    with pytest.raises(AuditLogMissing, match="restore it from a backup"):
        store.list_audit()
    with pytest.raises(AuditLogMissing, match="is missing"):
        record(store, "alice", "models.promote", "churn@production")


def test_a_process_without_the_key_refuses_to_append_and_verify(
    sql: SqlStore, tmp_path: Path
) -> None:
    store = _store(sql, tmp_path)
    _fill(store, 1)
    keyless = _store(sql, tmp_path, AuditKeySource(environ={}))  # no key anywhere
    with pytest.raises(AuditKeyRequired, match=f"sealed with audit key {AUDIT_KEY.key_id}"):
        record(keyless, "bob", "models.promote", "churn@production")
    with pytest.raises(AuditKeyRequired, match="no audit key to check it"):
        verify(keyless)
    other = _store(sql, tmp_path, AuditKey.from_bytes(b"another-key-0123456789abcdefghij"))
    with pytest.raises(AuditKeyRequired, match="but this process holds audit key"):
        record(other, "bob", "models.promote", "churn@production")
    result = verify(other)
    assert (result.ok, result.first_bad) == (False, 1)
    assert [e.seq for e in store.iter_audit()] == [1]  # nothing was written unkeyed


def test_the_default_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    sql = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    key_file = tmp_path / "keys" / "audit.key"
    keys = AuditKeySource(environ={}, default_file=key_file)
    store = _store(sql, tmp_path, keys)
    record(store, "alice", "models.promote", "churn@production")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    made = keys.load()
    assert made is not None
    assert store.get_audit(1).key_id == made.key_id  # type: ignore[union-attr]
    # A second process finds the same file and continues the chain under the same key.
    again = _store(sql, tmp_path, AuditKeySource(environ={}, default_file=key_file))
    record(again, "bob", "models.promote", "churn@production")
    assert _verify(again).ok
    # Once the log is keyed, a process whose default file is gone does not start a new key.
    key_file.rename(tmp_path / "moved.key")
    lost = _store(sql, tmp_path, AuditKeySource(environ={}, default_file=key_file))
    with pytest.raises(AuditKeyRequired, match="copy the key file to"):
        record(lost, "carol", "models.promote", "churn@production")
    assert not key_file.exists()
    sql.close()


def test_a_damaged_anchor_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "anchor.json"
    path.write_text('{"format": 1, "head_seq": 3, "head_hash": "nope"}')
    with pytest.raises(IntegrityFailure, match="is not a valid anchor"):
        AnchorFile(path).read()
