"""The prediction log under concurrency, overflow, write errors, shutdown and hour boundaries.

Every test ends by checking RELIABILITY.md invariant 4 in its counting form: rows on disk equal
``written``, and ``written + dropped + duplicates`` equals the records offered. A "stalled disk"
is the real Parquet writer behind a gate the test opens; the queue itself is never replaced.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.errors import InvalidArgument
from shipyard.serve.prediction_log import (
    SCHEMA,
    PredictionLog,
    PredictionRecord,
    read_prediction_log,
    write_part_atomic,
)

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS  # 2023-11-14 22:00 UTC


def _record(i: int, variant: str = "production", ts: int = T0) -> PredictionRecord:
    return PredictionRecord(
        f"r{i}", "churn", 1, variant, ts, 1.5, '{"x":[1]}', '{"p":[0]}', "0", 0.2
    )


def _rows(root: Path) -> pl.DataFrame:
    return read_prediction_log(root).collect()


def _assert_conserved(log: PredictionLog, root: Path, offered: int) -> None:
    rows = _rows(root)
    assert rows.height == log.written
    assert rows["request_id"].n_unique() == rows.height  # at most one row per request id
    assert log.written + log.dropped + log.duplicates == offered


class GatedDisk:
    """The real atomic writer, held shut until the test opens the gate (a stalled disk)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def __call__(self, folder: Path, frame: pl.DataFrame) -> None:
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(30)
        write_part_atomic(folder, frame)


class FlakyDisk:
    """The real writer, failing the first ``failures`` calls for partitions matching ``part``."""

    def __init__(self, failures: int, part: str = "") -> None:
        self.failures = failures
        self.part = part
        self.calls: list[str] = []

    def __call__(self, folder: Path, frame: pl.DataFrame) -> None:
        self.calls.append(f"{folder.parent.name}/{folder.name}")
        if self.part in str(folder) and self.failures > 0:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        write_part_atomic(folder, frame)


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
    assert log.close()
    assert log.written == 40_000
    assert log.duplicates == 1
    _assert_conserved(log, tmp_path, 40_001)


def test_a_stalled_disk_drops_and_counts_and_the_queue_stays_bounded(tmp_path: Path) -> None:
    disk = GatedDisk()
    log = PredictionLog(
        tmp_path, max_queue=200, batch_size=50, flush_interval_s=0.01, write_part=disk
    )
    log.start()
    log.record(_record(-1))
    assert disk.entered.wait(5)  # the writer is now stuck on the disk
    depths = []
    accepted = 0
    for i in range(2000):
        accepted += log.record(_record(i))
        depths.append(log.depth)
    assert max(depths) == 200  # filled up to the bound, never past it
    assert accepted == 200
    assert log.dropped == 1800
    assert not log.close(timeout_s=0.2)  # cannot drain a stalled disk: says so
    assert not log.record(_record(5000))  # closed: refused and counted
    disk.gate.set()
    assert log.close()  # tries again, and now drains
    assert log.written == 201
    _assert_conserved(log, tmp_path, 2002)


def test_block_policy_applies_backpressure_then_drops_after_the_timeout(tmp_path: Path) -> None:
    disk = GatedDisk()
    log = PredictionLog(
        tmp_path,
        max_queue=5,
        batch_size=1,
        overflow="block",
        block_timeout_s=0.5,
        write_part=disk,
    )
    log.start()
    log.record(_record(-1))
    assert disk.entered.wait(5)
    for i in range(5):
        assert log.record(_record(i))
    started = time.perf_counter()
    assert not log.record(_record(5))  # full and stalled: waits, then drops
    assert time.perf_counter() - started >= 0.49
    assert log.dropped == 1

    threading.Timer(0.05, disk.gate.set).start()
    assert log.record(_record(6))  # full, but the disk comes back while it waits
    assert log.close()
    _assert_conserved(log, tmp_path, 8)


def test_close_drains_everything_refuses_later_records_and_is_idempotent(
    tmp_path: Path,
) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)  # only close makes it write
    log.start()
    for i in range(2500):
        log.record(_record(i))
    assert log.close()
    assert log.close()
    assert log.written == 2500
    assert not log.record(_record(9999))
    assert log.dropped == 1
    assert not list(tmp_path.rglob("*.tmp"))
    _assert_conserved(log, tmp_path, 2501)


def test_close_without_start_still_writes_what_was_queued(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, max_queue=100)  # never started: nothing drains the queue
    accepted = sum(log.record(_record(i)) for i in range(150))
    assert accepted == 100
    assert log.depth == 100
    assert log.close()
    assert log.depth == 0
    _assert_conserved(log, tmp_path, 150)


def test_flush_waits_for_everything_recorded_so_far(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)  # the interval alone would not write
    log.start()
    for i in range(300):
        log.record(_record(i))
    assert log.flush(timeout_s=10)
    assert _rows(tmp_path).height == 300
    log.record(_record(300))
    assert log.flush(timeout_s=10)
    assert _rows(tmp_path).height == 301
    assert log.close()
    assert log.flush()  # after close: nothing left, returns at once
    _assert_conserved(log, tmp_path, 301)


def test_batches_are_bounded_and_gathered_within_the_interval(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, batch_size=40, flush_interval_s=0.5)
    log.start()
    for i in range(100):
        log.record(_record(i))
    assert log.close()
    sizes = sorted(pl.read_parquet(p).height for p in tmp_path.rglob("*.parquet"))
    assert sizes == [20, 40, 40]  # full batches, then the remainder: no file per record


def test_hour_partitions_follow_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock(start_ms=T0 + 5)  # 22:00:00.005 UTC
    log = PredictionLog(tmp_path, clock=clock)
    log.start()
    for i in range(30):
        log.record(_record(i, ts=log.now_ms()))
        if i % 10 == 9:
            clock.advance(seconds=3600)
    log.record(_record(0, variant="shadow:challenger"))  # same request, another variant: kept
    assert log.close()
    day = dt.datetime.fromtimestamp(T0 / 1000, tz=dt.UTC)
    nxt = day + dt.timedelta(hours=2)
    expected = {
        f"date={day:%Y-%m-%d}/hour=22",
        f"date={day:%Y-%m-%d}/hour=23",
        f"date={nxt:%Y-%m-%d}/hour=00",  # across midnight
    }
    folders = {f"{p.parent.parent.name}/{p.parent.name}" for p in tmp_path.rglob("*.parquet")}
    assert folders == expected
    rows = _rows(tmp_path)
    assert rows.columns == list(SCHEMA)
    assert rows.height == 31
    assert set(rows.filter(pl.col("request_id") == "r0")["variant"]) == {
        "production",
        "shadow:challenger",
    }


def test_time_filters_select_the_window_and_prune_other_hours(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.start()
    for i in range(30):
        log.record(_record(i, ts=T0 + (i // 10) * HOUR_MS + 5 + i))
    assert log.close()
    window = read_prediction_log(
        tmp_path, since_ms=T0 + HOUR_MS, until_ms=T0 + 2 * HOUR_MS
    ).collect()
    assert sorted(window["request_id"]) == sorted(f"r{i}" for i in range(10, 20))
    assert read_prediction_log(tmp_path, since_ms=T0 + HOUR_MS + 20).collect().height == 15
    assert read_prediction_log(tmp_path, until_ms=T0 + 8).collect().height == 3
    # A damaged file in the first hour: a window that excludes it never opens it...
    first = next(tmp_path.rglob("hour=22"))
    (first / "part-0-damaged.parquet").write_bytes(b"not parquet")  # sorts first
    assert read_prediction_log(tmp_path, since_ms=T0 + HOUR_MS).collect().height == 20
    with pytest.raises(Exception, match=r"(?i)parquet|magic|footer|out of spec"):
        read_prediction_log(tmp_path).collect()  # ...while a full scan does


def test_temp_files_left_by_a_crash_are_not_read(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    log.start()
    log.record(_record(1))
    assert log.close()
    folder = next(tmp_path.rglob("hour=*"))
    (folder / ".part-abc.parquet.tmp").write_bytes(b"half a file")
    assert _rows(tmp_path).height == 1


def test_a_failed_write_is_retried_once_without_writing_any_partition_twice(
    tmp_path: Path,
) -> None:
    disk = FlakyDisk(failures=1, part="hour=23")
    log = PredictionLog(tmp_path, retry_delay_s=0.01, write_part=disk)
    log.start()
    for i in range(20):
        log.record(_record(i, ts=T0 + (i % 2) * HOUR_MS))
    assert log.close()
    assert log.errors == 1
    assert log.written == 20
    assert sum(c.endswith("hour=22") for c in disk.calls) == 1  # the good part: written once
    assert sum(c.endswith("hour=23") for c in disk.calls) == 2  # the failed one: retried once
    _assert_conserved(log, tmp_path, 20)


def test_a_disk_that_keeps_failing_drops_and_counts_and_the_writer_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_FAULT", "prediction_log.after_tmp_write:raise:ENOSPC")
    log = PredictionLog(tmp_path, retry_delay_s=0.01)
    log.start()
    for i in range(10):
        log.record(_record(i))
    assert log.flush(timeout_s=10)
    assert log.errors == 2  # the attempt and its one retry
    assert log.dropped == 10
    assert not list(tmp_path.rglob("*.parquet*"))  # no temp file left behind either
    monkeypatch.delenv("SHIPYARD_FAULT")
    for i in range(10, 15):
        assert log.record(_record(i))
    assert log.close()
    assert log.written == 5
    _assert_conserved(log, tmp_path, 15)


def test_a_malformed_record_is_dropped_alone(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval_s=30)
    log.start()
    log.record(_record(1))
    bad = PredictionRecord("bad", "churn", "one", "production", T0, 1.0, "{}", "{}", None, None)
    log.record(bad)
    log.record(_record(2))
    assert log.close()
    assert log.written == 2
    assert log.dropped == 1
    assert log.errors == 1
    assert set(_rows(tmp_path)["request_id"]) == {"r1", "r2"}


def test_an_empty_log_reads_as_an_empty_frame(tmp_path: Path) -> None:
    empty = read_prediction_log(tmp_path / "none").collect()
    assert empty.height == 0
    assert empty.columns == list(SCHEMA)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_queue": 0}, {"batch_size": 0}, {"flush_interval_s": 0}, {"overflow": "grow"}],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match="prediction log"):
        PredictionLog(tmp_path, **kwargs)


class _Rows:
    """A builder of lazy records that refuses payloads it is told to (a bug in a builder)."""

    def __init__(self, refuse: set[int]) -> None:
        self.refuse = refuse
        self.sizes: list[int] = []

    def build(self, payloads):
        self.sizes.append(len(payloads))
        if any(p in self.refuse for p in payloads):
            raise ValueError("cannot build this one")
        return [_record(p) for p in payloads]


def test_lazy_records_are_built_a_batch_at_a_time_and_a_bad_one_is_dropped_alone(
    tmp_path: Path,
) -> None:
    from shipyard.serve.prediction_log import LazyRecord

    rows = _Rows(refuse={7})
    log = PredictionLog(tmp_path, batch_size=50, flush_interval_s=0.05)
    for i in range(20):  # mixed with ready-made records, as shadows and answers may be
        entry = LazyRecord(f"r{i}", "production", i, rows) if i % 4 else _record(i)
        assert log.record(entry)
    assert log.record(LazyRecord("r7", "production", 7, rows)) is False  # duplicate key
    log.start()  # everything is queued: the writer takes it as one batch
    assert log.close()
    assert log.dropped == 1
    assert log.errors == 1
    written = set(_rows(tmp_path)["request_id"].to_list())
    assert written == {f"r{i}" for i in range(20)} - {"r7"}
    # The 15 lazy records in one call; it failed, so each was built alone to find the bad one.
    assert rows.sizes == [15] + [1] * 15
    _assert_conserved(log, tmp_path, offered=21)
