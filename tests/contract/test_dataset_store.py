"""The dataset-version store contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib

import pytest

from shipyard.core.errors import InvalidArgument, NotFound, RunNotFound
from shipyard.store.datasets import DatasetStore, DatasetVersion
from shipyard.track.workspace import Workspace
from tests.factories import T0, make_run

SCHEMA = [{"name": "x", "type": "int64"}]


def version(name: str = "orders.clean", content: str = "a", **extra) -> DatasetVersion:
    digest = hashlib.sha256(content.encode()).hexdigest()
    values = {
        "dataset_id": hashlib.sha256(f"{name}/{digest}".encode()).hexdigest(),
        "name": name,
        "kind": "data",
        "digest": digest,
        "size_bytes": 10,
        "row_count": 3,
        "schema": SCHEMA,
        "profile": {"format": 1, "row_count": 3, "columns": []},
        "lineage": None,
        "run_id": None,
        "created_ms": T0,
    }
    values.update(extra)
    return DatasetVersion(**values)


@pytest.fixture
def store(workspace: Workspace) -> DatasetStore:
    return DatasetStore(workspace.store)


def test_insert_then_get_by_id_and_prefix(store: DatasetStore, workspace: Workspace) -> None:
    run_id = make_run(workspace.store)
    v = version(run_id=run_id, lineage={"step": "clean", "params": {"k": 1.5}})
    stored = store.insert_version(v)
    assert stored == v
    assert store.get(v.dataset_id) == v
    assert store.get(v.dataset_id[:8].upper()) == v
    with pytest.raises(NotFound, match="no dataset version"):
        store.get("abcdef")
    with pytest.raises(NotFound, match="not a dataset id"):
        store.get("xyz")


def test_insert_is_idempotent_and_first_write_wins(store: DatasetStore) -> None:
    first = store.insert_version(version(created_ms=T0))
    again = store.insert_version(version(created_ms=T0 + 1000, size_bytes=99))
    assert again == first
    assert len(store.list_versions("orders.clean")) == 1


def test_ambiguous_prefix_is_refused(store: DatasetStore) -> None:
    a = version(content="a", dataset_id="abcdef" + "0" * 58)
    b = version(content="b", dataset_id="abcdef" + "1" * 58)
    store.insert_version(a)
    store.insert_version(b)
    with pytest.raises(NotFound, match="more than one"):
        store.get("abcdef")
    assert store.get("abcdef1").dataset_id == b.dataset_id


def test_list_newest_first_by_name_and_kind(store: DatasetStore) -> None:
    old = store.insert_version(version(content="1", created_ms=T0))
    new = store.insert_version(version(content="2", created_ms=T0 + 5))
    other = store.insert_version(version("orders.raw", content="3", created_ms=T0 + 9))
    quarantine = store.insert_version(version(content="4", kind="quarantine", created_ms=T0 + 7))
    assert [v.dataset_id for v in store.list_versions("orders.clean", kind="data")] == [
        new.dataset_id,
        old.dataset_id,
    ]
    assert [v.dataset_id for v in store.list_versions()] == [
        other.dataset_id,
        quarantine.dataset_id,
        new.dataset_id,
        old.dataset_id,
    ]
    assert [v.dataset_id for v in store.list_versions(limit=1)] == [other.dataset_id]


def test_find_by_cache_key(store: DatasetStore) -> None:
    assert store.find_by_cache_key("k1") is None
    data = store.insert_version(version(content="d"), cache_key="k1")
    bad = store.insert_version(version(content="q", kind="quarantine"), cache_key="k1")
    assert store.find_by_cache_key("k1") == data
    assert store.find_by_cache_key("k1", kind="quarantine") == bad
    assert store.find_by_cache_key("k1", name="other") is None
    # The same output under a new key (the step's code changed, its output did not).
    again = store.insert_version(version(content="d", created_ms=T0 + 1), cache_key="k2")
    assert again == data
    assert store.find_by_cache_key("k2") == data
    assert store.find_by_cache_key("k1") == data
    with pytest.raises(InvalidArgument, match="cache key"):
        store.insert_version(version(content="z"), cache_key="x" * 129)


def test_parents_children_and_ancestry(store: DatasetStore) -> None:
    raw = store.insert_version(version("orders.raw", content="r"))
    customers = store.insert_version(version("customers.raw", content="c"))
    clean = store.insert_version(
        version(content="k", parent_ids=(raw.dataset_id, customers.dataset_id))
    )
    feats = store.insert_version(version("orders.features", parent_ids=(clean.dataset_id,)))
    assert clean.parent_ids == tuple(sorted((raw.dataset_id, customers.dataset_id)))
    assert {v.dataset_id for v in store.parents(clean.dataset_id)} == set(clean.parent_ids)
    assert [v.dataset_id for v in store.children(raw.dataset_id)] == [clean.dataset_id]
    assert store.children(feats.dataset_id) == []
    ancestry = store.ancestry(feats.dataset_id[:10])
    assert next(iter(ancestry)) == feats.dataset_id
    assert set(ancestry) == {
        feats.dataset_id,
        clean.dataset_id,
        raw.dataset_id,
        customers.dataset_id,
    }
    assert store.ancestry(raw.dataset_id) == {raw.dataset_id: raw}


def test_unknown_parent_or_run_is_refused_and_writes_nothing(store: DatasetStore) -> None:
    with pytest.raises(NotFound, match="parent dataset"):
        store.insert_version(version(parent_ids=("f" * 64,)))
    with pytest.raises(RunNotFound):
        store.insert_version(version(run_id="0" * 32))
    with pytest.raises(InvalidArgument, match="kind"):
        store.insert_version(version(kind="model"))
    assert store.list_versions() == []


def test_get_many_skips_unknown_ids(store: DatasetStore) -> None:
    a = store.insert_version(version(content="a"))
    assert store.get_many([a.dataset_id, "e" * 64]) == {a.dataset_id: a}
    assert store.get_many([]) == {}


def test_source_snapshots(store: DatasetStore, workspace: Workspace) -> None:
    assert store.latest_snapshot("orders") is None
    assert store.latest_snapshots() == {}
    produced = store.insert_version(version("orders.raw"))
    run_id = make_run(workspace.store)
    first = store.record_snapshot(
        "orders", watermark="2024-01-01T00:00:00", schema=SCHEMA, created_ms=T0, row_count=5
    )
    # Same millisecond: the later record wins.
    second = store.record_snapshot(
        "orders",
        watermark={"updated_at": "2024-02-01T00:00:00"},
        schema=[*SCHEMA, {"name": "y", "type": "string"}],
        created_ms=T0,
        dataset_id=produced.dataset_id,
        run_id=run_id,
    )
    other = store.record_snapshot("customers", watermark=None, schema=[], created_ms=T0 + 1)
    assert second.snapshot_id > first.snapshot_id
    assert store.latest_snapshot("orders") == second
    assert store.latest_snapshots() == {"orders": second, "customers": other}
    assert store.snapshots_for([produced.dataset_id]) == [second]
    assert store.latest_snapshot("customers") == other
    assert other.watermark is None


def test_writing_a_known_version_again_keeps_its_first_parents(store: DatasetStore) -> None:
    raw = store.insert_version(version("orders.raw", content="r"))
    other = store.insert_version(version("orders.other", content="o"))
    child = version(content="k", parent_ids=(raw.dataset_id,))
    store.insert_version(child)
    again = store.insert_version(child)  # the same child with the same parent: no error
    assert again.parent_ids == (raw.dataset_id,)
    moved = store.insert_version(version(content="k", parent_ids=(other.dataset_id,)))
    assert moved.parent_ids == (raw.dataset_id,)  # first write wins on both backends
