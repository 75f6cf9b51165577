"""``ActiveRun``: the handle users log through while their code runs.

A run ends exactly once, as ``finished`` (normal exit), ``failed`` (an exception, recorded),
or ``killed`` (KeyboardInterrupt or SIGTERM). Used as a context manager it ends itself; a run
left open is ended at interpreter exit; a run whose process died is found by ``runs gc``.
"""

from __future__ import annotations

import datetime as dt
import threading
import traceback
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidArgument, RunNotActive
from shipyard.store.entities import Artifact, Note, Run, RunStatus
from shipyard.track import signals
from shipyard.track.payloads import payloads_for
from shipyard.track.validation import (
    KNOWN_KEYS,
    check_key,
    check_metric_value,
    check_metric_values,
    check_step,
    check_timestamp_ms,
    param_text,
    tag_text,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from types import TracebackType

    from shipyard.track.resources import ResourceMeter
    from shipyard.track.workspace import Workspace

_MAX_ERROR_CHARS = 20_000


class ActiveRun:
    """A run in progress. Create it with ``shipyard.start_run`` or ``ActiveRun.child``."""

    def __init__(
        self,
        workspace: Workspace,
        run_id: str,
        name: str,
        experiment: str,
        parent_run_id: str | None,
        meter: ResourceMeter,
    ) -> None:
        self.workspace = workspace
        self.run_id = run_id
        self.name = name
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self._meter = meter
        self._writer = workspace.writer
        self._add = workspace.writer.add
        self._clock = workspace.clock
        self._next_step: dict[str, int] = {}
        self._ended = False
        self._end_lock = threading.Lock()
        self.status = RunStatus.RUNNING

    def __repr__(self) -> str:
        return f"ActiveRun(run_id={self.run_id!r}, name={self.name!r}, status={self.status})"

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end()
        elif isinstance(exc, KeyboardInterrupt | signals.Terminated):
            self.end(RunStatus.KILLED, error=f"{type(exc).__name__}: interrupted")
        elif isinstance(exc, SystemExit) and exc.code in (0, None):
            self.end()
        else:
            formatted = "".join(traceback.format_exception(exc_type, exc, tb))
            self.end(RunStatus.FAILED, error=formatted[-_MAX_ERROR_CHARS:])

    # -- logging ----------------------------------------------------------------------------

    def log_metric(
        self,
        key: str,
        value: float,
        step: int | None = None,
        timestamp: int | float | dt.datetime | None = None,
    ) -> None:
        """Log one value of a metric; cheap, buffered (see ``flush`` for durability).

        Args:
            key: Metric name, e.g. ``"val/auc"``.
            value: A real number; NaN and infinities are kept as such.
            step: Position in the metric's history; defaults to one past the last step
                logged for this key in this run (0 first).
            timestamp: When the value was observed: epoch milliseconds or a datetime;
                defaults to now.

        Raises:
            InvalidMetricValue: ``value`` is not a real number.
            InvalidName: ``key`` is not a valid name.
            RunNotActive: The run has ended.
        """
        # The per-call path (issue 17: within 1.5x of a bare executemany per value): the common
        # case is tested by exact type and a set lookup; the full checks run only otherwise.
        if self._ended:
            raise RunNotActive(f"run {self.run_id} has ended; start a new run to log more")
        if type(key) is not str or key not in KNOWN_KEYS:
            key = check_key(key, "metric name")
        if type(value) is not float:
            value = check_metric_value(key, value)
        if step is None:
            step = self._next_step.get(key, 0)
        elif type(step) is not int:
            step = check_step(step)
        self._next_step[key] = step + 1
        if timestamp is None:
            timestamp = self._clock.now_ms()
        elif type(timestamp) is not int or timestamp < 0:
            timestamp = _to_epoch_ms(timestamp)
        self._add((self.run_id, key, value, step, timestamp))

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int | None = None,
        timestamp: int | float | dt.datetime | None = None,
    ) -> None:
        """Log several metrics at the same step (buffered, like ``log_metric``)."""
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=timestamp)

    def log_batch(self, metrics: Iterable[Sequence[object]]) -> int:
        """Write many ``(key, value, step, timestamp_ms)`` values now, in one transaction.

        Unlike ``log_metric`` this is synchronous: the values are durable when it returns.
        Every value is checked before anything is written, so a bad one writes none.

        Returns:
            The number of values written.
        """
        self._require_active()
        checked = check_metric_values(metrics)
        self.workspace.store.log_run_metrics(self.run_id, checked.values, checked.latest)
        next_step = self._next_step
        for key, _, step, _ in checked.latest:
            if step >= next_step.get(key, 0):
                next_step[key] = step + 1
        return len(checked.values)

    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter (write-once: the same key with another value is refused)."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record several parameters at once.

        Raises:
            ParamConflict: A key was already logged with a different value.
        """
        self._require_active()
        checked = {check_key(k, "param name"): param_text(k, v) for k, v in params.items()}
        self.workspace.store.log_params(self.run_id, checked)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag; tags may be changed later (unlike params)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags at once."""
        checked = {check_key(k, "tag name"): tag_text(k, v) for k, v in tags.items()}
        self.workspace.store.set_tags(self.run_id, checked)

    def add_note(self, text: str, author: str | None = None) -> Note:
        """Attach a free-text note (Markdown welcome) for whoever reads this run later."""
        return self.workspace.add_note(self.run_id, text, author)

    def log_artifact(self, obj: Any, name: str | None = None) -> list[Artifact]:
        """Store a file, a folder, bytes, or a data frame (as Parquet) with this run.

        Blobs are content-addressed and deduplicated; ``name`` is the logical name in the run
        (defaults to the file or folder name). Logging a name again points it at the new content.

        Returns:
            One entry per stored file.
        """
        self._require_active()
        stored = []
        for payload in payloads_for(obj, name):
            stored.append(self.workspace.store_payload(self.run_id, payload))
        return stored

    # -- structure and life -----------------------------------------------------------------

    def child(
        self,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> ActiveRun:
        """Start a child run (a fold, a trial) in the same experiment."""
        self._require_active()
        return self.workspace.start_run(
            name=name, experiment=self.experiment, params=params, tags=tags, parent=self
        )

    def flush(self) -> None:
        """Make every value logged so far durable before returning."""
        self._writer.flush()

    def end(self, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> None:
        """End the run (idempotent: only the first call counts)."""
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
        self.status = status
        self.workspace.end_run(self, status, error, self._meter.finish())

    @property
    def info(self) -> Run:
        """The run as stored now (params, tags, latest metrics included)."""
        self._writer.flush()
        return self.workspace.get_run(self.run_id)

    def _require_active(self) -> None:
        if self._ended:
            raise RunNotActive(f"run {self.run_id} has ended; start a new run to log more")


def _to_epoch_ms(timestamp: int | float | dt.datetime) -> int:
    if isinstance(timestamp, dt.datetime):
        if timestamp.tzinfo is None:
            raise InvalidArgument("timestamp datetimes must be timezone-aware (e.g. UTC)")
        return round(timestamp.timestamp() * 1000)
    return check_timestamp_ms(timestamp)
