"""The prediction log: every answer, written in batches to hourly Parquet partitions.

Requests only enqueue (``record`` never touches the disk); one writer thread gathers up to
``batch_size`` records, or whatever arrived within ``flush_interval_s`` of the first, and writes
them as new Parquet files (zstd) under ``date=YYYY-MM-DD/hour=HH/part-<uuid>.parquet``, one
per hour the batch touches (by each record's ``ts_ms``, UTC), with the durability protocol of
RELIABILITY.md lesson 5: temp file, fsync, rename, fsync the directory. Monitoring reads it all
back with one hive scan (``read_prediction_log``).

Bounded memory. The queue holds at most ``max_queue`` records; beyond it the overflow policy
applies: ``"drop"`` (default) refuses the record at once and counts it in ``dropped``;
``"block"`` makes the caller wait up to ``block_timeout_s`` for room (backpressure), then drops
and counts it the same way. Besides the queue, the writer holds one batch, and the duplicate
filter remembers a window of recent keys (``max(4 * max_queue, 100_000)``).

Duplicates. A key seen again within that window is not logged and is counted in
``duplicates``. The key is ``(request_id, variant)``, not the request id alone: a shadow answer
is logged under its request's id with variant ``shadow:<alias>`` (see ``logging_hooks``), so a
request has at most one row per variant and exactly one row for the variant that answered.

Write errors never stop the writer. A partition file that fails to write counts one in
``errors``; the records not yet on disk are retried once after a short pause, and if that fails
too they are dropped and counted (never written twice: partitions that succeeded are not
retried). A record that cannot be turned into a row (a wrong type) is dropped and counted alone.

Shutdown. ``close`` refuses new records (counted as dropped), waits for callers blocked in
``record``, writes everything queued, then stops the writer; a graceful server shutdown calls it
last. Invariant (RELIABILITY.md 4): ``written + dropped + duplicates`` = records offered, once
``flush`` or ``close`` has returned True.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import polars as pl

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import InvalidArgument
from shipyard.monitor.logfiles import (
    PARTITION_FORMAT,
    SCHEMA,
    read_prediction_log,
    write_part_atomic,
)
from shipyard.serve.log_records import LazyRecord, PredictionRecord, RecordBuilder

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

log = logging.getLogger("shipyard.serve")


#: How long the writer sleeps between looks at the queue while a batch fills: it wakes per
#: batch, not per record, so the serving loop is not interrupted for every answer.
_FILL_POLL_S = 0.05


#: Lazy records built per call of their builder, the writer releasing the GIL between calls.
#: A whole batch built in one go is tens of milliseconds of Python; the serving loop, woken
#: by a request meanwhile, could wait for the GIL until CPython's switch interval (5 ms)
#: forced the writer to let go. 32 records are a fraction of a millisecond (issue 17).
_BUILD_CHUNK = 32


@dataclass
class _Flush:
    """A marker in the queue: the writer sets ``done`` once everything before it is written."""

    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class PredictionLog:
    """A bounded queue drained by one writer thread into hourly Parquet files.

    Attributes:
        written: Records on disk.
        dropped: Records refused (full queue, closed log) or lost to write errors.
        duplicates: Records refused because their key was logged recently.
        errors: Failed write attempts (each failed partition file counts one).
    """

    def __init__(
        self,
        root: Path,
        *,
        max_queue: int = 10_000,
        batch_size: int = 1000,
        flush_interval_s: float = 1.0,
        overflow: Literal["drop", "block"] = "drop",
        block_timeout_s: float = 1.0,
        retry_delay_s: float = 0.5,
        clock: Clock = SYSTEM_CLOCK,
        write_part: Callable[[Path, pl.DataFrame], None] = write_part_atomic,
    ) -> None:
        """Configure the log; nothing is written until ``start``.

        Args:
            root: Folder of the hive partitions.
            max_queue: Records that may wait in memory.
            batch_size: Most records per write.
            flush_interval_s: Longest a record waits for its batch to fill.
            overflow: ``"drop"`` or ``"block"`` (wait up to ``block_timeout_s``, then drop).
            block_timeout_s: How long ``record`` may block under ``"block"``.
            retry_delay_s: Pause before the one retry of a failed write.
            clock: Source of ``now_ms`` for callers stamping records.
            write_part: Writes one partition file (a seam for other file systems and tests).

        Raises:
            InvalidArgument: A size or interval that is not positive, or an unknown policy.
        """
        if max_queue < 1 or batch_size < 1 or flush_interval_s <= 0 or block_timeout_s < 0:
            raise InvalidArgument(
                "prediction log: max_queue and batch_size must be >= 1, flush_interval_s > 0 "
                "and block_timeout_s >= 0"
            )
        if overflow not in ("drop", "block"):
            raise InvalidArgument(
                f"prediction log overflow must be drop or block, not {overflow!r}"
            )
        self.root = root
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.overflow = overflow
        self.block_timeout_s = block_timeout_s
        self.retry_delay_s = retry_delay_s
        self._clock = clock
        self._write_part = write_part
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        # Recent (request id, variant) keys, bounded: duplicates are retries of recent requests.
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max_seen = max(4 * max_queue, 100_000)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # signalled when no caller is in put()
        self._putting = 0
        self._io_lock = threading.Lock()  # one writer at a time (thread or a draining caller)
        self._thread: threading.Thread | None = None
        self._close_lock = threading.Lock()
        self._closed = False
        self._stop_sent = False
        self._drained = False
        self.written = 0
        self.dropped = 0
        self.duplicates = 0
        self.errors = 0

    @property
    def depth(self) -> int:
        """Records waiting to be written (a metric)."""
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called (new records are refused)."""
        return self._closed

    def now_ms(self) -> int:
        """Return the log's clock time, for stamping ``PredictionRecord.ts_ms``."""
        return self._clock.now_ms()

    def start(self) -> None:
        """Start the writer thread (idempotent; does nothing once closed)."""
        with self._lock:
            if self._thread is None and not self._closed:
                self.root.mkdir(parents=True, exist_ok=True)
                self._thread = threading.Thread(
                    target=self._run, name="prediction-log", daemon=True
                )
                self._thread.start()

    def record(self, entry: PredictionRecord | LazyRecord) -> bool:
        """Enqueue one record without touching the disk.

        Under ``"drop"`` this never blocks; under ``"block"`` it waits up to
        ``block_timeout_s`` for room.

        Returns:
            True if queued; False if dropped (full queue, closed log) or a duplicate, each
            counted.
        """
        key = (entry.request_id, entry.variant)
        if self.overflow == "drop":  # never waits: one hold of the lock does it all
            with self._lock:
                if self._closed:
                    self.dropped += 1
                    return False
                if key in self._seen:
                    self.duplicates += 1
                    return False
                try:
                    self._queue.put_nowait(entry)
                except queue.Full:
                    self.dropped += 1
                    return False
                self._seen[key] = None
                if len(self._seen) > self._max_seen:
                    self._seen.popitem(last=False)
                return True
        with self._lock:
            if self._closed:
                self.dropped += 1
                return False
            if key in self._seen:
                self.duplicates += 1
                return False
            self._seen[key] = None
            if len(self._seen) > self._max_seen:
                self._seen.popitem(last=False)
            self._putting += 1
        try:
            if self.overflow == "block":
                self._queue.put(entry, timeout=self.block_timeout_s)
            else:
                self._queue.put_nowait(entry)
            accepted = True
        except queue.Full:
            accepted = False
        with self._lock:
            self._putting -= 1
            if not accepted:
                self.dropped += 1
                self._seen.pop(key, None)  # never logged: a retry of it may be
            if self._putting == 0:
                self._idle.notify_all()
        return accepted

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every record queued before this call is on disk (or counted as lost).

        Without a running writer (not started, or closed) the caller writes the queue itself.

        Returns:
            False if that did not happen within ``timeout_s``.
        """
        if self._closed:  # close drains everything; a marker behind its stop would never run
            thread = self._thread
            if thread is not None:
                thread.join(timeout_s)
            return not self._writer_alive() and self._queue.empty()
        if not self._writer_alive():
            self._drain_here()
            return True
        marker = _Flush()
        deadline = time.monotonic() + timeout_s
        try:
            self._queue.put(marker, timeout=timeout_s)
        except queue.Full:
            return False
        return marker.done.wait(max(0.0, deadline - time.monotonic()))

    def close(self, timeout_s: float = 30.0) -> bool:
        """Refuse new records, write everything queued, stop the writer.

        Idempotent; a call after one that timed out tries again.

        Returns:
            True once the queue is fully drained; False if the writer was still busy after
            ``timeout_s`` (it keeps draining in the background; ``depth`` says how much is left).
        """
        deadline = time.monotonic() + timeout_s
        with self._close_lock:
            with self._lock:
                if self._drained:
                    return True
                self._closed = True
                # Callers inside put() finish first, so nothing lands behind the stop marker.
                self._idle.wait_for(lambda: self._putting == 0, timeout=timeout_s)
                thread = self._thread
            if thread is None or not thread.is_alive():
                self._drain_here()
                self._drained = True
                return True
            if not self._stop_sent:
                try:
                    self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
                except queue.Full:
                    return False
                self._stop_sent = True
            thread.join(max(0.0, deadline - time.monotonic()))
            self._drained = not thread.is_alive()
            return self._drained

    # -- the writer --------------------------------------------------------------------------

    def _writer_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[PredictionRecord | LazyRecord] = []
            markers: list[_Flush] = []
            try:
                stop = self._take(batch, markers)
                self._write(batch)
            except Exception:  # the writer must outlive any bug; nothing is lost uncounted
                log.exception("prediction log: writing a batch failed; %d rows dropped", len(batch))
                with self._lock:
                    self.errors += 1
                    self.dropped += len(batch)
            finally:
                for marker in markers:
                    marker.done.set()

    def _take(self, batch: list[PredictionRecord | LazyRecord], markers: list[_Flush]) -> bool:
        """Fill ``batch`` (until full, a marker, or the interval ends); True at the stop marker.

        After the first record the writer does not block on the queue (which would wake it
        for every record put); it takes what is there and sleeps ``_FILL_POLL_S`` between looks.
        """
        item: object = self._queue.get()
        deadline = time.monotonic() + self.flush_interval_s
        while True:
            if item is not None:
                if item is _STOP:
                    return True
                if isinstance(item, _Flush):
                    markers.append(item)
                    return False
                assert isinstance(item, PredictionRecord | LazyRecord)
                batch.append(item)
                if len(batch) >= self.batch_size:
                    return False
            try:
                item = self._queue.get_nowait()
                continue
            except queue.Empty:
                item = None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, _FILL_POLL_S))

    def _drain_here(self) -> None:
        """Write whatever is queued, in the calling thread (no writer is running)."""
        while True:
            batch: list[PredictionRecord | LazyRecord] = []
            with contextlib.suppress(queue.Empty):
                while len(batch) < self.batch_size:
                    item = self._queue.get_nowait()
                    if isinstance(item, PredictionRecord | LazyRecord):
                        batch.append(item)
                    elif isinstance(item, _Flush):
                        item.done.set()
            if not batch:
                return
            self._write(batch)

    def _built(self, batch: list[PredictionRecord | LazyRecord]) -> list[PredictionRecord]:
        """The batch's records, lazy ones built a builder at a time; failures dropped, counted."""
        out: list[PredictionRecord | None] = [
            item if isinstance(item, PredictionRecord) else None for item in batch
        ]
        groups: dict[int, list[tuple[int, LazyRecord]]] = {}
        for i, item in enumerate(batch):
            if isinstance(item, LazyRecord):
                groups.setdefault(id(item.builder), []).append((i, item))
        for whole in groups.values():
            for start in range(0, len(whole), _BUILD_CHUNK):
                group = whole[start : start + _BUILD_CHUNK]
                lazy = [item for _, item in group]
                try:
                    built: list[PredictionRecord | None] = list(
                        lazy[0].builder.build([item.payload for item in lazy])
                    )
                except Exception:  # find the payloads at fault instead of losing the batch
                    built = [self._build_one(item) for item in lazy]
                for (i, _), record in zip(group, built, strict=True):
                    out[i] = record
                time.sleep(0)  # hand the GIL to the serving loop if it is waiting
        return [record for record in out if record is not None]

    def _build_one(self, item: LazyRecord) -> PredictionRecord | None:
        try:
            return item.builder.build([item.payload])[0]
        except Exception:
            log.exception("prediction log: building the record of %s failed", item.request_id)
            with self._lock:
                self.errors += 1
                self.dropped += 1
            return None

    def _write(self, batch: list[PredictionRecord | LazyRecord]) -> None:
        built = self._built(batch)
        if not built:
            return
        with self._io_lock:
            frame = self._frame(built)
            parts = frame.with_columns(
                pl.from_epoch("ts_ms", time_unit="ms").dt.strftime(PARTITION_FORMAT).alias("_part")
            ).partition_by("_part", as_dict=True, include_key=False)
            pending = {str(key[0]): rows for key, rows in parts.items()}
            for attempt in range(2):
                if attempt:
                    time.sleep(self.retry_delay_s)
                for part, rows in list(pending.items()):
                    try:
                        self._write_part(self.root / part, rows)
                    except Exception as e:  # any failure: count it, retry once, then drop
                        log.warning("prediction log: writing %s failed: %s", part, e)
                        with self._lock:
                            self.errors += 1
                        continue
                    del pending[part]
                    with self._lock:
                        self.written += rows.height
                if not pending:
                    return
            lost = sum(rows.height for rows in pending.values())
            log.error("prediction log: %d rows dropped after a failed retry", lost)
            with self._lock:
                self.dropped += lost

    def _frame(self, batch: list[PredictionRecord]) -> pl.DataFrame:
        """The batch as a frame; records that do not fit the schema are dropped and counted."""
        try:
            # Column by column: built from rows, Polars spreads the conversion of Python
            # values over its thread pool, whose threads then queue for the GIL behind the
            # serving loop (seen stalling the loop for up to 0.9 s per batch; issue 17).
            columns = dict(zip(SCHEMA, map(list, zip(*batch, strict=True)), strict=True))
            return pl.DataFrame(columns, schema=SCHEMA)
        except Exception:  # find the offending records instead of losing the batch
            good = []
            for row in (r._asdict() for r in batch):
                try:
                    pl.DataFrame([row], schema=SCHEMA, orient="row")
                except Exception:
                    with self._lock:
                        self.errors += 1
                        self.dropped += 1
                    continue
                good.append(row)
            log.error("prediction log: %d malformed records dropped", len(batch) - len(good))
            return pl.DataFrame(good, schema=SCHEMA, orient="row")


__all__ = [
    "SCHEMA",
    "LazyRecord",
    "PredictionLog",
    "PredictionRecord",
    "RecordBuilder",
    "read_prediction_log",
    "write_part_atomic",
]
