"""The ``clean`` step as a stage: rules over the current version, quarantine for failed rows.

Its own module so that its code hash (``pipeline.code_hash``) covers ``data.clean`` and what
that imports, and nothing of the other steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.data.clean import clean
from shipyard.data.datasets import read_dataset, write_dataset
from shipyard.pipeline.stage import DatasetResult, DatasetStage

if TYPE_CHECKING:
    from shipyard.data.clean import CleanSpec
    from shipyard.pipeline.stage import StageRun, StepPlace
    from shipyard.store.datasets import DatasetVersion

KIND = "clean"


@dataclass(frozen=True)
class CleanStage(DatasetStage):
    """Apply ``spec``'s rules to ``source``; failed rows go to ``<output>.quarantine``."""

    spec: CleanSpec
    params: Any
    label: str
    output: str
    source: DatasetVersion
    kind: str = KIND

    @classmethod
    def at(cls, spec: CleanSpec, params: Any, place: StepPlace) -> CleanStage:
        """Return the stage for a ``clean`` entry at ``place`` (``params``: the entry dumped)."""
        return cls(spec, params, place.label(KIND), place.output(KIND), place.current)

    @property
    def inputs(self) -> list[str]:
        """The version it cleans."""
        return [self.source.dataset_id]

    def run(self, context: StageRun) -> DatasetResult:
        """Clean the rows, write the quarantine (if any) and the output."""
        result = clean(read_dataset(context.workspace, self.source), self.spec)
        quarantine: tuple[DatasetVersion, ...] = ()
        if result.report.rows_quarantined:
            quarantine = (
                write_dataset(
                    context.workspace,
                    result.quarantined,
                    name=f"{self.output}.quarantine",
                    kind="quarantine",
                    parents=[self.source],
                    run_id=context.run.run_id,
                    lineage={"step": self.label},
                ),
            )
        lineage = {"step": self.label, "params": self.params}
        version = self.write_output(context, result.frame, name=self.output, lineage=lineage)
        return DatasetResult(
            version,
            self.source.row_count,
            version.row_count,
            result.report.rows_quarantined,
            result.report.rows_deduplicated,
            quarantine=quarantine,
        )
