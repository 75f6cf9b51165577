"""A user's own stage plugs into the one executor: keyed, reused, run in a child run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.data.datasets import read_dataset, write_dataset
from shipyard.pipeline.stage import (
    DatasetResult,
    DatasetStage,
    StageContext,
    StageRun,
    execute,
    stage_key,
)

if TYPE_CHECKING:
    from shipyard.store.datasets import DatasetVersion
    from shipyard.track.workspace import Workspace


@dataclass(frozen=True)
class Doubling(DatasetStage):
    """A step no runner knows about: multiply a column by ``factor``."""

    source: DatasetVersion
    factor: int
    kind: str = "doubling"
    label: str = "0:doubling"

    @property
    def params(self) -> Any:
        return {"factor": self.factor}

    @property
    def inputs(self) -> list[str]:
        return [self.source.dataset_id]

    def run(self, context: StageRun) -> DatasetResult:
        frame = read_dataset(context.workspace, self.source).select(pl.col("x") * self.factor)
        version = self.write_output(context, frame, name="doubled", lineage={"step": self.label})
        return DatasetResult(version, self.source.row_count, version.row_count)


def test_a_custom_stage_runs_once_per_key_in_a_child_run(workspace: Workspace) -> None:
    source = write_dataset(workspace, pl.DataFrame({"x": [1, 2, 3]}), name="numbers")
    events: list[tuple[str, str]] = []
    with workspace.start_run(name="pipeline", experiment="custom") as parent:
        context = StageContext(workspace, parent, lambda *event: events.append(event))
        first = execute(Doubling(source, 2), context)
        again = execute(Doubling(source, 2), context)
        other = execute(Doubling(source, 3), context)
    assert (first.cached, again.cached, other.cached) == (False, True, False)
    assert again.value.version == first.value.version
    assert read_dataset(workspace, first.value.version).collect()["x"].to_list() == [2, 4, 6]
    assert events == [
        ("0:doubling", "start"),
        ("0:doubling", "done"),
        ("0:doubling", "cached"),
        ("0:doubling", "start"),
        ("0:doubling", "done"),
    ]
    children = workspace.search_runs(f"parent_run_id = '{parent.run_id}'")
    assert len(children) == 2
    assert {c.params["step"] for c in children} == {"doubling"}
    assert first.value.version.run_id in {c.run_id for c in children}


def test_the_key_covers_the_user_stage_module_and_its_params(workspace: Workspace) -> None:
    source = write_dataset(workspace, pl.DataFrame({"x": [1]}), name="numbers")
    assert stage_key(Doubling(source, 2)) == stage_key(Doubling(source, 2))
    assert stage_key(Doubling(source, 2)) != stage_key(Doubling(source, 3))
