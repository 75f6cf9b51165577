"""The loop that runs only while it holds its lease, and the re-check before a retrain."""

from __future__ import annotations

from pathlib import Path

from shipyard.core.clock import SYSTEM_CLOCK
from shipyard.pipeline.singleton import guarded, lead_forever, monitor_lease_name
from shipyard.store.leases import Leadership, LeaseStore
from shipyard.store.sql import SqlStore


def test_the_leader_runs_passes_and_a_lost_lease_skips_the_guarded_work(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    leases = LeaseStore(store, SYSTEM_CLOCK)
    name = monitor_lease_name("churn", "production")
    assert name == "monitor:churn@production"
    changes: list[bool] = []
    calls: list[str] = []
    with Leadership(leases, name, ttl_ms=60_000, holder="me") as leadership:
        lead_forever(
            lambda: calls.append("pass"), leadership, 0.0, on_change=changes.append, passes=3
        )
        assert calls == ["pass"] * 3
        assert changes == [True]
        assert guarded(leadership, lambda: "work", lambda: "skipped") == "work"
        # someone takes the lease over (ours expired while we were stalled)
        leases.release(name, "me")
        assert leases.acquire(name, "other", 60_000).holder == "other"
        assert guarded(leadership, lambda: "work", lambda: "skipped") == "skipped"
        assert not leadership.held
    current = leases.current(name)
    assert current is not None
    assert current.holder == "other"  # stopping released nothing it did not hold
    store.close()
