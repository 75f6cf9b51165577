"""The registry's metadata on SQLite and PostgreSQL: gap-free versions, compare-and-set aliases.

No ML here: a version is a row pointing at a (fake) blob digest, which is all the store knows.
The concurrency tests use real threads with their own connections from the engine's pool.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shipyard.core.errors import Conflict, NotFound
from shipyard.store.registry import RegistryStore
from shipyard.store.sql import SqlStore

T0 = 1_700_000_000_000


@pytest.fixture
def registry(store_url: str) -> Iterator[RegistryStore]:
    store = SqlStore(store_url)
    yield RegistryStore(store)
    store.close()


def values(name: str = "churn", seed: str = "a", **extra: Any) -> dict[str, Any]:
    row = {
        "name": name,
        "bundle_sha256": hashlib.sha256(seed.encode()).hexdigest(),
        "size_bytes": 10,
        "run_id": None,
        "task": "binary",
        "primary_metric": "roc_auc",
        "metrics": {"test": 0.9},
        "lineage": {"dataset_ids": {"test": "d1"}},
        "description": None,
        "created_by": "ana",
        "created_ms": T0,
    }
    row.update(extra)
    return row


def move(store: RegistryStore, to: int, expected: int | None, action: str = "promote") -> Any:
    return store.move_alias(
        "churn",
        "production",
        to_version=to,
        expected_from=expected,
        action=action,
        actor="ana",
        reason="why",
        gate=None,
        at_ms=T0 + to,
    )


def in_threads(n: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``work(i)`` in ``n`` threads released together; return results and errors."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        barrier.wait()
        try:
            result = work(i)
        except BaseException as e:
            with lock:
                errors.append(e)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def test_versions_count_up_per_model(registry: RegistryStore) -> None:
    first, new = registry.create_version(values())
    assert (first.version, new) == (1, True)
    assert registry.create_version(values(seed="b"))[0].version == 2
    assert registry.create_version(values("fraud"))[0].version == 1
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    assert registry.latest_version("churn").version == 2
    assert registry.get_version("churn", 1) == first
    assert first.ref == "churn:1"
    with pytest.raises(NotFound, match="no version 3"):
        registry.get_version("churn", 3)
    with pytest.raises(NotFound, match="no model named"):
        registry.latest_version("nope")
    listed = registry.list_models()
    assert [(m["name"], m["versions"], m["latest"]) for m in listed] == [
        ("churn", 2, 2),
        ("fraud", 1, 1),
    ]


def test_an_idempotency_key_registers_once(registry: RegistryStore) -> None:
    first, new = registry.create_version(values(), idempotency_key="run:1")
    again, new_again = registry.create_version(values(), idempotency_key="run:1")
    assert (new, new_again) == (True, False)
    assert again == first
    assert len(registry.list_versions("churn")) == 1
    with pytest.raises(Conflict, match="idempotency key"):
        registry.create_version(values(seed="other"), idempotency_key="run:1")
    with pytest.raises(Conflict, match="idempotency key"):
        registry.create_version(values("fraud"), idempotency_key="run:1")


def test_concurrent_registrations_are_unique_and_gap_free(registry: RegistryStore) -> None:
    per_thread = 3

    def work(i: int) -> list[int]:
        return [
            registry.create_version(values(seed=f"{i}-{j}"))[0].version for j in range(per_thread)
        ]

    results, errors = in_threads(8, work)
    assert errors == []
    numbers = sorted(n for r in results for n in r)
    assert numbers == list(range(1, 8 * per_thread + 1))
    stored = registry.list_versions("churn")
    assert [v.version for v in stored] == numbers
    assert len({v.bundle_sha256 for v in stored}) == len(stored)


def test_concurrent_registrations_with_one_key_make_one_version(registry: RegistryStore) -> None:
    results, errors = in_threads(
        6, lambda _: registry.create_version(values(), idempotency_key="k")
    )
    assert errors == []
    assert {v.version for v, _ in results} == {1}
    assert sorted(new for _, new in results) == [False] * 5 + [True]


def test_alias_moves_only_from_the_expected_holder(registry: RegistryStore) -> None:
    for seed in "abc":
        registry.create_version(values(seed=seed))
    assert registry.resolve_alias("churn", "production") is None
    first = move(registry, 1, None)
    assert (first.from_version, first.to_version, first.action) == (None, 1, "promote")
    with pytest.raises(Conflict, match="moved to version 1 meanwhile"):
        move(registry, 2, None)
    with pytest.raises(Conflict):
        move(registry, 2, 3)
    move(registry, 2, 1)
    assert registry.resolve_alias("churn", "production") == 2
    assert registry.aliases("churn") == {"production": 2}
    with pytest.raises(NotFound):
        move(registry, 9, 2)
    assert [e.to_version for e in registry.history("churn")] == [1, 2]


def test_a_refusal_is_recorded_and_moves_nothing(registry: RegistryStore) -> None:
    registry.create_version(values())
    registry.create_version(values(seed="b"))
    move(registry, 1, None)
    gate = {"passed": False, "candidate_score": 0.6, "champion_score": 0.9}
    event = registry.record_refusal(
        "churn", "production", candidate=2, current=1, actor="bob", reason=None, gate=gate, at_ms=T0
    )
    assert (event.action, event.from_version, event.to_version, event.gate) == (
        "refused",
        1,
        2,
        gate,
    )
    assert registry.resolve_alias("churn", "production") == 1
    assert [(e.action, e.actor) for e in registry.history("churn", "production")] == [
        ("promote", "ana"),
        ("refused", "bob"),
    ]
    assert registry.history("churn", "challenger") == []


@pytest.mark.parametrize("start", [None, 1])
def test_concurrent_moves_exactly_one_wins(registry: RegistryStore, start: int | None) -> None:
    for seed in "abcdefghi":
        registry.create_version(values(seed=seed))
    if start is not None:
        move(registry, start, None)
    results, errors = in_threads(8, lambda i: move(registry, i + 2, start))
    assert len(results) == 1, (results, errors)
    assert len(errors) == 7
    assert all(isinstance(e, Conflict) for e in errors), errors
    winner = results[0].to_version
    assert registry.resolve_alias("churn", "production") == winner
    moves = [e for e in registry.history("churn") if e.from_version == start]
    assert [e.to_version for e in moves] == [winner]  # the losers left no event


def test_previous_holder_unwinds_moves_like_a_stack(registry: RegistryStore) -> None:
    for seed in "abcd":
        registry.create_version(values(seed=seed))
    assert registry.previous_holder("churn", "production") is None
    move(registry, 1, None)
    assert registry.previous_holder("churn", "production") is None
    move(registry, 2, 1)
    move(registry, 3, 2, action="force")
    registry.record_refusal(
        "churn", "production", candidate=4, current=3, actor="b", reason=None, gate={}, at_ms=T0
    )
    assert registry.previous_holder("churn", "production") == 2
    move(registry, 2, 3, action="rollback")
    assert registry.previous_holder("churn", "production") == 1
    move(registry, 1, 2, action="rollback")
    assert registry.previous_holder("churn", "production") is None
    move(registry, 4, 1)
    assert registry.previous_holder("churn", "production") == 1


def test_an_idempotent_alias_move_happens_once(registry: RegistryStore) -> None:
    for seed in "ab":
        registry.create_version(values(seed=seed))

    def keyed(to: int, expected: int | None) -> Any:
        return registry.move_alias(
            "churn",
            "production",
            to_version=to,
            expected_from=expected,
            action="promote",
            actor="ana",
            reason=None,
            gate=None,
            at_ms=T0,
            idempotency_key="deploy-7",
        )

    first = keyed(1, None)
    again = keyed(1, None)  # the retry of a call whose answer was lost: same event, no move
    assert again == first
    assert registry.event_by_key("deploy-7") == first
    assert len(registry.history("churn")) == 1
    with pytest.raises(Conflict, match="idempotency key"):
        keyed(2, 1)
    assert registry.resolve_alias("churn", "production") == 1
