"""One monitoring pass over a project's served model: measure, store, alert, maybe retrain.

The monitors in ``shipyard.monitor`` each compute one thing; this module is the loop that ties
them to a project, because only the pipeline layer knows all the pieces at once: which model
the project registers and under which alias, where the server logs its predictions and the
feedback labels, the ``monitor:`` and ``budget:`` sections, and how to re-run the pipeline.

A pass, for the model at ``train.register.model`` and its alias:

1. load the alias holder's bundle and its reference profile;
2. read the prediction log over the lookback, split it into windows (the first drift rule's
   window, else ``schedule.interval``) and compute drift per complete window;
3. join feedback labels to logged predictions: rolling performance against the bundle's test
   metrics, and ADWIN / Page-Hinkley on the error stream;
4. service anomalies (latency, error rate, request rate, anomalous inputs) and budgets;
5. store the new observations (a window already stored is not stored again), judge them with
   the alert rules and notify;
6. if any new alert's rule says ``action: retrain``: re-run the pipeline on fresh data, once
   per pass however many alerts asked.
   The candidate goes through the registry's promotion gate, so it takes the alias only if it
   beats the holder on the same rows; the outcome, promoted or refused with both scores, is
   recorded on the alert and sent to its notifiers.

Whoever runs a pass needs ``monitor.run`` (it stores observations and alerts). The retrain does
not act as that person but as the service account ``svc-retrain`` (``security.services``), whose
role binding in the project must allow registering and promoting; a retrain it may not do is
recorded on the alert and in the audit log, never done with someone else's rights.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import polars as pl

from shipyard.core.errors import InvalidArgument, ShipyardError
from shipyard.cost.budget import budget_status
from shipyard.monitor.alerts import AlertEngine, Evaluation
from shipyard.monitor.anomaly import service_anomalies
from shipyard.monitor.drift import DriftReference, drift_for_window
from shipyard.monitor.drift_config import DriftConfig
from shipyard.monitor.feedback import FeedbackStore, join_labels
from shipyard.monitor.history import ObservationHistory
from shipyard.monitor.logfiles import read_prediction_log
from shipyard.monitor.performance import ModelFacts, concept_drift, performance_observations
from shipyard.monitor.signals import Observation
from shipyard.monitor.windows import read_windows
from shipyard.registry.registry import ModelRegistry
from shipyard.security.audit_chain import security_store
from shipyard.security.guard import guard
from shipyard.security.permissions import Action
from shipyard.security.services import RETRAIN, service_identity
from shipyard.store.monitoring import MonitoringStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from shipyard.monitor.config import MonitorConfig
    from shipyard.monitor.drift_report import DriftReport
    from shipyard.pipeline.project import Project
    from shipyard.security.identities import Identity
    from shipyard.store.monitoring import AlertRecord
    from shipyard.track.workspace import Workspace

DEFAULT_ALIAS = "production"
PERFORMANCE_WINDOW_LABELS = 200
"""Labels per performance window when the rules name no window: enough for a +-5% interval."""


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retrain triggered by an alert did."""

    alert_id: str
    promoted: bool
    text: str
    numbers: dict[str, float]
    version: int | None


@dataclass
class MonitorPass:
    """Everything one pass measured and decided."""

    model: str
    alias: str
    version: int
    since_ms: int
    until_ms: int
    log_rows: int
    windows: int
    drift: list[DriftReport] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    evaluation: Evaluation = field(default_factory=Evaluation)
    retrains: list[RetrainOutcome] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        """Features any window of this pass flagged, in the model's order."""
        seen: dict[str, None] = {}
        for report in self.drift:
            for feature in report.drifted:
                seen.setdefault(feature, None)
        return list(seen)


Retrainer: TypeAlias = "Callable[[AlertRecord], RetrainOutcome]"


def monitored_model(project: Project) -> tuple[str, str]:
    """The model name and alias a project's monitors watch.

    Raises:
        InvalidArgument: The project registers no model.
    """
    train = project.spec.train
    if train is None or train.registration is None:
        raise InvalidArgument(
            "the project registers no model, so there is nothing to monitor; add "
            "`register: {model: NAME, promote_to: production}` to the train: section"
        )
    return train.registration.model, train.registration.promote_to or DEFAULT_ALIAS


def predictions_dir(project: Project) -> Path:
    """Where ``shipyard serve`` logs the project's predictions by default."""
    return project.root / ".shipyard" / "predictions"


def monitor_pass(
    workspace: Workspace,
    project: Project,
    *,
    actor: Identity,
    now_ms: int | None = None,
    since_ms: int | None = None,
    predictions: Path | None = None,
    retrain: Retrainer | None = None,
) -> MonitorPass:
    """Run every monitor once over ``[since_ms, now_ms)`` and act on the alerts.

    Args:
        workspace: The project's workspace (registry, store, runs).
        project: The loaded project; its ``monitor:`` section holds rules and notifiers.
        actor: Who runs the pass (needs ``monitor.run``); a retrain acts as ``svc-retrain``.
        now_ms: End of the period (default: the workspace clock).
        since_ms: Start (default: ``now_ms - schedule.lookback``).
        predictions: The prediction log folder (default: ``.shipyard/predictions``).
        retrain: Called for each new ``retrain`` alert (default: :func:`retrain_project`);
            pass a no-op to only record the request.

    Raises:
        PermissionDenied: ``actor`` may not run monitors (audited).
        InvalidArgument: The project registers no model, or the alias points nowhere.
    """
    config = _config(project)
    model, alias = monitored_model(project)
    guard(
        security_store(workspace.settings, workspace.store, clock=workspace.clock),
        actor,
        Action.MONITOR_RUN,
        f"monitor:{model}@{alias}",
        clock=workspace.clock,
    )
    now = workspace.clock.now_ms() if now_ms is None else now_ms
    since = now - config.schedule.lookback if since_ms is None else since_ms
    root = predictions or predictions_dir(project)
    registry = ModelRegistry.for_workspace(workspace)
    version = registry.get(f"{model}@{alias}")
    bundle = registry.load(version)
    reference = DriftReference.from_bundle(bundle)
    every_ms, rows = _drift_window(config)

    windows, decoded = read_windows(
        root,
        reference.schema(),
        since_ms=since,
        until_ms=now,
        every_ms=every_ms,
        rows=rows,
        model=model,
    )
    outcome = MonitorPass(model, alias, version.version, since, now, decoded.frame.height, 0)
    drift_config = _drift_config(config)
    observations: list[Observation] = []
    for window in windows:
        if not window.complete and len(windows) > 1:
            continue  # a window still filling judges too few rows; the next pass takes it
        report = drift_for_window(reference, window, model=model, config=drift_config)
        outcome.drift.append(report)
        outcome.windows += 1
        found = report.observations()
        if rows is not None:
            found = [_with_rows(o, rows) for o in found]
        observations += found

    log = read_prediction_log(root, since_ms=since, until_ms=now).filter(pl.col("model") == model)
    observations += _performance(root, log, model, ModelFacts.from_manifest(bundle.manifest))
    observations += service_anomalies(
        log, model=model, now_ms=now, window_ms=config.schedule.interval
    )
    observations += _budgets(workspace, project, now)

    store = MonitoringStore(workspace.store)
    fresh = _not_yet_stored(ObservationHistory(store, workspace.clock), observations, model, since)
    engine = AlertEngine.from_config(store, config, workspace.clock)
    outcome.observations = fresh
    outcome.evaluation = engine.evaluate(fresh)
    requests = outcome.evaluation.retrain_requests
    if requests:
        # several features drifting at once is one reason to retrain, not several retrains
        act = retrain or (
            lambda alert: retrain_project(workspace, project, alert, started_by=actor)
        )
        result = act(requests[0])
        outcome.retrains.append(result)
        for alert in requests:
            engine.record_outcome(alert.alert_id, result.text, result.numbers)
    return outcome


def retrain_project(
    workspace: Workspace, project: Project, alert: AlertRecord, *, started_by: Identity
) -> RetrainOutcome:
    """Re-run the project's pipeline on fresh data and let the gate decide the alias.

    The pipeline, its registration and the promotion act as ``svc-retrain``
    (``security.services``), started by ``started_by``. Never raises for a failed, denied or
    refused retrain: the outcome says what happened, so the alert records it and the monitor
    loop goes on.
    """
    from shipyard.pipeline.runner import run_pipeline  # the runner imports the whole stack

    model, alias = monitored_model(project)
    registry = ModelRegistry.for_workspace(workspace)
    before = registry.get(f"{model}@{alias}").version
    service = service_identity(registry.security, RETRAIN, project.spec.name, started_by=started_by)
    try:
        report = run_pipeline(workspace, project, actor=service)
    except ShipyardError as e:  # bad new data, a used-up budget...: recorded, the loop goes on
        return RetrainOutcome(alert.alert_id, False, f"retrain failed: {e.message}", {}, None)
    training = report.training
    if training is None or training.cached or training.version is None:
        return RetrainOutcome(
            alert.alert_id,
            False,
            f"nothing to retrain on: the data has not changed since version {before}",
            {"holder_version": float(before)},
            None,
        )
    candidate = training.version.version
    promotion = training.promotion
    if training.promotion_denied is not None:
        return RetrainOutcome(
            alert.alert_id,
            False,
            f"retrain not promoted: {training.promotion_denied}",
            {"candidate_version": float(candidate), "holder_version": float(before)},
            candidate,
        )
    if promotion is None:  # the project registers without promoting: ask the gate here
        try:
            promotion = registry.promote(
                model,
                candidate,
                actor=service,
                alias=alias,
                reason=f"retrain after alert {alert.alert_id} ({alert.rule})",
            )
        except ShipyardError as e:  # denied (audited) or the alias moved meanwhile
            return RetrainOutcome(
                alert.alert_id,
                False,
                f"retrain not promoted: {e.message}",
                {"candidate_version": float(candidate), "holder_version": float(before)},
                candidate,
            )
    numbers: dict[str, float] = {"candidate_version": float(candidate)}
    numbers["holder_version"] = float(before)
    verdict = promotion.verdict
    if verdict is not None:
        if verdict.candidate_score is not None:
            numbers["candidate_score"] = verdict.candidate_score
        if verdict.champion_score is not None:
            numbers["holder_score"] = verdict.champion_score
    metric = verdict.metric if verdict is not None else "score"
    if promotion.request_id is not None:  # a review rule holds the alias (issue 18)
        text = (
            f"version {candidate} passed the gate over {before} ({metric}); promotion request "
            f"{promotion.request_id} waits for review"
        )
    elif promotion.moved:
        text = f"promoted version {candidate} over {before} ({metric})"
    else:
        text = f"refused version {candidate}: {alias} stays at {before} ({metric})"
    return RetrainOutcome(alert.alert_id, promotion.moved, text, numbers, candidate)


# -- pieces -----------------------------------------------------------------------------------


def _config(project: Project) -> MonitorConfig:
    from shipyard.monitor.config import MonitorConfig

    return project.spec.monitor or MonitorConfig()


def _drift_window(config: MonitorConfig) -> tuple[int | None, int | None]:
    """The drift window: the first drift rule's (time or rows), else ``schedule.interval``."""
    for rule in config.rules:
        if rule.window is not None and rule.kind in (None, "drift"):
            return rule.window.ms, rule.window.rows
    return config.schedule.interval, None


def _drift_config(config: MonitorConfig) -> DriftConfig:
    """``monitor.thresholds`` entries of drift statistics; the others are for the rules."""
    from shipyard.monitor.drift_config import STATISTIC_FIELDS

    drift = {k: v for k, v in config.thresholds.items() if k in STATISTIC_FIELDS}
    return DriftConfig.from_thresholds(drift)


def _with_rows(observation: Observation, rows: int) -> Observation:
    return dataclasses.replace(observation, detail={**observation.detail, "window_rows": rows})


def _performance(root: Path, log: pl.LazyFrame, model: str, facts: ModelFacts) -> list[Observation]:
    labels = FeedbackStore.beside(root).labels(model)
    if labels.is_empty():
        return []
    joined = join_labels(log, labels)
    if joined.is_empty():
        return []
    found = performance_observations(
        joined, model=model, facts=facts, window_labels=PERFORMANCE_WINDOW_LABELS
    )
    return found + concept_drift(joined, model=model, facts=facts)


def _budgets(workspace: Workspace, project: Project, now_ms: int) -> list[Observation]:
    section = project.spec.budget
    if section is None:
        return []
    found = []
    for budget in section.limits:
        status = budget_status(
            workspace.store, budget, settings=workspace.settings, clock=workspace.clock
        )
        fields = status.as_observation_fields()
        found.append(
            Observation(
                model=project.spec.name,
                version=None,
                window_start_ms=now_ms,
                window_end_ms=now_ms + 1,
                **fields,
            )
        )
    return found


def _not_yet_stored(
    history: ObservationHistory, observations: list[Observation], model: str, since_ms: int
) -> list[Observation]:
    """Drop observations of windows an earlier pass already stored (passes overlap)."""
    stored = {_key(o) for o in history.query(model=model, since_ms=since_ms) if o.kind != "budget"}
    return [o for o in observations if _key(o) not in stored]


def _key(o: Observation) -> tuple[Any, ...]:
    return (
        o.kind,
        o.statistic,
        o.subject,
        o.version,
        o.variant,
        o.window_start_ms,
        o.window_end_ms,
    )


def run_forever(
    step: Callable[[], MonitorPass], interval_s: float, *, sleep: Callable[[float], None]
) -> None:
    """Call ``step`` every ``interval_s`` seconds until interrupted (Ctrl-C ends it)."""
    while True:
        started = time.monotonic()
        step()
        sleep(max(0.0, interval_s - (time.monotonic() - started)))
