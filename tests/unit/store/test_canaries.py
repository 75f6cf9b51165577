"""Shared canary rows on both backends: counts add up, the first verdict wins (issue 20)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shipyard.core.clock import ManualClock
from shipyard.store.canaries import CanaryStore
from shipyard.store.sql import SqlStore


@pytest.fixture
def canaries(store_url: str) -> Iterator[CanaryStore]:
    store = SqlStore(store_url)
    yield CanaryStore(store, ManualClock())
    store.close()


def test_counts_from_several_replicas_add_up_and_the_first_verdict_stays(
    canaries: CanaryStore,
) -> None:
    assert canaries.add("churn>challenger:v3", 0, 0).requests == 0
    canaries.add("churn>challenger:v3", 10, 4)
    total = canaries.add("churn>challenger:v3", 5, 5)
    assert (total.requests, total.errors, total.verdict) == (15, 9, None)
    first, won = canaries.decide("churn>challenger:v3", "rolled_back", "error rate 60%")
    assert won
    assert first.verdict == "rolled_back"
    second, won = canaries.decide("churn>challenger:v3", "promoted", "200 requests")
    assert not won
    assert (second.verdict, second.reason) == ("rolled_back", "error rate 60%")
    assert canaries.add("churn>challenger:v3", 1, 0).verdict == "rolled_back"
    assert canaries.add("churn>challenger:v4", 1, 0).verdict is None  # a new version: afresh


def test_replicas_deciding_at_once_get_exactly_one_winner(canaries: CanaryStore) -> None:
    barrier = threading.Barrier(6)
    won: list[int] = []

    def decide(i: int) -> None:
        barrier.wait()
        if canaries.decide("race", "rolled_back", f"replica {i}")[1]:
            won.append(i)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert canaries.add("race", 0, 0).reason == f"replica {won[0]}"
