"""Tuning trials as child runs, written in batches instead of one round trip after another.

Each trial becomes a ``FinishedRun`` in memory (``track.records``): its params, per-fold
scores, CV mean and spread, latency, duration, state and resources. ``TrialRecorder`` writes
them to the store ``batch_size`` trials at a time, or once ``interval_s`` has passed since the
last write, from the study's after-trial callback (never inside the objective, so a store that
fails stops the search with its error instead of failing trials one by one), and whatever is
left when the search ends, however it ends. Optuna's own study stays in memory throughout.

So a trial's child run appears in the store within ``interval_s`` of the trial ending (or
when the search ends), and a process killed mid-search loses the record of at most the
trials since the last write. The next run of the same training resumes the search from the
trials written (``train.resume``).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from shipyard.core import faults
from shipyard.track.records import FinishedRun, RunClock

if TYPE_CHECKING:
    from shipyard.store.entities import RunStatus
    from shipyard.track.run import ActiveRun

BATCH_SIZE = 50
INTERVAL_S = 2.0


class TrialRun:
    """One trial's child run while the trial runs: what to record, and its clock."""

    __slots__ = ("_clock", "_now_ms", "record")

    def __init__(self, parent: ActiveRun, number: int, params: dict[str, object]) -> None:
        self._now_ms = parent.workspace.clock.now_ms
        now = self._now_ms()
        self._clock = RunClock(now)
        self.record = FinishedRun(
            name=f"trial-{number}", start_ms=now, params=dict(params), tags={"kind": "trial"}
        )

    @property
    def run_id(self) -> str:
        """The id the child run will have in the store."""
        return self.record.run_id

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        """Keep one metric value (written with the run)."""
        self.record.metrics.append((key, float(value), step, self._now_ms()))

    def end(self, status: RunStatus, error: str | None = None) -> FinishedRun:
        """Close the record: status, error, end time and resources."""
        record = self.record
        record.status = status
        record.error = error
        record.end_ms = self._now_ms()
        record.resources = self._clock.resources()
        return record


class TrialRecorder:
    """Collects ended trial runs of one parent run and writes them in batches."""

    def __init__(
        self, parent: ActiveRun, *, batch_size: int = BATCH_SIZE, interval_s: float = INTERVAL_S
    ) -> None:
        self.parent = parent
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._pending: list[FinishedRun] = []
        self._lock = threading.Lock()  # trials may end side by side (n_jobs > 1)
        self._last_write = time.monotonic()

    def start(self, number: int, params: dict[str, object]) -> TrialRun:
        """Begin recording trial ``number``."""
        return TrialRun(self.parent, number, params)

    def add(self, record: FinishedRun) -> None:
        """Queue an ended trial run (cheap: written later by ``maybe_write`` or ``write``)."""
        with self._lock:
            self._pending.append(record)

    def maybe_write(self) -> None:
        """Write the queued runs if there are enough of them or they have waited long enough."""
        with self._lock:
            due = len(self._pending) >= self._batch_size or (
                self._pending and time.monotonic() - self._last_write >= self._interval_s
            )
        if due:
            self.write()

    def write(self) -> None:
        """Write every queued run now, in one transaction."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_write = time.monotonic()
        if batch:
            try:
                self.parent.workspace.record_runs(self.parent, batch)
            except BaseException:
                with self._lock:  # not lost: the next write tries them again
                    self._pending[:0] = batch
                raise
            faults.hit("trials.after_write")  # tests kill the driver here, then resume
