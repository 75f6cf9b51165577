"""The ``features`` step as a stage: derived columns over the current version.

Its own module so that its code hash (``pipeline.code_hash``) covers ``data.features`` and what
that imports, and nothing of the other steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.data.datasets import read_dataset
from shipyard.data.features import add_features
from shipyard.pipeline.stage import DatasetResult, DatasetStage

if TYPE_CHECKING:
    from shipyard.data.features import FeaturesSpec
    from shipyard.pipeline.stage import StageRun, StepPlace
    from shipyard.store.datasets import DatasetVersion

KIND = "features"


@dataclass(frozen=True)
class FeaturesStage(DatasetStage):
    """Add ``spec``'s features to ``source``."""

    spec: FeaturesSpec
    params: Any
    label: str
    output: str
    source: DatasetVersion
    kind: str = KIND

    @classmethod
    def at(cls, spec: FeaturesSpec, params: Any, place: StepPlace) -> FeaturesStage:
        """Return the stage for a ``features`` entry at ``place`` (``params``: it dumped)."""
        return cls(spec, params, place.label(KIND), place.output(KIND), place.current)

    @property
    def inputs(self) -> list[str]:
        """The version it extends."""
        return [self.source.dataset_id]

    def run(self, context: StageRun) -> DatasetResult:
        """Add the features and write the output."""
        frame = add_features(read_dataset(context.workspace, self.source), self.spec)
        lineage = {"step": self.label, "params": self.params}
        version = self.write_output(context, frame, name=self.output, lineage=lineage)
        return DatasetResult(version, self.source.row_count, version.row_count)
