"""The metric buffer: flushes on size, on time and on demand; never loses values on failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shipyard.core.errors import StoreUnavailable
from shipyard.store.sql import SqlStore
from shipyard.track.writer import MetricWriter
from tests.factories import make_run


@pytest.fixture
def store(tmp_path: Path):
    s = SqlStore(f"sqlite:///{tmp_path / 'w.db'}")
    s.run_id = make_run(s)  # type: ignore[attr-defined]
    yield s
    s.close()


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_flushes_when_the_batch_is_full(store: SqlStore) -> None:
    writer = MetricWriter(store, flush_interval_s=60, flush_size=100, max_pending=10_000)
    for i in range(250):
        writer.add((store.run_id, "m", float(i), i, i))
    assert wait_for(lambda: store.count_metrics() >= 200)
    writer.close()
    assert store.count_metrics() == 250


def test_flushes_on_the_interval(store: SqlStore) -> None:
    writer = MetricWriter(store, flush_interval_s=0.05, flush_size=1_000_000, max_pending=2_000_000)
    writer.add((store.run_id, "m", 1.0, 0, 0))
    assert wait_for(lambda: store.count_metrics() == 1)
    writer.close()


def test_backpressure_bounds_the_queue(store: SqlStore) -> None:
    writer = MetricWriter(store, flush_interval_s=60, flush_size=50, max_pending=100)
    for i in range(1_000):
        writer.add((store.run_id, "m", float(i), i, i))
        assert writer.pending <= 100
    writer.close()
    assert store.count_metrics() == 1_000


class FlakyStore:
    """A real store that refuses the first ``failures`` writes, as an outage would."""

    def __init__(self, store: SqlStore, failures: int) -> None:
        self.store = store
        self.failures = failures

    def log_metrics(self, rows) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("store down (test)")
        self.store.log_metrics(rows)


def test_a_failed_write_keeps_the_values_in_order(store: SqlStore) -> None:
    flaky = FlakyStore(store, failures=1)
    writer = MetricWriter(flaky, flush_interval_s=60, flush_size=10_000, max_pending=10_000)  # type: ignore[arg-type]
    for i in range(10):
        writer.add((store.run_id, "m", float(i), i, i))
    with pytest.raises(StoreUnavailable):
        writer.flush()
    assert writer.pending == 10
    writer.flush()
    writer.close()
    assert [p.value for p in store.metric_history(store.run_id, "m")] == [
        float(i) for i in range(10)
    ]
