"""The stage protocol and the one executor every cached stage runs through.

A stage says what it is (``kind``, ``label``), what determines its output (``params`` and the
ids of its ``inputs``), how to find an output made earlier under a key (``find``), and how to
make one (``run``). ``execute`` does the rest, the same way for every stage: it computes the key
(the kind, the parameters, the inputs and the hash of the stage module's code closure, see
``pipeline.code_hash``), looks it up, and otherwise runs the stage in a child run of the
pipeline run (param ``step = kind``), reporting "cached", "start" and "done" as it goes.

Issue 15: caching was written four times (validate, the clean/features steps, privacy,
training), each with its own hand-picked code list. A new kind of step (a stream stage, a
Ray-backed stage, a user's own) is a class with these members, executed without editing the
runner. ``DatasetStage`` is the base for stages whose output is one dataset version found by
cache key; training finds its earlier run by tag instead (``pipeline.training``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from shipyard.data.datasets import find_cached, write_dataset
from shipyard.pipeline.cache import cache_key
from shipyard.pipeline.code_hash import code_hash

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import polars as pl

    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True)
class StageContext:
    """Where stages run: the workspace, the pipeline run (their parent) and progress display.

    ``experiment`` is where a stage records its run when there is no parent run (training
    called on its own).
    """

    workspace: Workspace
    parent: ActiveRun | None
    notify: Callable[[str, str], None]
    experiment: str = "default"


@dataclass(frozen=True)
class StageRun:
    """What ``Stage.run`` gets: the workspace, its own (child) run, and its cache key.

    The stage writes its output under ``key`` (``write_dataset(..., cache_key=key)``), so the
    next run's ``find`` reuses it.
    """

    workspace: Workspace
    run: ActiveRun
    key: str


class Stage(Protocol[R_co]):
    """One cached unit of a pipeline run; see the module docstring.

    The module that defines the stage's class is the root of its code hash: everything it
    imports at run time (transitively, within ``shipyard``) and the third-party versions it
    uses are part of the key, so the class belongs in a module that imports what it runs.
    """

    @property
    def kind(self) -> str:
        """The kind of work (``clean``, ``train``): part of the key and the run's ``step``."""
        ...

    @property
    def label(self) -> str:
        """This stage's name in the pipeline (``0:clean``): the child run's name, progress."""
        ...

    @property
    def params(self) -> Any:
        """What configures it, as JSON-ready data (part of the key)."""
        ...

    @property
    def inputs(self) -> Sequence[str]:
        """The ids of the versions it reads (content hashes; part of the key)."""
        ...

    def find(self, workspace: Workspace, key: str) -> R_co | None:
        """Return the output an earlier run made under ``key``, or None."""
        ...

    def run(self, context: StageRun) -> R_co:
        """Do the work inside ``context.run`` and write the output under ``context.key``."""
        ...


@dataclass(frozen=True)
class Executed(Generic[R]):
    """What ``execute`` returns: the stage's output, whether reused, and the time it took."""

    value: R
    cached: bool
    key: str
    seconds: float = 0.0


def stage_key(stage: Stage[Any]) -> str:
    """Return ``stage``'s cache key: kind, params, inputs, and its module's code closure."""
    code = code_hash(type(stage).__module__)
    return cache_key(stage.kind, stage.params, code=code, inputs=list(stage.inputs))


def execute(stage: Stage[R], context: StageContext) -> Executed[R]:
    """Reuse ``stage``'s earlier output when its key matches, else run it in a child run.

    Raises:
        ShipyardError: Whatever the stage raises; its run is then ended ``failed`` with the
            error, and nothing is recorded under the key.
    """
    key = stage_key(stage)
    found = stage.find(context.workspace, key)
    if found is not None:
        context.notify(stage.label, "cached")
        return Executed(found, cached=True, key=key)
    context.notify(stage.label, "start")
    started = time.perf_counter()
    params = {"step": stage.kind}
    opened = (
        context.parent.child(name=stage.label, params=params)
        if context.parent is not None
        else context.workspace.start_run(
            name=stage.label, experiment=context.experiment, params=params
        )
    )
    with opened as run:
        value = stage.run(StageRun(context.workspace, run, key))
    context.notify(stage.label, "done")
    return Executed(value, cached=False, key=key, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class DatasetResult:
    """A data stage's output: its version, the rows it counted, and any quarantine versions.

    ``rows_in = rows_out + rows_quarantined + rows_deduplicated`` when the stage conserves
    rows (the pipeline report checks it); ``rows_out`` counts this run's rows, which for an
    appended version is less than the version's.
    """

    version: DatasetVersion
    rows_in: int
    rows_out: int
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    warnings: tuple[str, ...] = ()
    quarantine: tuple[DatasetVersion, ...] = ()


class DatasetStage:
    """Base of stages whose output is one dataset version written under the cache key.

    ``find`` returns the newest version written under the key; a reused version reports its
    input's row count as ``rows_in`` (``cached_rows_in``) and no quarantine.
    """

    #: The version the stage reads (its ``rows_in`` when reused), if any; set by the subclass.
    source: DatasetVersion | None

    def find(self, workspace: Workspace, key: str) -> DatasetResult | None:
        """Return the version an earlier run wrote under ``key``, as a reused result."""
        cached = find_cached(workspace, key)
        if cached is None:
            return None
        rows_in = 0 if self.source is None else self.source.row_count
        return DatasetResult(cached, rows_in, cached.row_count)

    def write_output(
        self,
        context: StageRun,
        frame: pl.LazyFrame | pl.DataFrame,
        *,
        name: str,
        lineage: dict[str, Any],
        pii: dict[str, str] | None = None,
    ) -> DatasetVersion:
        """Write the stage's output version under its key, child of ``source``; log the rows."""
        parents = [] if self.source is None else [self.source]
        version = write_dataset(
            context.workspace,
            frame,
            name=name,
            parents=parents,
            cache_key=context.key,
            run_id=context.run.run_id,
            lineage=lineage,
            pii=pii,
        )
        rows_in = 0 if self.source is None else self.source.row_count
        context.run.log_metrics({"rows_in": rows_in, "rows_out": version.row_count})
        return version


@dataclass(frozen=True)
class StepPlace:
    """Where a ``steps:`` entry sits: its index, the project, and the version it reads."""

    index: int
    project: str
    root: Path
    current: DatasetVersion

    def label(self, kind: str) -> str:
        """The stage's label, ``<index>:<kind>``."""
        return f"{self.index}:{kind}"

    def output(self, kind: str) -> str:
        """The output dataset's name, ``<project>.<index>.<kind>``."""
        return f"{self.project}.{self.index}.{kind}"
