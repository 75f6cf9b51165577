"""A workspace: one metadata store plus one artifact root, and the services on top of them.

``Workspace.open()`` reads settings (``SHIPYARD_*``, ``shipyard.yaml``), creates the embedded
store on first use and applies migrations. One workspace object per process and store is
enough; it owns the background metric writer and heartbeat threads, and at interpreter exit
it ends the runs still open and writes everything buffered.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import ArtifactNotFound, InvalidArgument
from shipyard.core.ids import new_id
from shipyard.core.settings import Settings, load_settings
from shipyard.store.artifacts import open_blob_store, safe_destination
from shipyard.store.encryption import BlobKeyStore
from shipyard.store.engine import redacted_url
from shipyard.store.entities import Artifact, Experiment, MetricPoint, Note, Run, RunStatus
from shipyard.store.filters import parse_filter, parse_order_by
from shipyard.store.sql import SqlStore
from shipyard.track import environment, signals
from shipyard.track.heartbeat import Heartbeat
from shipyard.track.run import ActiveRun
from shipyard.track.validation import (
    MAX_NOTE_LENGTH,
    check_key,
    check_metric_values,
    param_text,
    tag_text,
)
from shipyard.track.writer import MetricWriter

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.store.artifacts import BlobStore
    from shipyard.store.entities import Resources
    from shipyard.track.payloads import Payload
    from shipyard.track.records import FinishedRun

DEFAULT_EXPERIMENT = "default"
_open_workspaces: weakref.WeakSet[Workspace] = weakref.WeakSet()


class Workspace:
    """The tracking service over one metadata store and artifact root."""

    def __init__(self, settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.store = SqlStore(settings.resolved_store_url)
        self.blobs: BlobStore = open_blob_store(settings.resolved_artifact_root)
        try:
            # An encrypted workspace records its master key id (``master_keys``): the blobs
            # stay encrypted, or locked, even for a process without ``encryption.enabled``.
            if settings.encryption.enabled or BlobKeyStore(self.store).current_key_id():
                from shipyard.security.at_rest import workspace_blob_store

                self.blobs = workspace_blob_store(settings, self.blobs, self.store, clock=clock)
        except BaseException:
            self.store.close()
            raise
        tracking = settings.tracking
        self.writer = MetricWriter(
            self.store,
            flush_interval_s=tracking.flush_interval_s,
            flush_size=tracking.flush_size,
            max_pending=tracking.max_pending,
        )
        self.heartbeat = Heartbeat(self.store, clock, tracking.heartbeat_interval_s)
        self._active: dict[str, ActiveRun] = {}
        self._experiment_ids: dict[str, str] = {}  # experiments are never deleted
        self._lock = threading.Lock()
        self._closed = False
        _open_workspaces.add(self)

    @classmethod
    def open(cls, project_dir: str | Path | None = None, **overrides: Any) -> Workspace:
        """Open (creating on first use) the workspace of ``project_dir`` (default: cwd)."""
        clock = overrides.pop("clock", SYSTEM_CLOCK)
        if project_dir is not None:
            overrides["project_dir"] = Path(project_dir)
        return cls(load_settings(**overrides), clock=clock)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def describe(self) -> dict[str, str]:
        """Return where this workspace keeps its data (for ``workspace info``)."""
        return {
            "project_dir": str(self.settings.project_dir),
            "store_url": _redact(self.settings.resolved_store_url),
            "artifact_root": self.blobs.url,
        }

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self,
        name: str | None = None,
        experiment: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        parent: ActiveRun | str | None = None,
    ) -> ActiveRun:
        """Start a run; use it as a context manager so it always ends with the right status."""
        experiment_name = check_key(experiment or DEFAULT_EXPERIMENT, "experiment name")
        run_name = check_key(name, "run name") if name is not None else None
        parent_id = parent.run_id if isinstance(parent, ActiveRun) else parent
        checked_params = {
            check_key(k, "param name"): param_text(k, v) for k, v in (params or {}).items()
        }
        checked_tags = {check_key(k, "tag name"): tag_text(k, v) for k, v in (tags or {}).items()}
        now = self.clock.now_ms()
        experiment_id = self._experiment_ids.get(experiment_name)
        if experiment_id is None:
            experiment_id = self.store.get_or_create_experiment(experiment_name, now).experiment_id
            self._experiment_ids[experiment_name] = experiment_id
        run_id = new_id()
        code = (
            environment.code_version(str(self.settings.project_dir))
            if self.settings.tracking.capture_git
            else environment.CodeVersion(None, None)
        )
        self.store.create_run(
            {
                "run_id": run_id,
                "experiment_id": experiment_id,
                "parent_run_id": parent_id,
                "name": run_name or f"run-{run_id[:8]}",
                "status": RunStatus.RUNNING.value,
                "start_ms": now,
                "heartbeat_ms": now,
                "host": environment.host_name(),
                "pid": os.getpid(),
                "pid_started_ms": environment.process_started_ms(),
                "user": environment.user_name(),
                "git_commit": code.commit,
                "git_dirty": code.dirty,
                "environment": environment.process_environment(),
            },
            params=checked_params,
            tags=checked_tags,
        )
        from shipyard.track.resources import ResourceMeter  # psutil: only runs need it

        meter = ResourceMeter()
        run = ActiveRun(
            self, run_id, run_name or f"run-{run_id[:8]}", experiment_name, parent_id, meter
        )
        with self._lock:
            self._active[run_id] = run
        self.heartbeat.register(run_id, meter)
        signals.install()
        return run

    def end_run(
        self, run: ActiveRun, status: RunStatus, error: str | None, resources: Resources
    ) -> None:
        """Write the run's buffered metrics, then record how it ended (called by ActiveRun)."""
        self.heartbeat.unregister(run.run_id)
        with self._lock:
            self._active.pop(run.run_id, None)
        try:
            self.writer.flush()
        finally:
            self.store.end_run(run.run_id, status, self.clock.now_ms(), error, resources)

    def record_runs(self, parent: ActiveRun, runs: Sequence[FinishedRun]) -> None:
        """Write ended child runs of ``parent`` in one transaction (see ``track.records``).

        Everything is checked before anything is written, so a bad name writes none of them.

        Raises:
            InvalidName, InvalidArgument, InvalidMetricValue: A bad key or value (nothing
                written).
        """
        if not runs:
            return
        experiment_id = self._experiment_ids.get(parent.experiment)
        if experiment_id is None:
            experiment_id = self.store.get_experiment(parent.experiment).experiment_id
            self._experiment_ids[parent.experiment] = experiment_id
        common = {
            "experiment_id": experiment_id,
            "parent_run_id": parent.run_id,
            "host": environment.host_name(),
            "pid": os.getpid(),
            "pid_started_ms": environment.process_started_ms(),
            "user": environment.user_name(),
            "git_commit": None,
            "git_dirty": None,
            "environment": environment.process_environment(),
        }
        rows, params, tags, metrics = [], [], [], []
        for run in runs:
            name = check_key(run.name, "run name")
            end_ms = run.end_ms if run.end_ms is not None else self.clock.now_ms()
            rows.append(
                {
                    **common,
                    "run_id": run.run_id,
                    "name": name,
                    "status": run.status.value,
                    "start_ms": run.start_ms,
                    "end_ms": end_ms,
                    "heartbeat_ms": end_ms,
                    "error": run.error,
                    "wall_seconds": run.resources.wall_seconds,
                    "cpu_user_seconds": run.resources.cpu_user_seconds,
                    "cpu_system_seconds": run.resources.cpu_system_seconds,
                    "children_cpu_user_seconds": run.resources.children_cpu_user_seconds,
                    "children_cpu_system_seconds": run.resources.children_cpu_system_seconds,
                    "peak_rss_bytes": run.resources.peak_rss_bytes,
                }
            )
            params += [
                (run.run_id, check_key(k, "param name"), param_text(k, v))
                for k, v in run.params.items()
            ]
            tags += [
                (run.run_id, check_key(k, "tag name"), tag_text(k, v)) for k, v in run.tags.items()
            ]
            checked = check_metric_values(run.metrics)
            metrics += [(run.run_id, *v) for v in checked.values]
        self.store.record_runs(rows, params, tags, metrics)

    def get_run(self, run_id: str) -> Run:
        """Return a run by id or unique prefix (6+ hex characters)."""
        return self.store.get_run(run_id)

    def search_runs(
        self,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | None = None,
        order_by: Sequence[str] = (),
        limit: int | None = 100,
    ) -> list[Run]:
        """Find runs with the filter language, e.g. ``metrics.auc > 0.9 and params.model = 'lgbm'``.

        Args:
            filter: The expression (see docs/tracking.md); None matches every run.
            experiments: Only runs of these experiments.
            order_by: Keys such as ``"metrics.auc desc"``; newest first after them.
            limit: At most this many runs (None for all).
        """
        if limit is not None and limit < 0:
            raise InvalidArgument("limit must be zero or more")
        self.writer.flush()
        return self.store.search_runs(
            parse_filter(filter or ""),
            experiments=experiments,
            order_by=[parse_order_by(o) for o in order_by],
            limit=limit,
        )

    def list_experiments(self) -> list[Experiment]:
        """Return every experiment with its number of runs."""
        return self.store.list_experiments()

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Return every value logged for one metric of a run."""
        self.writer.flush()
        return self.store.metric_history(self.get_run(run_id).run_id, key)

    def add_note(self, run_id: str, text: str, author: str | None = None) -> Note:
        """Attach a note to any run, running or ended.

        Raises:
            InvalidArgument: The text is blank or longer than MAX_NOTE_LENGTH.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument("a note needs some text")
        if len(text) > MAX_NOTE_LENGTH:
            raise InvalidArgument(f"a note is limited to {MAX_NOTE_LENGTH} characters")
        return self.store.add_note(
            run_id, author or environment.user_name(), text, self.clock.now_ms()
        )

    def notes(self, run_id: str) -> list[Note]:
        """Return a run's notes, oldest first."""
        return self.store.list_notes(self.get_run(run_id).run_id)

    def active_runs(self) -> list[ActiveRun]:
        """Return the runs this process has started and not ended, oldest first."""
        with self._lock:
            return list(self._active.values())

    # -- artifacts --------------------------------------------------------------------------

    def store_payload(self, run_id: str, payload: Payload) -> Artifact:
        """Store one blob and point the run's logical name at it."""
        if payload.data is not None:
            info = self.blobs.put_bytes(payload.data)
        else:
            assert payload.path is not None
            info = self.blobs.put_file(payload.path)
        artifact = Artifact(
            run_id,
            payload.name,
            info.digest,
            info.size_bytes,
            payload.media_type,
            self.clock.now_ms(),
        )
        self.store.add_artifact(artifact)
        return artifact

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """Return a run's artifacts by logical name."""
        return self.store.list_artifacts(self.get_run(run_id).run_id)

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """Return an artifact's content, checked against its digest."""
        for artifact in self.list_artifacts(run_id):
            if artifact.name == name:
                return self.blobs.get_bytes(artifact.digest)
        raise ArtifactNotFound(
            f"run {run_id} has no artifact {name!r}; `shipyard runs show {run_id}` lists them"
        )

    def download_artifacts(self, run_id: str, destination: str | Path) -> list[Path]:
        """Write every artifact of a run under ``destination``, refusing escapes."""
        root = Path(destination)
        root.mkdir(parents=True, exist_ok=True)
        written = []
        for artifact in self.list_artifacts(run_id):
            target = safe_destination(root, artifact.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.blobs.get_bytes(artifact.digest))
            written.append(target)
        return written

    # -- lifetime ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Make every metric logged so far durable."""
        self.writer.flush()

    def close(self) -> None:
        """End this process's open runs, write buffered metrics and stop background threads."""
        if self._closed:
            return
        self._closed = True
        for run in reversed(self.active_runs()):
            if signals.was_terminated():
                run.end(RunStatus.KILLED, error="Terminated: SIGTERM")
            elif signals.uncaught_exception() is not None:
                exc = signals.uncaught_exception()
                run.end(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            else:
                run.end()
        self.heartbeat.close()
        self.writer.close()
        self.store.close()


def _redact(url: str) -> str:
    return redacted_url(url)


@atexit.register
def _close_all() -> None:
    for workspace in list(_open_workspaces):
        try:
            workspace.close()
        except Exception as e:  # exiting anyway; say what was lost
            print(f"shipyard: could not close workspace cleanly: {e}")
