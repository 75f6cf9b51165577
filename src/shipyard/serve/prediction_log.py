"""The prediction log: every answer, written in batches to hourly Parquet partitions.

Requests only enqueue (``record`` never touches the disk); a writer thread takes up to
``batch_size`` records at a time and writes each batch as a new Parquet file under
``date=YYYY-MM-DD/hour=HH/`` (temp file, fsync, rename), readable by monitoring with one hive
scan. The queue is bounded: when it is full a record is dropped and counted (``overflow="drop"``)
or the caller waits up to ``block_timeout_s`` first (``"block"``) — memory never grows without
bound. ``close`` writes everything queued before returning, which is what a graceful shutdown
calls last. Invariant: records written + dropped + duplicates = records offered.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import polars as pl

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA = {
    "request_id": pl.String,
    "model": pl.String,
    "version": pl.Int64,
    "variant": pl.String,
    "ts_ms": pl.Int64,
    "latency_ms": pl.Float64,
    "inputs_json": pl.String,
    "outputs_json": pl.String,
    "prediction": pl.String,
    "probability": pl.Float64,
    "status": pl.Int64,
}


@dataclass(frozen=True)
class PredictionRecord:
    """One answered request (or one shadow answer, variant ``shadow:<alias>``)."""

    request_id: str
    model: str
    version: int
    variant: str
    ts_ms: int
    latency_ms: float
    inputs_json: str
    outputs_json: str
    prediction: str | None
    probability: float | None
    status: int = 200


_STOP = object()


class PredictionLog:
    """A bounded queue drained by one writer thread into hourly Parquet files."""

    def __init__(
        self,
        root: Path,
        *,
        max_queue: int = 10_000,
        batch_size: int = 1000,
        flush_interval_s: float = 1.0,
        overflow: Literal["drop", "block"] = "drop",
        block_timeout_s: float = 1.0,
    ) -> None:
        self.root = root
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.overflow = overflow
        self.block_timeout_s = block_timeout_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        # Recent (request id, variant) keys, bounded: duplicates are retries of recent requests.
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max_seen = max(4 * max_queue, 100_000)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.duplicates = 0
        self.errors = 0

    @property
    def depth(self) -> int:
        """Records waiting to be written (a metric)."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self._thread is None and not self._closed:
                self.root.mkdir(parents=True, exist_ok=True)
                self._thread = threading.Thread(
                    target=self._run, name="prediction-log", daemon=True
                )
                self._thread.start()

    def record(self, entry: PredictionRecord) -> bool:
        """Enqueue one record; False if it was dropped (full queue) or a duplicate."""
        key = (entry.request_id, entry.variant)
        with self._lock:
            if key in self._seen:
                self.duplicates += 1
                return False
            self._seen[key] = None
            if len(self._seen) > self._max_seen:
                self._seen.popitem(last=False)
        try:
            if self.overflow == "block":
                self._queue.put(entry, timeout=self.block_timeout_s)
            else:
                self._queue.put_nowait(entry)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self._seen.pop(key, None)
            return False
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the writer (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)  # blocks while full: the writer is draining
        thread.join(timeout_s)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[PredictionRecord] = []
            try:
                item = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                continue
            while True:
                if item is _STOP:
                    stop = True
                    break
                assert isinstance(item, PredictionRecord)
                batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._write(batch)

    def _write(self, batch: list[PredictionRecord]) -> None:
        frame = pl.DataFrame([asdict(r) for r in batch], schema=SCHEMA)
        hours = frame.with_columns(
            pl.from_epoch("ts_ms", time_unit="ms")
            .dt.strftime("date=%Y-%m-%d/hour=%H")
            .alias("_part")
        )
        for attempt in range(2):
            try:
                for (part,), rows in hours.group_by("_part"):
                    _write_atomic(self.root / str(part), rows.drop("_part"))
                with self._lock:
                    self.written += len(batch)
                return
            except OSError:
                if attempt == 1:
                    with self._lock:
                        self.errors += 1
                        self.dropped += len(batch)


def _write_atomic(folder: Path, frame: pl.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = folder / f".{name}.tmp"
    frame.write_parquet(tmp, compression="zstd")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(folder / name)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_prediction_log(
    root: Path, *, since_ms: int | None = None, until_ms: int | None = None
) -> pl.LazyFrame:
    """All logged predictions under ``root`` (hive partitions), optionally within a time range."""
    if not any(root.glob("date=*/hour=*/*.parquet")):
        return pl.DataFrame(schema=SCHEMA).lazy()
    lf = pl.scan_parquet(root / "**" / "*.parquet", hive_partitioning=True)
    if since_ms is not None:
        day = dt.datetime.fromtimestamp(since_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")
        lf = lf.filter(pl.col("date").cast(pl.String) >= day, pl.col("ts_ms") >= since_ms)
    if until_ms is not None:
        lf = lf.filter(pl.col("ts_ms") < until_ms)
    return lf.select(list(SCHEMA))
