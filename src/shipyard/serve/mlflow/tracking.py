"""Experiments, runs, params, tags and metrics of the MLflow API, over a Shipyard workspace.

A run created here is an ordinary Shipyard run: its row, params and tags are written at once;
metric values go through the workspace's buffered ``MetricWriter`` (one append per value, one
transaction per batch), and every read that could see them (``runs/get``, ``runs/search``,
``metrics/get-history``) flushes the writer first, so the client reads its own writes. A run
belongs to the server process while it is open: it is registered with the workspace heartbeat
under the server's host and pid, so ``shipyard runs gc`` leaves it alone while the server
lives and ends it if the server dies with the run still open.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ExperimentNotFound, RunNotActive
from shipyard.core.ids import new_id
from shipyard.security.permissions import Action
from shipyard.serve.mlflow import wire
from shipyard.serve.mlflow.errors import MlflowError, invalid, unsupported
from shipyard.serve.mlflow.filters import translate
from shipyard.store import run_edits
from shipyard.store.entities import Resources, RunStatus
from shipyard.store.filters import parse_filter, parse_order_by
from shipyard.track import environment
from shipyard.track.validation import check_key, check_metric_value, param_text, tag_text

if TYPE_CHECKING:
    from shipyard.security.identities import Identity
    from shipyard.serve.auth import ServerAuth
    from shipyard.serve.mlflow.wire import Fields
    from shipyard.store.entities import Experiment, Run
    from shipyard.track.workspace import Workspace

DEFAULT_EXPERIMENT = "default"
MAX_RESULTS = 50_000
#: MLflow's own limits on one ``log-batch`` request.
BATCH_LIMITS = {"metrics": 1000, "params": 100, "tags": 100}
_HISTORY_PAGE = 25_000


def page_token(offset: int) -> str:
    """An opaque token for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def page_offset(token: str | None) -> int:
    """The offset a token from ``page_token`` names (0 for none)."""
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise invalid(f"invalid page_token {token[:40]!r}") from e
    if offset < 0:
        raise invalid(f"invalid page_token {token[:40]!r}")
    return offset


class TrackingService:
    """The tracking half of the MLflow API on one workspace (see the module docstring)."""

    def __init__(self, workspace: Workspace, auth: ServerAuth) -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.engine = workspace.store.engine
        self.auth = auth
        self._default_id: str | None = None
        self._open: set[str] = set()  # runs seen running here: logging needs no lookup
        self._lock = threading.Lock()

    # -- experiments ------------------------------------------------------------------------

    def default_id(self) -> str:
        """The Shipyard id of the ``default`` experiment (MLflow's ``"0"``), created on demand."""
        if self._default_id is None:
            now = self.workspace.clock.now_ms()
            found = self.store.get_or_create_experiment(DEFAULT_EXPERIMENT, now)
            self._default_id = found.experiment_id
        return self._default_id

    def experiment(self, experiment_id: str) -> Experiment:
        """The experiment an MLflow id names (``"0"`` is ``default``)."""
        if experiment_id == wire.DEFAULT_EXPERIMENT_ID:
            experiment_id = self.default_id()
        return run_edits.experiment_by_id(self.engine, experiment_id)

    def mlflow_id(self, experiment_id: str) -> str:
        """The id MLflow sees for a Shipyard experiment id."""
        default = self.default_id()
        return wire.DEFAULT_EXPERIMENT_ID if experiment_id == default else experiment_id

    def _find(self, name: str) -> Experiment | None:
        try:
            return self.store.get_experiment(name)
        except ExperimentNotFound:
            return None

    def _experiment_json(self, experiment: Experiment) -> dict[str, Any]:
        return wire.experiment_json(experiment, default_id=self.default_id())

    def create_experiment(self, fields: Fields, identity: Identity) -> dict[str, Any]:
        """``experiments/create``: a new experiment (409 when the name is taken)."""
        name = check_key(fields.text("name"), "experiment name")
        if fields.get("artifact_location"):
            raise invalid("Shipyard keeps artifacts in its own store; omit artifact_location")
        if self.store._find_experiment(name) is not None:
            raise MlflowError(400, "RESOURCE_ALREADY_EXISTS", f"experiment {name!r} already exists")
        created = self.store.get_or_create_experiment(name, self.workspace.clock.now_ms())
        self.auth.record(identity, Action.RUNS_WRITE, f"experiment:{name}", detail={"op": "create"})
        return {"experiment_id": self.mlflow_id(created.experiment_id)}

    def get_experiment(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``experiments/get``."""
        return {"experiment": self._experiment_json(self.experiment(fields.text("experiment_id")))}

    def get_experiment_by_name(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``experiments/get-by-name`` (404 ``RESOURCE_DOES_NOT_EXIST`` when absent)."""
        name = fields.text("experiment_name")
        if name == DEFAULT_EXPERIMENT:
            self.default_id()
        found = self._find(name)
        if found is None:
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"no experiment named {name!r}")
        return {"experiment": self._experiment_json(found)}

    def search_experiments(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``experiments/search``: all, or those whose name matches ``name = / LIKE '...'``."""
        self.default_id()
        if fields.get("view_type") == "DELETED_ONLY":
            return {"experiments": []}  # nor any experiment
        experiments = self.store.list_experiments()
        text = fields.optional_text("filter")
        if text:
            _name_matches(text, "")  # a bad filter is refused whatever there is to match
            experiments = [e for e in experiments if _name_matches(text, e.name)]
        if fields.strings("order_by"):
            key = fields.strings("order_by")[0].split()
            descending = len(key) > 1 and key[1].lower() == "desc"
            if key[0] in ("name", "attributes.name"):
                experiments.sort(key=lambda e: e.name, reverse=descending)
            else:
                experiments.sort(key=lambda e: e.created_ms, reverse=descending)
        offset = page_offset(fields.optional_text("page_token"))
        limit = _max_results(fields, 1000)
        page = experiments[offset : offset + limit]
        out: dict[str, Any] = {"experiments": [self._experiment_json(e) for e in page]}
        if offset + limit < len(experiments):
            out["next_page_token"] = page_token(offset + limit)
        return out

    def update_experiment(self, fields: Fields, identity: Identity) -> dict[str, Any]:
        """``experiments/update``: rename (audited)."""
        experiment = self.experiment(fields.text("experiment_id"))
        new_name = check_key(fields.text("new_name"), "experiment name")
        run_edits.rename_experiment(self.engine, experiment.experiment_id, new_name)
        self.workspace._experiment_ids.pop(experiment.name, None)
        self.auth.record(
            identity,
            Action.RUNS_WRITE,
            f"experiment:{experiment.name}",
            detail={"op": "rename", "to": new_name},
        )
        return {}

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, fields: Fields, identity: Identity) -> dict[str, Any]:
        """``runs/create``: a running Shipyard run in the experiment named by id."""
        experiment = self.experiment(fields.text("experiment_id", default="0"))
        tags = {
            check_key(t.text("key"), "tag name"): tag_text(t.text("key"), t.get("value") or "")
            for t in fields.objects("tags")
        }
        name = fields.optional_text("run_name") or tags.get("mlflow.runName")
        run_id = new_id()
        name = check_key(name, "run name") if name else f"run-{run_id[:8]}"
        start = fields.integer("start_time", default=self.workspace.clock.now_ms())
        self.store.create_run(
            {
                "run_id": run_id,
                "experiment_id": experiment.experiment_id,
                "parent_run_id": self._parent(tags.get("mlflow.parentRunId")),
                "name": name,
                "status": RunStatus.RUNNING.value,
                "start_ms": start,
                "heartbeat_ms": self.workspace.clock.now_ms(),
                "host": environment.host_name(),
                "pid": os.getpid(),
                "pid_started_ms": environment.process_started_ms(),
                "user": identity.name,
                "git_commit": tags.get("mlflow.source.git.commit"),
                "git_dirty": None,
                "environment": {"client": "mlflow", "source": identity.source},
            },
            tags=tags,
        )
        from shipyard.track.resources import ResourceMeter

        self.workspace.heartbeat.register(run_id, ResourceMeter())
        with self._lock:
            self._open.add(run_id)
        return {"run": self._run_json(self._load(run_id))}

    def _parent(self, parent: str | None) -> str | None:
        if parent is None:
            return None
        if not self.store.get_runs([parent]):
            raise invalid(f"parent run {parent!r} does not exist")
        return parent

    def update_run(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/update``: end the run (FINISHED/FAILED/KILLED) and/or rename it."""
        run_id = self._run_id(fields)
        name = fields.optional_text("run_name")
        if name:
            run_edits.rename_run(self.engine, run_id, check_key(name, "run name"))
        status_text = fields.optional_text("status")
        if status_text is not None:
            status = wire.STATUS_IN.get(status_text.upper())
            if status is None:
                raise invalid(f"unknown run status {status_text!r}")
            if status.is_final:
                self._end(run_id, status, fields.integer("end_time", default=0) or None)
        return {"run_info": self._run_json(self._load(run_id))["info"]}

    def _end(self, run_id: str, status: RunStatus, end_ms: int | None) -> None:
        with self._lock:
            self._open.discard(run_id)
        self.workspace.heartbeat.unregister(run_id)
        try:
            self.workspace.writer.flush()
        finally:
            self.store.end_run(
                run_id, status, end_ms or self.workspace.clock.now_ms(), None, Resources()
            )

    def get_run(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/get``: the run with its latest metrics (buffered values included)."""
        self.workspace.writer.flush()
        return {"run": self._run_json(self._load(self._run_id(fields)))}

    def search_runs(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/search``: MLflow's filter and order, ``max_results`` and ``page_token``."""
        names = [self.experiment(i).name for i in fields.strings("experiment_ids")]
        if fields.get("run_view_type") == "DELETED_ONLY":
            return {"runs": []}  # Shipyard deletes no run softly
        where = parse_filter(translate(fields.optional_text("filter") or ""))
        order = [parse_order_by(translate(o)) for o in fields.strings("order_by")]
        offset = page_offset(fields.optional_text("page_token"))
        limit = _max_results(fields, 1000)
        self.workspace.writer.flush()
        runs = self.store.search_runs(
            where, experiments=names or None, order_by=order, limit=offset + limit + 1
        )
        page = runs[offset : offset + limit]
        latest = run_edits.latest_points(self.engine, [r.run_id for r in page])
        out: dict[str, Any] = {"runs": [self._run_json(r, latest[r.run_id]) for r in page]}
        if len(runs) > offset + limit:
            out["next_page_token"] = page_token(offset + limit)
        return out

    def _load(self, run_id: str) -> Run:
        found = self.store.get_runs([run_id])
        if not found:
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id!r} not found")
        return found[0]

    def _run_json(
        self, run: Run, latest: dict[str, tuple[float, int, int]] | None = None
    ) -> dict[str, Any]:
        if latest is None:
            latest = run_edits.latest_points(self.engine, [run.run_id])[run.run_id]
        return wire.run_json(run, latest, experiment_id=self.mlflow_id(run.experiment_id))

    def _run_id(self, fields: Fields) -> str:
        run_id = fields.optional_text("run_id") or fields.text("run_uuid")
        if len(run_id) != 32 or not all(c in "0123456789abcdef" for c in run_id):
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id[:64]!r} not found")
        return run_id

    def _running(self, fields: Fields) -> str:
        """The id of a run that exists and is still running (remembered once seen)."""
        run_id = self._run_id(fields)
        if run_id in self._open:
            return run_id
        state = run_edits.run_state(self.engine, run_id)
        if state is None:
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id!r} not found")
        if state != RunStatus.RUNNING.value:
            raise RunNotActive(f"run {run_id} has {state}; start a new run to log more")
        with self._lock:
            self._open.add(run_id)
        return run_id

    # -- logging ----------------------------------------------------------------------------

    def log_metric(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/log-metric``: one value, queued on the buffered writer."""
        run_id = self._running(fields)
        self.workspace.writer.add((run_id, *_metric(fields)))
        return {}

    def log_param(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/log-parameter``: write-once, like MLflow's."""
        run_id = self._running(fields)
        key = check_key(fields.text("key"), "param name")
        self.store.log_params(run_id, {key: param_text(key, fields.get("value") or "")})
        return {}

    def set_tag(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/set-tag``; ``mlflow.runName`` also renames the run, as in MLflow."""
        run_id = self._run_id(fields)
        key = check_key(fields.text("key"), "tag name")
        value = tag_text(key, fields.get("value") or "")
        self.store.set_tags(run_id, {key: value})
        if key == "mlflow.runName" and value:
            run_edits.rename_run(self.engine, run_id, check_key(value, "run name"))
        return {}

    def delete_tag(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/delete-tag`` (404 when the run has no such tag)."""
        run_id = self._run_id(fields)
        key = fields.text("key")
        self._load(run_id)
        if not run_edits.delete_tag(self.engine, run_id, key):
            raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"run {run_id} has no tag {key!r}")
        return {}

    def log_batch(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/log-batch``: everything checked before anything is written."""
        run_id = self._running(fields)
        parts = {kind: fields.objects(kind) for kind in BATCH_LIMITS}
        for kind, items in parts.items():
            if len(items) > BATCH_LIMITS[kind]:
                raise invalid(
                    f"a batch holds at most {BATCH_LIMITS[kind]} {kind}, got {len(items)}"
                )
        metrics = [(run_id, *_metric(m)) for m in parts["metrics"]]
        params = {}
        for p in parts["params"]:
            key = check_key(p.text("key"), "param name")
            params[key] = param_text(key, p.get("value") or "")
        tags = {}
        for t in parts["tags"]:
            key = check_key(t.text("key"), "tag name")
            tags[key] = tag_text(key, t.get("value") or "")
        self.store.log_params(run_id, params)
        self.store.set_tags(run_id, tags)
        if metrics:
            self.workspace.writer.add_many(metrics)
        return {}

    def log_inputs(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``runs/log-inputs``: nothing to record is fine; datasets are not supported."""
        self._running(fields)
        if fields.objects("datasets") or fields.objects("models"):
            raise unsupported(
                "logging dataset inputs", "register the data with `shipyard data` instead"
            )
        return {}

    def metric_history(self, fields: Fields, _: Identity) -> dict[str, Any]:
        """``metrics/get-history``: every value of one metric, buffered ones included."""
        run_id = self._run_id(fields)
        key = fields.text("metric_key")
        self.workspace.writer.flush()
        self._load(run_id)
        points = self.store.metric_history(run_id, key)
        offset = page_offset(fields.optional_text("page_token"))
        limit = _max_results(fields, _HISTORY_PAGE) if fields.get("max_results") else len(points)
        page = points[offset : offset + limit]
        out: dict[str, Any] = {"metrics": [wire.metric_json(p) for p in page]}
        if offset + limit < len(points):
            out["next_page_token"] = page_token(offset + limit)
        return out


def _metric(fields: Fields) -> tuple[str, float, int, int]:
    key = check_key(fields.text("key"), "metric name")
    value = check_metric_value(key, fields.number("value"))
    step = fields.integer("step", default=0)
    timestamp = fields.integer("timestamp")
    if timestamp < 0:
        raise invalid("timestamp must be epoch milliseconds, zero or more")
    return key, value, step, timestamp


def _max_results(fields: Fields, default: int) -> int:
    limit = fields.integer("max_results", default=default)
    if not 0 < limit <= MAX_RESULTS:
        raise invalid(f"max_results must be 1 to {MAX_RESULTS}, got {limit}")
    return limit


def _name_matches(text: str, name: str) -> bool:
    """Experiment name filters: ``name = 'x'``, ``name != 'x'``, ``name [I]LIKE 'x%'``."""
    match = re.fullmatch(
        r"\s*(?:attributes\.)?name\s*(=|!=|LIKE|ILIKE)\s*'((?:[^'\\]|\\.)*)'\s*",
        text,
        flags=re.IGNORECASE,
    )
    if match is None:
        raise invalid(
            f"experiment filter {text[:80]!r} is not supported; use name = '...' or "
            "name LIKE '...%'"
        )
    op, value = match.group(1).upper(), match.group(2)
    if op == "=":
        return name == value
    if op == "!=":
        return name != value
    pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
    flags = re.IGNORECASE if op == "ILIKE" else 0
    return re.fullmatch(pattern, name, flags=flags) is not None


__all__ = ["TrackingService", "page_offset", "page_token"]
