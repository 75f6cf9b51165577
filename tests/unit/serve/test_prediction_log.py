"""The prediction log under concurrency, overflow, shutdown and hour boundaries."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl

from shipyard.serve.prediction_log import PredictionLog, PredictionRecord, read_prediction_log

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def _record(i: int, variant: str = "production", ts: int = T0) -> PredictionRecord:
    return PredictionRecord(
        f"r{i}", "churn", 1, variant, ts, 1.5, '{"x":[1]}', '{"p":[0]}', "0", 0.2
    )


def test_concurrent_writers_lose_nothing_and_duplicates_are_counted(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, max_queue=50_000, batch_size=500, flush_interval_s=0.05)
    log.start()

    def write(k: int) -> None:
        for i in range(5000):
            log.record(_record(k * 10_000 + i))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not log.record(_record(3))  # the same request id again
    log.close()
    frame = read_prediction_log(tmp_path).collect()
    assert frame.height == 40_000 == log.written
    assert frame["request_id"].n_unique() == 40_000
    assert log.duplicates == 1
    assert log.written + log.dropped == 40_000


def test_a_full_queue_drops_and_counts_instead_of_growing(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, max_queue=100)  # not started: nothing drains the queue
    accepted = sum(log.record(_record(i)) for i in range(1000))
    assert accepted == 100
    assert log.depth == 100
    assert log.dropped == 900
    log.start()
    log.close()
    assert read_prediction_log(tmp_path).collect().height == 100
    assert log.written + log.dropped == 1000


def test_close_drains_everything_and_is_idempotent(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)  # only close makes it write
    log.start()
    for i in range(2500):
        log.record(_record(i))
    log.close()
    log.close()
    assert log.written == 2500
    assert not list(tmp_path.rglob("*.tmp"))


def test_hour_partitions_and_time_filters(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.start()
    for i in range(30):
        log.record(_record(i, ts=T0 + (i // 10) * HOUR_MS + 5))
    log.record(_record(0, variant="shadow:challenger"))  # same request, another variant: kept
    log.close()
    parts = sorted(p.parent.name for p in tmp_path.rglob("*.parquet"))
    assert len(set(parts)) == 3
    all_rows = read_prediction_log(tmp_path).collect()
    assert all_rows.height == 31
    window = read_prediction_log(
        tmp_path, since_ms=T0 + HOUR_MS, until_ms=T0 + 2 * HOUR_MS
    ).collect()
    assert window.height == 10
    assert set(all_rows.filter(pl.col("request_id") == "r0")["variant"]) == {
        "production",
        "shadow:challenger",
    }


def test_an_empty_log_reads_as_an_empty_frame(tmp_path: Path) -> None:
    assert read_prediction_log(tmp_path / "none").collect().height == 0
