"""Run a project's pipeline: ingest → harmonize → combine → validate → steps, as tracked runs.

One parent run per ``shipyard run``, one child run per stage. Stages whose cache key (inputs +
parameters + code) matches an earlier version are skipped and that version reused, so re-running
unchanged inputs executes nothing. Watermarks advance only when the whole run succeeds.

Row accounting: for the rows read in this run, ``read = accepted + quarantined + rejected``
(rejected = lines a connector could not parse), and a CSV source's lines are all rows or
rejects; each cleaning step adds ``in = out + quarantined + deduplicated``. The report checks
them and says so. Sources without a watermark in an incremental project are handled by
``pipeline.incremental``; ``clean`` rules that fit statistics move into the model in a project
that trains (``pipeline.model_cleaning``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import InvalidData
from shipyard.data import clean as clean_module
from shipyard.data import combine as combine_module
from shipyard.data import features as features_module
from shipyard.data import harmonize as harmonize_module
from shipyard.data import validate as validate_module
from shipyard.data.clean import clean
from shipyard.data.combine import combine
from shipyard.data.datasets import dataset_store, find_cached, read_dataset, write_dataset
from shipyard.data.features import add_features
from shipyard.data.validate import validate
from shipyard.pipeline.cache import cache_key, code_hash
from shipyard.pipeline.incremental import (
    CONTENT,
    changed_sources,
    contributing_frames,
    whole_sources,
)
from shipyard.pipeline.ingest import SourceRead, read_checked
from shipyard.pipeline.model_cleaning import plan_cleaning
from shipyard.pipeline.privacy_stage import ingest_tags, run_privacy_stage
from shipyard.pipeline.project import CleanStep, PrivacyStep
from shipyard.pipeline.quarantine import incremental, known_rejects, write_quarantine
from shipyard.pipeline.training import TrainingOutcome, run_training
from shipyard.security.audit_chain import security_store
from shipyard.security.guard import guard
from shipyard.security.permissions import Action

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.data.contract import Contract
    from shipyard.pipeline.project import Project, Step
    from shipyard.security.identities import Identity
    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace
    from shipyard.train.tuning import TrialOutcome


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did."""

    name: str
    dataset_id: str | None
    cached: bool
    rows_in: int
    rows_out: int
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    lines_unaccounted: int = 0  # ingest: input lines that are neither a row nor a reject

    @property
    def conserved(self) -> bool:
        """Tell whether every row (for ingest: every input line) went somewhere counted."""
        if self.lines_unaccounted:
            return False
        if self.cached:
            return True
        return self.rows_in == self.rows_out + self.rows_quarantined + self.rows_deduplicated


@dataclass
class PipelineReport:
    """The outcome of ``shipyard run``."""

    run_id: str
    stages: list[StageOutcome] = field(default_factory=list)
    final_dataset: str | None = None
    quarantine_datasets: list[str] = field(default_factory=list)
    training: TrainingOutcome | None = None

    @property
    def executed(self) -> list[str]:
        """Names of the stages that ran (not served from cache)."""
        return [s.name for s in self.stages if not s.cached]

    @property
    def conserved(self) -> bool:
        """Tell whether every stage accounted for all its rows."""
        return all(s.conserved for s in self.stages)


def run_pipeline(
    workspace: Workspace,
    project: Project,
    *,
    actor: Identity,
    on_stage: Callable[[str, str], None] | None = None,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    now: dt.datetime | None = None,
) -> PipelineReport:
    """Run the project's pipeline inside a tracked run and return what happened.

    Args:
        workspace: Where runs and datasets go.
        project: The loaded project file.
        actor: Who runs it: needs ``runs.write``; the ``train.register`` section registers
            and promotes as this identity, so its role decides (a data scientist's run
            registers, and its ``promote_to`` is refused and audited).
        on_stage: Called with (stage name, "start" | "cached" | "done") for progress displays.
        on_trial: Called after each tuning trial of the ``train`` stage.
        now: The time freshness checks compare with (default: the workspace clock).

    Raises:
        PermissionDenied: ``actor`` may not write runs (audited).
        SchemaDrift: A source changed shape and its policy is ``fail``.
        ValidationFailed: A contract check with policy ``fail`` failed; nothing was written.
    """
    spec = project.spec
    guard(
        security_store(workspace.settings, workspace.store.engine, clock=workspace.clock),
        actor,
        Action.RUNS_WRITE,
        f"pipeline:{spec.name}",
        clock=workspace.clock,
    )
    notify = on_stage or (lambda _name, _state: None)
    when = now or dt.datetime.fromtimestamp(workspace.clock.now_ms() / 1000, tz=dt.UTC)
    with (
        workspace.start_run(
            name=f"pipeline:{spec.name}",
            experiment=f"{spec.name}-pipeline",
            tags={"kind": "pipeline"},
        ) as run,
        tempfile.TemporaryDirectory(prefix="shipyard-run-") as scratch,
    ):
        report = PipelineReport(run_id=run.run_id)
        ingested = _ingest(workspace, project, run, report, notify, Path(scratch))
        reads = ingested.reads
        validated = _validate(workspace, project, run, report, ingested, when, notify)
        current = validated
        cleaning = plan_cleaning(spec)
        for index, step in enumerate(cleaning.steps):
            current = _run_step(workspace, project, run, report, index, step, current, notify)
            if index in cleaning.moved:
                report.stages[-1] = dataclasses.replace(
                    report.stages[-1],
                    warnings=(*report.stages[-1].warnings, cleaning.moved[index]),
                )
        report.final_dataset = current.dataset_id
        run.log_metrics(
            {
                "rows_read": sum(r.rows for r in reads.values()),
                "rows_final": current.row_count,
                "stages_executed": len(report.executed),
            }
        )
        run.set_tag("final_dataset", current.dataset_id)
        store = dataset_store(workspace)
        for name, read in reads.items():
            store.record_snapshot(
                name,
                watermark=read.watermark,
                schema=read.schema,
                created_ms=workspace.clock.now_ms(),
                row_count=read.rows,
                dataset_id=validated.dataset_id,
                run_id=run.run_id,
            )
        if spec.train is not None:
            notify("train", "start")
            report.training = run_training(
                workspace,
                cleaning.train_spec(spec.train),
                _training_data(workspace, spec.train.data, current),
                actor=actor,
                project=spec.name,
                project_dir=project.root,
                parent=run,
                on_trial=on_trial,
                budget=spec.budget,
            )
            notify("train", "cached" if report.training.cached else "done")
    return report


def _training_data(workspace: Workspace, named: str | None, current: DatasetVersion) -> str:
    """Return the dataset to train on.

    That is the one ``train.data`` names (an id, or a dataset name's newest version), else the
    pipeline's final dataset.
    """
    if named is None:
        return current.dataset_id
    versions = dataset_store(workspace).list_versions(named)
    return versions[0].dataset_id if versions else named


@dataclass(frozen=True)
class _Ingested:
    """What the sources returned, and how this run combines it with the last validated version.

    ``previous`` is the version new rows are appended to (None: write from these reads alone);
    ``unchanged`` the sources read whole whose content matches what ``previous`` recorded.
    """

    reads: dict[str, SourceRead]
    previous: DatasetVersion | None
    unchanged: set[str]


def _ingest(
    workspace: Workspace,
    project: Project,
    run: ActiveRun,
    report: PipelineReport,
    notify: Callable[[str, str], None],
    scratch: Path,
) -> _Ingested:
    spec = project.spec
    known = known_rejects(workspace, project)
    previous = (
        _previous_version(workspace, f"{spec.name}.validated") if incremental(project) else None
    )
    whole = whole_sources(spec)
    # Sources read whole go first: whether they changed decides how the others are read.
    reads: dict[str, SourceRead] = {}
    outcomes: dict[str, StageOutcome] = {}
    for name in whole:
        reads[name] = read_checked(
            workspace, project, run, name, known, scratch, notify, full=False
        )
    changed = changed_sources(previous, reads, whole)
    if changed:
        run.add_note(
            f"source(s) {', '.join(changed)} (no watermark) changed since the last run: the "
            "validated version is rebuilt from every source read from its start"
        )
        previous = None
    unchanged = set(whole) if previous is not None else set()
    for name in spec.sources:
        if name not in reads:
            reads[name] = read_checked(
                workspace, project, run, name, known, scratch, notify, full=bool(changed)
            )
        outcomes[name] = _ingest_outcome(reads[name], unchanged=name in unchanged)
    report.stages.extend(outcomes[name] for name in spec.sources)
    return _Ingested({name: reads[name] for name in spec.sources}, previous, unchanged)


def _ingest_outcome(read: SourceRead, *, unchanged: bool) -> StageOutcome:
    warnings = read.warnings
    if unchanged:
        warnings = (
            *warnings,
            "unchanged since the last run (same content hash): adds no rows",
        )
    return StageOutcome(
        name=f"ingest:{read.name}",
        dataset_id=None,
        cached=unchanged,
        rows_in=read.rows + read.rejected_rows,
        rows_out=read.rows,
        rows_quarantined=read.rejected_rows,
        seconds=read.seconds,
        warnings=warnings,
        lines_unaccounted=read.lines_unaccounted,
    )


def _validate(
    workspace: Workspace,
    project: Project,
    run: ActiveRun,
    report: PipelineReport,
    ingested: _Ingested,
    now: dt.datetime,
    notify: Callable[[str, str], None],
) -> DatasetVersion:
    spec = project.spec
    name = f"{spec.name}.validated"
    reads, previous, unchanged = ingested.reads, ingested.previous, ingested.unchanged
    key = cache_key(
        "validate",
        {
            "contract": _dump(spec.contract),
            "combine": _dump(spec.combine),
            "sources": {n: _dump(s) for n, s in spec.sources.items()},
        },
        code=code_hash(harmonize_module, combine_module, validate_module),
        inputs=[previous.dataset_id] if previous else [],
        extra={n: r.fingerprint for n, r in reads.items()},
    )
    cached = find_cached(workspace, key)
    if (
        cached is None
        and previous is not None
        and not any(r.rows or r.rejected_rows for n, r in reads.items() if n not in unchanged)
    ):
        cached = previous  # incremental run with nothing new: the last version stands
    if cached is not None:
        notify("validate", "cached")
        report.stages.append(StageOutcome("validate", cached.dataset_id, True, 0, cached.row_count))
        return cached
    notify("validate", "start")
    started = time.perf_counter()
    with run.child(name="validate") as child:
        frames = contributing_frames(reads, unchanged, spec.combine)
        combined = combine(frames, spec.combine) if spec.combine else _single(frames)
        pii = ingest_tags(combined)
        contract = spec.contract or _empty_contract()
        result = validate(combined, contract, now=now)
        checks = result.report()
        accepted = result.accepted
        if previous is not None:
            accepted = pl.concat(
                [read_dataset(workspace, previous), accepted], how="diagonal_relaxed"
            )
        version = write_dataset(
            workspace,
            accepted,
            name=name,
            parents=[previous] if previous else [],
            cache_key=key,
            run_id=child.run_id,
            lineage={
                "step": "validate",
                "sources": sorted(reads),
                CONTENT: {n: reads[n].fingerprint for n in whole_sources(spec)},
            },
            pii=pii,
        )
        quarantined = write_quarantine(workspace, spec.name, reads, result.quarantined, child, pii)
        report.quarantine_datasets.extend(q.dataset_id for q in quarantined)
        child.log_metrics(
            {
                "rows_in": checks.rows_in,
                "rows_accepted": checks.rows_accepted,
                "rows_quarantined": checks.rows_quarantined,
            }
        )
        child.log_artifact(
            json.dumps(checks.to_dict(), default=str).encode(), name="validation.json"
        )
    report.stages.append(
        StageOutcome(
            "validate",
            version.dataset_id,
            False,
            checks.rows_in,
            checks.rows_accepted,
            checks.rows_quarantined,
            seconds=time.perf_counter() - started,
            warnings=tuple(
                f"{check}: {rows} row(s) (policy warn)" for check, rows in checks.warnings.items()
            ),
        )
    )
    notify("validate", "done")
    return version


def _run_step(
    workspace: Workspace,
    project: Project,
    run: ActiveRun,
    report: PipelineReport,
    index: int,
    step: Step,
    current: DatasetVersion,
    notify: Callable[[str, str], None],
) -> DatasetVersion:
    if isinstance(step, PrivacyStep):
        stage = f"{index}:privacy"
        done = run_privacy_stage(
            workspace,
            run,
            spec=step.privacy,
            stage=stage,
            name=f"{project.spec.name}.{index}.privacy",
            current=current,
            project_root=project.root,
            notify=notify,
        )
        if done.suppressed is not None:
            report.quarantine_datasets.append(done.suppressed.dataset_id)
        report.stages.append(
            StageOutcome(
                stage,
                done.version.dataset_id,
                done.cached,
                current.row_count,
                done.version.row_count,
                done.rows_suppressed,
                seconds=done.seconds,
            )
        )
        return done.version
    kind = "clean" if isinstance(step, CleanStep) else "features"
    stage = f"{index}:{kind}"
    params = _dump(step)
    module = clean_module if kind == "clean" else features_module
    key = cache_key(kind, params, code=code_hash(module), inputs=[current.dataset_id])
    cached = find_cached(workspace, key)
    if cached is not None:
        notify(stage, "cached")
        report.stages.append(
            StageOutcome(stage, cached.dataset_id, True, current.row_count, cached.row_count)
        )
        return cached
    notify(stage, "start")
    started = time.perf_counter()
    name = f"{project.spec.name}.{index}.{kind}"
    with run.child(name=stage, params={"step": kind}) as child:
        frame = read_dataset(workspace, current)
        quarantined_rows = deduplicated = 0
        if isinstance(step, CleanStep):
            result = clean(frame, step.clean)
            frame = result.frame
            quarantined_rows = result.report.rows_quarantined
            deduplicated = result.report.rows_deduplicated
            if quarantined_rows:
                q = write_dataset(
                    workspace,
                    result.quarantined,
                    name=f"{name}.quarantine",
                    kind="quarantine",
                    parents=[current],
                    run_id=child.run_id,
                    lineage={"step": stage},
                )
                report.quarantine_datasets.append(q.dataset_id)
        else:
            frame = add_features(frame, step.features)
        version = write_dataset(
            workspace,
            frame,
            name=name,
            parents=[current],
            cache_key=key,
            run_id=child.run_id,
            lineage={"step": stage, "params": params},
        )
        child.log_metrics({"rows_in": current.row_count, "rows_out": version.row_count})
    report.stages.append(
        StageOutcome(
            stage,
            version.dataset_id,
            False,
            current.row_count,
            version.row_count,
            quarantined_rows,
            deduplicated,
            seconds=time.perf_counter() - started,
        )
    )
    notify(stage, "done")
    return version


def _previous_version(workspace: Workspace, name: str) -> DatasetVersion | None:
    versions = dataset_store(workspace).list_versions(name=name, kind="data")
    return versions[0] if versions else None


def _single(frames: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    if len(frames) != 1:
        raise InvalidData(
            f"{len(frames)} sources but no `combine:` section; say how to combine them "
            "(union, join or asof), see docs/data.md"
        )
    return next(iter(frames.values()))


def _empty_contract() -> Contract:
    from shipyard.data.contract import Contract

    return Contract()


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json", by_alias=True)
