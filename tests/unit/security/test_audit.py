"""The audit chain: keyed seals, tampering with the table is found, appends never fork."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from shipyard.security.audit import entry_hash, entry_mac, record, verify
from shipyard.store.security import GENESIS_HASH, SecurityStore
from tests.unit.security.conftest import AUDIT_KEY


def _fill(store: SecurityStore, n: int) -> None:
    for i in range(1, n + 1):
        record(store, f"user{i}", "models.promote", f"churn@production#{i}", detail={"to": i})


def _sql(store: SecurityStore, statement: str, **params: object) -> None:
    with store.engine.begin() as c:
        c.execute(sa.text(statement), params)


def test_an_untouched_chain_verifies(security_store: SecurityStore) -> None:
    assert verify(security_store).ok  # empty
    _fill(security_store, 3)
    result = verify(security_store)
    entries = list(security_store.iter_audit())
    assert (result.ok, result.entries, result.head_seq) == (True, 3, 3)
    assert result.head_hash == entries[-1].entry_hash
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    fields = {name: getattr(entries[1], name) for name in entries[1].__dataclass_fields__}
    assert {e.key_id for e in entries} == {AUDIT_KEY.key_id}
    assert entries[1].entry_hash == entry_mac(fields, AUDIT_KEY.mac_key)  # keyed, not SHA-256
    assert entries[1].entry_hash != entry_hash(fields)


def test_edited_deleted_and_reordered_entries_are_named(security_store: SecurityStore) -> None:
    _fill(security_store, 6)
    saved = {e.seq: e for e in security_store.iter_audit()}

    # Edit: who did entry 2 changes.
    _sql(security_store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    result = verify(security_store)
    assert (result.ok, result.first_bad) == (False, 2)
    assert "entry 2 was changed" in (result.problem or "")
    _sql(security_store, "UPDATE audit_log SET actor = :a WHERE seq = 2", a=saved[2].actor)
    assert verify(security_store).ok

    # Edit with a recomputed (unkeyed) hash: without the key the seal cannot be redone.
    _sql(security_store, "UPDATE audit_log SET outcome = 'denied' WHERE seq = 3")
    forged = {**{k: getattr(saved[3], k) for k in saved[3].__dataclass_fields__}}
    forged["outcome"] = "denied"
    _sql(security_store, "UPDATE audit_log SET entry_hash = :h WHERE seq = 3", h=entry_hash(forged))
    result = verify(security_store)
    assert (result.ok, result.first_bad) == (False, 3)
    assert "entry 3 was changed" in (result.problem or "")
    # ...nor by passing the entry off as one from before keying.
    _sql(security_store, "UPDATE audit_log SET key_id = NULL WHERE seq = 3")
    result = verify(security_store)
    assert (result.ok, result.first_bad) == (False, 3)
    assert "entry 3 is not keyed but follows keyed entries" in (result.problem or "")
    _sql(security_store, "UPDATE audit_log SET key_id = 'f00d' WHERE seq = 3")
    result = verify(security_store)
    assert (result.ok, result.first_bad) == (False, 3)
    assert "names audit key f00d" in (result.problem or "")
    _sql(
        security_store,
        "UPDATE audit_log SET outcome = 'ok', entry_hash = :h, key_id = :k WHERE seq = 3",
        h=saved[3].entry_hash,
        k=saved[3].key_id,
    )
    assert verify(security_store).ok

    # Delete: entry 4 disappears.
    _sql(security_store, "DELETE FROM audit_log WHERE seq = 4")
    result = verify(security_store)
    assert (result.ok, result.first_bad) == (False, 4)
    assert "entry 4 is missing" in (result.problem or "")

    # Delete and renumber to hide the gap: the next entry's previous hash gives it away.
    _sql(security_store, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 4")
    result = verify(security_store)
    assert (result.ok, result.first_bad) == (False, 4)

    # Reorder: put the entries back, then swap entries 5 and 6.
    _sql(security_store, "DELETE FROM audit_log WHERE seq >= 4")
    with security_store.engine.begin() as c:
        for seq in (4, 5, 6):
            row = {k: getattr(saved[seq], k) for k in saved[seq].__dataclass_fields__}
            c.execute(
                sa.text(
                    "INSERT INTO audit_log VALUES (:seq, :at_ms, :actor, :action, :object, "
                    ":source, :outcome, :detail_json, :prev_hash, :entry_hash, :key_id)"
                ),
                row,
            )
    assert verify(security_store).ok
    _sql(security_store, "UPDATE audit_log SET seq = 100 WHERE seq = 5")
    _sql(security_store, "UPDATE audit_log SET seq = 5 WHERE seq = 6")
    _sql(security_store, "UPDATE audit_log SET seq = 6 WHERE seq = 100")
    result = verify(security_store)
    assert (result.ok, result.first_bad) == (False, 5)


def test_cut_off_newest_entries_are_caught_by_a_hand_kept_anchor(lite_store: SecurityStore) -> None:
    _fill(lite_store, 4)
    head = verify(lite_store)
    anchor = (head.head_seq, head.head_hash)
    assert verify(lite_store, anchor=anchor).ok
    _sql(lite_store, "DELETE FROM audit_log WHERE seq = 4")
    assert verify(lite_store).ok  # a chain alone cannot see its end cut off...
    assert "no anchor" in (verify(lite_store).warning or "")
    result = verify(lite_store, anchor=anchor)
    assert (result.ok, result.first_bad) == (False, 4)  # ...the anchor can
    assert "the newest 1 entries were removed" in (result.problem or "")


def test_concurrent_appends_never_fork(security_store: SecurityStore) -> None:
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(8):
                record(security_store, f"w{worker}", "runs.write", f"run:{worker}-{i}")
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = list(security_store.iter_audit())
    assert [e.seq for e in entries] == list(range(1, 33))
    assert verify(security_store).ok


def test_long_fields_are_clipped_not_refused(lite_store: SecurityStore) -> None:
    entry = record(lite_store, "a" * 500, "x" * 100, "o" * 2000, detail={"k": "v"})
    assert (len(entry.actor), len(entry.action), len(entry.object)) == (200, 64, 500)
    assert verify(lite_store).ok
