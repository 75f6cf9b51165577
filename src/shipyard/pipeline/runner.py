"""Run a project's pipeline: ingest → harmonize → combine → validate → steps, as tracked runs.

One parent run per ``shipyard run``, one child run per stage. Every cached stage (validate,
each step, training) goes through ``pipeline.stage.execute``: a stage whose cache key (inputs +
parameters + its module's code closure and library versions) matches an earlier output is
skipped and that output reused, so re-running unchanged inputs executes nothing. Watermarks
advance only when the whole run succeeds.

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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.data.datasets import get_dataset
from shipyard.pipeline.incremental import changed_sources, whole_sources
from shipyard.pipeline.ingest import SourceRead, read_checked
from shipyard.pipeline.model_cleaning import plan_cleaning
from shipyard.pipeline.quarantine import incremental, known_rejects
from shipyard.pipeline.stage import StageContext, StepPlace, execute
from shipyard.pipeline.validate_stage import ValidateStage
from shipyard.security.audit_chain import security_store
from shipyard.security.guard import guard
from shipyard.security.permissions import Action
from shipyard.store.datasets import DatasetStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.pipeline.project import Project
    from shipyard.pipeline.stage import DatasetResult, Executed
    from shipyard.pipeline.training import TrainingOutcome
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
        security_store(workspace.settings, workspace.store, clock=workspace.clock),
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
        ingested = _ingest(workspace, project, run, notify, Path(scratch))
        reads = ingested.reads
        context = StageContext(workspace, run, notify)
        validate = ValidateStage(
            spec, reads, ingested.previous, frozenset(ingested.unchanged), when
        )
        validated = _record(report, validate.label, execute(validate, context))
        # A direct read's counts are known once validation parsed it (or, cached, counted it).
        reads = {name: read.settled() for name, read in reads.items()}
        report.stages[0:0] = [
            _ingest_outcome(read, unchanged=name in ingested.unchanged)
            for name, read in reads.items()
        ]
        current = validated
        cleaning = plan_cleaning(spec)
        for index, step in enumerate(cleaning.steps):
            stage = step.stage(StepPlace(index, spec.name, project.root, current))
            current = _record(report, stage.label, execute(stage, context))
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
        store = DatasetStore(workspace.store)
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
            # Imported here: a data-only project never loads the training stack, the
            # registry or scipy (a fifth of a data-only run's CPU, issue 17).
            from shipyard.pipeline.training import TrainStage

            training = TrainStage(
                cleaning.train_spec(spec.train),
                get_dataset(workspace, _training_data(workspace, spec.train.data, current)),
                actor,
                project=spec.name,
                project_dir=project.root,
                on_trial=on_trial,
                budget=spec.budget,
            )
            report.training = execute(training, context).value
    return report


def _record(report: PipelineReport, label: str, done: Executed[DatasetResult]) -> DatasetVersion:
    """Add a data stage's outcome (and its quarantine versions) to ``report``."""
    result = done.value
    report.stages.append(
        StageOutcome(
            label,
            result.version.dataset_id,
            done.cached,
            result.rows_in,
            result.rows_out,
            result.rows_quarantined,
            result.rows_deduplicated,
            seconds=done.seconds,
            warnings=result.warnings,
        )
    )
    report.quarantine_datasets.extend(q.dataset_id for q in result.quarantine)
    return result.version


def _training_data(workspace: Workspace, named: str | None, current: DatasetVersion) -> str:
    """Return the dataset to train on.

    That is the one ``train.data`` names (an id, or a dataset name's newest version), else the
    pipeline's final dataset.
    """
    if named is None:
        return current.dataset_id
    versions = DatasetStore(workspace.store).list_versions(named)
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


def _previous_version(workspace: Workspace, name: str) -> DatasetVersion | None:
    versions = DatasetStore(workspace.store).list_versions(name=name, kind="data")
    return versions[0] if versions else None
