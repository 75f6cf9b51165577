"""The project file ``shipyard.yaml``, parsed into the config models each package owns.

Each section's model lives with the code that uses it (``SourceSpec`` in the connectors,
``Contract`` in ``data.contract``, ...); this module composes them, and turns validation errors
into messages that name the file, the line and the field. The ``deploy`` section of a later issue is
accepted as a mapping until its model lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shipyard.core.errors import InvalidArgument, InvalidProjectFile
from shipyard.core.project_file import (
    DEFAULT_PROJECT_NAME,
    MAX_PROJECT_NAME_LENGTH,
    PROJECT_NAME_PATTERN,
    YamlDocument,
    load_yaml,
)
from shipyard.core.settings import PROJECT_FILE
from shipyard.cost.budget import BudgetSection
from shipyard.cost.retention import RetentionPolicy
from shipyard.data.clean import CleanSpec
from shipyard.data.combine import CombineSpec
from shipyard.data.connectors.base import SourceSpec
from shipyard.data.contract import Contract
from shipyard.data.features import FeaturesSpec
from shipyard.data.harmonize import HarmonizeSpec
from shipyard.monitor.config import MonitorConfig
from shipyard.privacy.step import PrivacyStepSpec
from shipyard.train.spec import TrainSpec

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.pipeline.stage import DatasetResult, Stage, StepPlace

_STRICT = ConfigDict(extra="forbid", frozen=True)


class CleanStep(BaseModel):
    """``- clean: {...}`` in ``steps:``."""

    model_config = _STRICT
    clean: CleanSpec

    def stage(self, place: StepPlace) -> Stage[DatasetResult]:
        """Return this step as a stage at ``place``."""
        from shipyard.pipeline.clean_stage import CleanStage  # a data-only run never loads it

        return CleanStage.at(self.clean, _dump(self), place)


class FeaturesStep(BaseModel):
    """``- features: {...}`` in ``steps:``."""

    model_config = _STRICT
    features: FeaturesSpec

    def stage(self, place: StepPlace) -> Stage[DatasetResult]:
        """Return this step as a stage at ``place``."""
        from shipyard.pipeline.features_stage import FeaturesStage  # only a features: step

        return FeaturesStage.at(self.features, _dump(self), place)


class PrivacyStep(BaseModel):
    """``- privacy: {...}`` in ``steps:`` (see ``shipyard.privacy.step``)."""

    model_config = _STRICT
    privacy: PrivacyStepSpec

    def stage(self, place: StepPlace) -> Stage[DatasetResult]:
        """Return this step as a stage at ``place`` (reads the pseudonymization key now)."""
        from shipyard.pipeline.privacy_stage import PrivacyStage  # only a privacy: step

        return PrivacyStage.at(self.privacy, place)


Step = CleanStep | FeaturesStep | PrivacyStep
"""A ``steps:`` entry; each kind's ``stage(place)`` returns the stage that runs it."""


def _dump(step: BaseModel) -> Any:
    return step.model_dump(mode="json", by_alias=True)


class ProjectFile(BaseModel):
    """Everything ``shipyard.yaml`` declares."""

    model_config = _STRICT
    name: str = Field(
        DEFAULT_PROJECT_NAME,
        min_length=1,
        max_length=MAX_PROJECT_NAME_LENGTH,
        pattern=PROJECT_NAME_PATTERN,
    )
    workspace: dict[str, Any] | None = None  # read by core.settings
    tracking: dict[str, Any] | None = None  # read by core.settings
    cost: dict[str, Any] | None = None  # read by core.settings
    registry: dict[str, Any] | None = None  # read by core.settings
    reviews: dict[str, Any] | None = None  # read by core.settings (core.review_settings)
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    combine: CombineSpec | None = None
    contract: Contract | None = None
    steps: list[Step] = Field(default_factory=list)
    train: TrainSpec | None = None
    deploy: dict[str, Any] | None = None
    stream: dict[str, Any] | None = None  # read by shipyard.stream.config
    monitor: MonitorConfig | None = None
    budget: BudgetSection | None = None
    retention: RetentionPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_sources(cls, data: Any) -> Any:
        """Let each source know its own name (the key it is declared under)."""
        if isinstance(data, dict) and isinstance(data.get("sources"), dict):
            sources = {}
            for key, value in data["sources"].items():
                sources[key] = {"name": key, **value} if isinstance(value, dict) else value
            data = {**data, "sources": sources}
        return data

    def harmonize_spec(self, source: str) -> HarmonizeSpec:
        """Return the parsed ``harmonize:`` block of a source (empty when absent)."""
        return HarmonizeSpec.model_validate(self.sources[source].harmonize or {})


@dataclass(frozen=True)
class Project:
    """A loaded project: its folder, the parsed file, and the YAML for error locations."""

    root: Path
    spec: ProjectFile
    document: YamlDocument


def load_project(project_dir: Path) -> Project:
    """Read and check ``<project_dir>/shipyard.yaml``.

    Raises:
        InvalidProjectFile: The file is missing or any field is wrong; every problem is listed
            with its line.
    """
    document = load_yaml(project_dir / PROJECT_FILE)
    try:
        spec = ProjectFile.model_validate(document.data)
        for name in spec.sources:
            try:
                spec.harmonize_spec(name)
            except ValidationError as e:
                raise document.error(e, section=("sources", name, "harmonize")) from e
    except ValidationError as e:
        raise document.error(e) from e
    except InvalidArgument as e:
        if isinstance(e, InvalidProjectFile):
            raise
        raise InvalidProjectFile(f"{document.path.name}: {e}") from e
    return Project(project_dir, spec, document)
