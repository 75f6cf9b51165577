"""``train.preprocess.clean``: ``clean`` rules whose statistics the model fits on training rows.

Kept apart from ``train.cleaning`` (the scikit-learn step) so that reading a project file does
not import scikit-learn. See ``train.cleaning`` for why these rules live in the model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shipyard.data.clean import OutlierRule

__all__ = ["ModelCleaningSpec"]


class ModelCleaningSpec(BaseModel):
    """``train.preprocess.clean``: rules fitted on training rows (filled in by the pipeline)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    impute: dict[str, Literal["mean", "median", "mode"]] = Field(default_factory=dict)
    outliers: dict[str, OutlierRule] = Field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether there is nothing to fit."""
        return not self.impute and not self.outliers

    def merged(self, other: ModelCleaningSpec) -> ModelCleaningSpec:
        """These rules with ``other``'s added (``other`` wins for a column in both)."""
        return ModelCleaningSpec(
            impute={**self.impute, **other.impute}, outliers={**self.outliers, **other.outliers}
        )
