"""Buffered metric writes: cheap per call, durable in batches.

``log_metric`` appends a tuple to an in-process queue; a background thread writes the queue to
the store in one transaction when it holds ``flush_size`` values or every
``flush_interval_s``, whichever comes first. ``flush()`` (and the end of every run, and
interpreter exit) writes everything logged so far before returning. So a value is durable:
once ``flush()`` or the run's end returns; otherwise at most ``flush_interval_s`` after it was
logged, unless the process dies first (see docs/tracking.md).

If a write fails (store unreachable), the values go back to the head of the queue and the thread
retries with backoff; the next ``flush()`` raises the error if it still fails. When
``max_pending`` values are waiting, the caller writes synchronously (backpressure), so memory
stays bounded.
"""

from __future__ import annotations

import collections
import logging
import threading
from itertools import repeat, starmap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shipyard.store.metric_rows import MetricTuple
    from shipyard.store.sql import SqlStore

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 30.0


class MetricWriter:
    """Queues metric values and writes them to the store in batches from a background thread."""

    def __init__(
        self, store: SqlStore, *, flush_interval_s: float, flush_size: int, max_pending: int
    ) -> None:
        self._store = store
        self._interval_s = flush_interval_s
        self._flush_size = flush_size
        self._max_pending = max(max_pending, flush_size)
        # deque.append and popleft are atomic: the hot path takes no lock.
        self._pending: collections.deque[MetricTuple] = collections.deque()
        self._flush_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._threshold = 0  # see _full
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.last_error: Exception | None = None

    def add(self, row: MetricTuple) -> None:
        """Queue one value (the per-call path: an append and one comparison, no lock)."""
        pending = self._pending
        pending.append(row)
        if len(pending) >= self._threshold:
            self._full(len(pending))

    def add_many(self, rows: Iterable[MetricTuple]) -> None:
        """Queue many values."""
        self._pending.extend(rows)
        self._full(len(self._pending))

    def _full(self, size: int) -> None:
        """Start the thread on first use, wake it once per full batch, apply backpressure.

        ``_threshold`` is the queue length at which ``add`` next needs to come here: 0 before
        the thread runs, ``flush_size`` while it sleeps, ``max_pending`` once it has been woken
        (until it has written), so the values that arrive meanwhile cost one comparison each
        instead of another wake-up (``Event.set`` takes a lock).
        """
        if self._thread is None:
            self._start()
        if size >= self._max_pending:
            self._threshold = self._flush_size
            self.flush()
        elif size >= self._flush_size:
            self._threshold = self._max_pending
            self._wakeup.set()
        else:
            self._threshold = self._flush_size

    @property
    def pending(self) -> int:
        """Number of values logged but not yet written."""
        return len(self._pending)

    def flush(self) -> None:
        """Write every queued value now; raise if the store refuses them."""
        with self._flush_lock:
            while self._pending:
                self._write_some()

    def close(self) -> None:
        """Stop the background thread after writing everything queued."""
        self._stopping.set()
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(
                target=self._loop, name="shipyard-metric-writer", daemon=True
            )
            self._thread.start()

    def _write_some(self) -> None:
        pending = self._pending
        count = min(len(pending), self._max_pending)
        # popleft at C speed; taking the values out one by one keeps add() lock-free.
        batch = list(starmap(pending.popleft, repeat((), count)))
        try:
            self._store.log_metrics(batch)
        except Exception:
            pending.extendleft(reversed(batch))
            raise

    def _loop(self) -> None:
        backoff = self._interval_s
        while not self._stopping.is_set():
            self._wakeup.wait(backoff)
            self._wakeup.clear()
            self._threshold = self._flush_size
            if self._stopping.is_set():
                return
            try:
                self.flush()
            except Exception as e:  # kept and raised by the next explicit flush
                self.last_error = e
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                log.warning("metric write failed, will retry in %.1fs: %s", backoff, e)
            else:
                self.last_error = None
                backoff = self._interval_s
