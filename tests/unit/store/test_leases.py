"""Leases on both backends, stepped through expiry with a manual clock (issue 20)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.errors import InvalidArgument
from shipyard.store.leases import Leadership, LeaseStore
from shipyard.store.sql import SqlStore

TTL_MS = 10_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ms=1_000_000)


@pytest.fixture
def leases(store_url: str, clock: ManualClock) -> Iterator[LeaseStore]:
    store = SqlStore(store_url)
    yield LeaseStore(store, clock)
    store.close()


def test_one_holder_until_expiry_then_the_next_takes_over_with_a_higher_token(
    leases: LeaseStore, clock: ManualClock
) -> None:
    first = leases.acquire("monitor", "a", TTL_MS)
    assert first.held_by("a", clock.now_ms())
    assert first.token == 1
    refused = leases.acquire("monitor", "b", TTL_MS)
    assert refused.holder == "a"
    assert not refused.held_by("b", clock.now_ms())

    clock.advance(ms=TTL_MS - 1)
    renewed = leases.acquire("monitor", "a", TTL_MS)  # renewing keeps the token
    assert renewed.token == 1
    assert renewed.expires_ms == clock.now_ms() + TTL_MS
    clock.advance(ms=TTL_MS - 1)
    assert leases.acquire("monitor", "b", TTL_MS).holder == "a"  # renewed: not yet expired

    clock.advance(ms=1)
    taken = leases.acquire("monitor", "b", TTL_MS)
    assert taken.held_by("b", clock.now_ms())
    assert taken.token == 2
    assert leases.acquire("monitor", "a", TTL_MS).holder == "b"
    assert leases.current("monitor") == taken


def test_release_frees_the_lease_at_once_and_only_for_its_holder(
    leases: LeaseStore, clock: ManualClock
) -> None:
    leases.acquire("gc", "a", TTL_MS)
    assert not leases.release("gc", "b")
    assert leases.acquire("gc", "b", TTL_MS).holder == "a"
    assert leases.release("gc", "a")
    assert leases.acquire("gc", "b", TTL_MS).held_by("b", clock.now_ms())
    assert leases.current("other") is None


def test_names_are_independent_and_bad_arguments_are_refused(leases: LeaseStore) -> None:
    assert leases.acquire("monitor:a", "x", TTL_MS).holder == "x"
    assert leases.acquire("monitor:b", "y", TTL_MS).holder == "y"
    with pytest.raises(InvalidArgument, match="positive"):
        leases.acquire("monitor:a", "x", 0)


def test_many_threads_racing_for_a_free_lease_get_exactly_one_holder(
    leases: LeaseStore, clock: ManualClock
) -> None:
    barrier = threading.Barrier(8)
    winners: list[str] = []

    def race(i: int) -> None:
        barrier.wait()
        if leases.acquire("race", f"h{i}", TTL_MS).held_by(f"h{i}", clock.now_ms()):
            winners.append(f"h{i}")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    current = leases.current("race")
    assert current is not None
    assert current.holder == winners[0]


def test_leadership_follows_the_lease_and_hands_over_on_stop(
    leases: LeaseStore, clock: ManualClock
) -> None:
    leader = Leadership(leases, "loop", ttl_ms=TTL_MS, holder="a")
    standby = Leadership(leases, "loop", ttl_ms=TTL_MS, holder="b")
    assert leader.try_acquire()
    assert not standby.try_acquire()
    clock.advance(ms=TTL_MS)  # the leader stopped renewing (a pause, a kill)
    assert not leader.held
    assert standby.try_acquire()
    assert not leader.try_acquire()
    standby.stop()  # releases: the other one need not wait for the expiry
    assert leader.try_acquire()
    assert leader.lease is not None
    assert leader.lease.token == 3
